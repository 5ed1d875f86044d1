/**
 * `deno task bench`: without `--preset`, runs `deno bench` (every
 * `bench/*_bench.ts`, or the files given); with `--preset quick|full|gpu`,
 * runs the throughput sweep (bench/sweep.ts) and writes its results as JSON
 * (and, for `gpu`, the HTML report and a TFLOP/s summary beside them).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { PRESETS, runSweep, smokePreset, tflopsSummary } from "./sweep.ts";
import { reportHtml } from "./report.ts";

const USAGE =
  `usage: deno task bench [FILES…]                  deno bench (all bench/*_bench.ts by default)
       deno task bench -- --preset quick|full|gpu [--smoke] [--out FILE]

--preset NAME   run the throughput sweep: quick (this 2-core software adapter: a few
                minutes), full (seqLen 128…4096, headDim 32/64/128: for a real GPU) or
                gpu (the one prepared run for an H100/H200-class GPU, about 8 minutes:
                adapter report, spot checks against the f64 reference at both tilings,
                S 1024/4096/16384 × D 64/128 × causal × f32/f16 × forward/backward for
                fused softmax and sigmoid, unfused, TF.js, ONNX Runtime Web and jax-js;
                writes the JSON, the HTML
                report and a TFLOP/s summary with the ratios)
--smoke         the same preset at sizes a software adapter finishes (one head, S 32,
                64, 128 and 256, D 32): to try the whole run end to end without a GPU
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
        smoke: { type: "boolean" },
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
    console.error(
      `error: --preset must be quick, full or gpu, got "${values.preset}"\n\n${USAGE}`,
    );
    return 2;
  }
  const preset = values.smoke ? smokePreset(PRESETS[name]) : PRESETS[name];
  const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
  const out = values.out ?? `results/sweep-${preset.name}-${stamp}.json`;
  console.error(`sweep ${preset.name} → ${out}`);
  const results = await runSweep(preset, { out });
  console.error(
    `done in ${results.seconds.toFixed(0)} s: ${results.records.length} records, ` +
      `${results.failures.length} failures → ${out}\nreport: deno task report -- ${out}`,
  );
  if (name !== "gpu") return 0;
  // The gpu preset is run once on a machine someone lends: leave everything to send back.
  const base = out.replace(/\.json$/, "");
  const summary = tflopsSummary(results);
  await Deno.writeTextFile(`${base}.md`, summary);
  await Deno.writeTextFile(`${base}.html`, await reportHtml(results));
  console.log(summary);
  console.error(`wrote ${out}, ${base}.md and ${base}.html: send back all three`);
  const failed = (results.checks ?? []).filter((c) => !c.ok).length;
  if (failed) console.error(`${failed} spot checks FAILED: the figures above are suspect`);
  return failed ? 1 : 0;
}
