import assert from "node:assert/strict";
import { parseTrainArgs } from "../training/cli.ts";
import { distinctPipelines, longContextSeqLen } from "../bench/demo.ts";

/** Runs `cli.ts` with `args` in a child Deno; returns the exit code and output. */
function cli(...args: string[]) {
  return cliWith({}, ...args);
}

/** Like {@linkcode cli}, with extra environment variables. */
async function cliWith(env: Record<string, string>, ...args: string[]) {
  const command = new Deno.Command(Deno.execPath(), {
    env,
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
      [["demo", "--compile-workers=-1"], /--compile-workers must be an integer from 0 to 16/],
      [["demo", "--compile-workers", "2.5"], /--compile-workers must be an integer from 0 to 16/],
    ] as const
  ) {
    const { code, stderr } = await cli(...args);
    assert.equal(code, 2, `${args.join(" ")} exits 2`);
    assert.match(stderr, message);
  }
});

Deno.test("cli doctor names the backend, and on OpenGL llvmpipe says how to get Vulkan", async () => {
  const gl = await cliWith({ DENO_WEBGPU_BACKEND: "gl" }, "doctor");
  assert.equal(gl.code, 0, gl.stderr);
  assert.match(gl.stdout, /^backend: OpenGL \(DENO_WEBGPU_BACKEND=gl\)\n/);
  const software = /llvmpipe|lavapipe/.test(gl.stdout);
  if (software) {
    assert.match(gl.stdout, /^hint: `apt-get install -y mesa-vulkan-drivers` .*shader-f16$/m);
  }
  assert.equal(JSON.parse(gl.stdout.slice(gl.stdout.indexOf("{"))).backend, "OpenGL");
  const vulkan = await cliWith({ DENO_WEBGPU_BACKEND: "vulkan" }, "doctor");
  if (vulkan.code === 0) {
    assert.match(vulkan.stdout, /^backend: Vulkan /);
    assert.doesNotMatch(vulkan.stdout, /mesa-vulkan-drivers/);
  }
});

Deno.test("cli model prints the operation-count table", async () => {
  const { code, stdout } = await cli("model");
  assert.equal(code, 0);
  assert.match(stdout, /\| 64 \| fused sigmoid \| 128\.0 \|/);
});

Deno.test("train --help prints the options and exits 0", async () => {
  const { code, stdout } = await cli("train", "--help");
  assert.equal(code, 0);
  assert.match(stdout, /usage: deno task train --task NAME/);
  for (
    const flag of [
      "--attention",
      "--n N",
      "--checkpoint FILE",
      "--log FILE",
      "--patience",
      "--full-batch",
      "--plateau-tol X",
      "--grad-tol X",
      "--plateau-window N",
    ]
  ) {
    assert.ok(stdout.includes(flag), `--help does not mention ${flag}`);
  }
});

Deno.test("train rejects impossible configs with a clear message and exit code 2", async () => {
  for (
    const [args, message] of [
      [["--task", "nope"], /unknown task "nope"; tasks: teacher, mqar, count, sort, mnist/],
      [["--attention", "relu", "--task", "mqar"], /attention must be "softmax" or "sigmoid"/],
      [["--task", "mqar", "--heads", "3"], /heads \(3\) must divide the model width \(32\)/],
      [["--task", "mnist", "--n", "9500"], /n must be an integer in \[1, 9000\].*got n = 9500/],
      [["--task", "count", "--opt", "seqLen=5000"], /seqLen must be an integer in \[1, 4096\]/],
      [["--task", "mqar", "--opt", "bogus=1"], /task mqar has no option "bogus"/],
      [["--task", "mqar", "--steps", "x"], /--steps must be a number/],
      [["--task", "teacher", "--plateau-tol=-1"], /plateauTol must be ≥ 0/],
      [["--task", "teacher", "--grad-tol", "abc"], /--grad-tol must be a number/],
      [["--task", "teacher", "--plateau-window", "0"], /plateauWindow must be an integer ≥ 1/],
      [["--n", "10"], /--task is required/],
    ] as const
  ) {
    const { code, stderr } = await cli("train", ...args);
    assert.equal(code, 2, `train ${args.join(" ")} exited ${code}: ${stderr}`);
    assert.match(stderr, message);
  }
});

Deno.test("train runs a tiny model end to end and prints its summary", async () => {
  const { code, stdout } = await cli(
    "train",
    "--task",
    "sort",
    "--n",
    "64",
    "--test-size",
    "32",
    "--steps",
    "4",
    "--batch-size",
    "8",
    "--width",
    "8",
    "--layers",
    "1",
    "--quiet",
  );
  assert.equal(code, 0);
  assert.match(stdout, /task sort {2}attention softmax {2}n 64/);
  assert.match(stdout, /steps 4 \(stopped by steps; not converged\) {2}batch 8/);
  assert.match(stdout, /final gradient norm \d\.\d{3}e[-+]\d+ {2}relative loss change .* n\/a/);
  assert.match(stdout, /test accuracy \d\.\d{4} \(best/);
});

Deno.test("train's estimator flags map onto the training config", () => {
  const parsed = parseTrainArgs([
    "--task",
    "teacher",
    "--full-batch",
    "--plateau-tol",
    "1e-4",
    "--grad-tol",
    "0.001",
    "--plateau-window",
    "200",
    "--weight-decay",
    "0",
    "--clip",
    "0",
  ]);
  assert.ok(parsed !== "help");
  assert.equal(parsed.fullBatch, true);
  assert.equal(parsed.plateauTol, 1e-4);
  assert.equal(parsed.gradTol, 0.001);
  assert.equal(parsed.plateauWindow, 200);
  assert.equal(parsed.weightDecay, 0);
  assert.equal(parsed.clip, 0);
  const plain = parseTrainArgs(["--task", "mqar"]);
  assert.ok(plain !== "help");
  assert.equal(plain.fullBatch, false);
  assert.equal(plain.plateauTol, undefined);
});

Deno.test("demo compiles each pipeline once: workloads differ only by compiled-in choices", () => {
  const w = (seqLen: number, headDim: number, causal = false) => ({
    shape: { batch: 2, heads: 4, seqLen, headDim },
    implementation: "fused" as const,
    activation: "sigmoid" as const,
    causal,
    pass: "forward" as const,
  });
  const distinct = distinctPipelines([
    w(256, 64),
    w(1024, 64),
    w(97, 64),
    w(61, 64),
    w(98, 64),
    w(97, 32),
    w(97, 64, true),
  ]);
  assert.deepEqual(
    distinct.map((d) => [d.shape.seqLen, d.shape.headDim, d.causal, d.shape.batch * d.shape.heads]),
    [[8, 64, false, 1], [5, 64, false, 1], [6, 64, false, 1], [5, 32, false, 1], [5, 64, true, 1]],
  );
});

Deno.test("demo's long-context step takes the first S whose S×S scores no binding holds", () => {
  assert.equal(longContextSeqLen(128 * 2 ** 20), 8192); // 8192² · 4 B = 256 MiB
  assert.equal(longContextSeqLen(2 ** 30), 16384); // 16384² · 4 B = 1 GiB fits: capped
  assert.equal(longContextSeqLen(1), 1024);
});
