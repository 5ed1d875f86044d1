import assert from "node:assert/strict";

/** Runs `cli.ts` with `args` in a child Deno; returns the exit code and output. */
async function cli(...args: string[]) {
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-env",
      "--allow-read",
      new URL("../cli.ts", import.meta.url).pathname,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await command.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code, stdout: decode(stdout), stderr: decode(stderr) };
}

Deno.test("cli --help prints the usage and exits 0", async () => {
  const { code, stdout } = await cli("--help");
  assert.equal(code, 0);
  assert.match(stdout, /usage: deno task demo/);
  assert.match(stdout, /--seq-lens LIST/);
});

Deno.test("cli rejects unknown commands and bad flags with exit code 2", async () => {
  for (
    const [args, message] of [
      [["bogus"], /unknown command "bogus"/],
      [
        ["demo", "--head-dims", "64,300"],
        /--head-dims must be an integer from 1 to 256, got "300"/,
      ],
      [["demo", "--seq-lens", "256,abc"], /--seq-lens must be an integer/],
      [["demo", "--frobnicate"], /frobnicate/],
    ] as const
  ) {
    const { code, stderr } = await cli(...args);
    assert.equal(code, 2, `${args.join(" ")} exits 2`);
    assert.match(stderr, message);
  }
});

Deno.test("cli model prints the operation-count table", async () => {
  const { code, stdout } = await cli("model");
  assert.equal(code, 0);
  assert.match(stdout, /\| 64 \| fused sigmoid \| 128\.0 \|/);
});
