/**
 * `deno task bench`: without `--preset`, runs `deno bench` (every
 * `bench/*_bench.ts`, or the files given); with `--preset quick|full`, runs
 * the throughput sweep (bench/sweep.ts) and writes its results as JSON.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { PRESETS, runSweep } from "./sweep.ts";

const USAGE =
  `usage: deno task bench [FILES…]                  deno bench (all bench/*_bench.ts by default)
       deno task bench -- --preset quick|full [--out FILE]

--preset NAME   run the throughput sweep: quick (this 2-core software adapter: a few
                minutes) or full (seqLen 128…4096, headDim 32/64/128: for a real GPU)
--out FILE      where the results go (default results/sweep-PRESET-DATE.json);
                make the report with: deno task report -- FILE
-h, --help      this help`;

/** Runs `deno task bench` (the `bench` command of cli.ts); returns the exit code. */
export async function benchMain(args: string[]): Promise<number> {
  if (!args.some((a) => a === "--preset" || a.startsWith("--preset="))) {
    if (args.includes("--help") || args.includes("-h")) {
      console.log(USAGE);
      return 0;
    }
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "bench",
        `--lock=${new URL("../deno.lock", import.meta.url).pathname}`,
        "--allow-env",
        "--allow-read",
        ...args,
      ],
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    return (await child.status).code;
  }
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        preset: { type: "string" },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    console.error(`error: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const name = values.preset as keyof typeof PRESETS;
  if (!(name in PRESETS)) {
    console.error(`error: --preset must be quick or full, got "${values.preset}"\n\n${USAGE}`);
    return 2;
  }
  const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
  const out = values.out ?? `results/sweep-${name}-${stamp}.json`;
  console.error(`sweep ${name} → ${out}`);
  const results = await runSweep(PRESETS[name], { out });
  console.error(
    `done in ${results.seconds.toFixed(0)} s: ${results.records.length} records, ` +
      `${results.failures.length} failures → ${out}\nreport: deno task report -- ${out}`,
  );
  return 0;
}
