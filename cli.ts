/**
 * The sigmax command line: `deno task demo`, or `deno run cli.ts <command>`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { adapterReport, getDevice } from "./mod.ts";
import { DEMO_DEFAULTS, DEMO_SEQ_LENS, runDemo } from "./bench/demo.ts";
import { GPU_COSTS, opModelTable, SOFTWARE_COSTS } from "./bench/op_model.ts";
import { FUSED_STORAGE_BUDGET, fusedTiles } from "./kernels/attention_fused.ts";
import { fusedBackwardTiles } from "./kernels/attention_fused_backward.ts";
import { trainMain } from "./training/cli.ts";
import { benchMain } from "./bench/main.ts";
import { reportMain } from "./bench/report.ts";
import { studyMain } from "./bench/study_cli.ts";
import { backendHint, useChosenBackend } from "./bench/backend.ts";
import { isSoftwareDevice } from "./kernels/device.ts";

/** The most compile workers `--compile-workers` takes (each holds a CPU core and a device). */
const MAX_COMPILE_WORKERS = 16;

const USAGE = `sigmax: softmax vs sigmoid attention on WebGPU

usage: deno task demo [options]          (= deno run -A cli.ts demo [options])
       deno run -A cli.ts doctor         show the WebGPU adapter and its limits
       deno task train --task NAME [options]   train one model (cli.ts train; --help for more)
       deno task bench [-- --preset quick|full] deno bench, or the throughput sweep (cli.ts bench)
       deno task report -- RESULTS.json         the sweep's HTML report (cli.ts report)
       deno task study -- --preset quick|full   the sample-efficiency study (cli.ts study)
       deno run -A cli.ts model [--gpu]  the operation-count model of the kernels, forward
                                         and backward (software-adapter costs, or GPU
                                         costs with --gpu)

demo: prints the adapter and its backend, compiles the kernels it needs (a
live count, on every core of a software adapter; Mesa caches them, so only a
first run waits), checks fused and unfused kernels (forward and backward,
causal and not, odd sequence lengths) against the f64 reference, times fused
and unfused softmax and sigmoid attention forward and backward, and runs a
long-context forward pass (S up to 16384, past what the unfused S×S scores
fit in) to show the fused kernel's O(S·D) memory.

demo options:
  --seq-lens LIST   sequence lengths to time, comma-separated (default ${
  DEMO_SEQ_LENS.gpu.join(",")
} on a GPU,
                    ${DEMO_SEQ_LENS.software.join(",")} on a software adapter)
  --heads N         heads H (default ${DEMO_DEFAULTS.heads}); batch is 1
  --head-dims LIST  head dimensions D (1..256) to time, comma-separated (default ${
  DEMO_DEFAULTS.headDims.join(",")
})
  --reps N          timed rounds (each runs every kernel once), at least 5 (default ${DEMO_DEFAULTS.reps})
  --no-backward     time the forward pass only
  --no-long         skip the long-context run
  --compile-workers N  threads that compile kernels beside the main one (0 to
                    ${MAX_COMPILE_WORKERS}; default: one per extra CPU core on a software adapter,
                    at most 3, none on a GPU)
  -h, --help        show this help

The adapter: a real GPU where there is one, otherwise Mesa's software adapter.
On Linux sigmax asks Deno for Vulkan where a Vulkan driver is installed, else
OpenGL; DENO_WEBGPU_BACKEND=vulkan|gl picks one yourself. On OpenGL's
llvmpipe, \`apt-get install -y mesa-vulkan-drivers\` adds the Vulkan adapter
(lavapipe): shaders compile several times faster, and it has shader-f16.`;

/** Thrown for bad command-line input: printed with the usage hint, exit code 2. */
class UsageError extends Error {}

function positiveInt(name: string, text: string, max = Infinity): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new UsageError(`--${name} must be an integer from 1 to ${max}, got "${text}"`);
  }
  return n;
}

async function main(args: string[]): Promise<number> {
  // Commands with options of their own parse them themselves.
  // One backend's driver, named (before the first getDevice: Deno reads it once).
  const backend = useChosenBackend();
  if (args[0] === "train") return await trainMain(args.slice(1));
  if (args[0] === "bench") return await benchMain(args.slice(1));
  if (args[0] === "report") return await reportMain(args.slice(1));
  if (args[0] === "study") return await studyMain(args.slice(1));
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      "seq-lens": { type: "string" },
      heads: { type: "string" },
      "head-dims": { type: "string" },
      reps: { type: "string" },
      "no-long": { type: "boolean" },
      "no-backward": { type: "boolean" },
      "compile-workers": { type: "string" },
      gpu: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  const command = positionals[0] ?? "demo";
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  switch (command) {
    case "demo": {
      const options = { ...DEMO_DEFAULTS };
      if (values["seq-lens"] !== undefined) {
        options.seqLens = values["seq-lens"].split(",").map((s) => positiveInt("seq-lens", s));
      }
      if (values.heads !== undefined) options.heads = positiveInt("heads", values.heads);
      if (values["head-dims"] !== undefined) {
        options.headDims = values["head-dims"].split(",").map((s) =>
          positiveInt("head-dims", s, 256)
        );
      }
      if (values.reps !== undefined) options.reps = Math.max(5, positiveInt("reps", values.reps));
      if (values["no-long"]) options.long = false;
      if (values["no-backward"]) options.backward = false;
      if (values["compile-workers"] !== undefined) {
        const n = Number(values["compile-workers"]);
        if (!Number.isInteger(n) || n < 0 || n > MAX_COMPILE_WORKERS) {
          throw new UsageError(
            `--compile-workers must be an integer from 0 to ${MAX_COMPILE_WORKERS}, got "${
              values["compile-workers"]
            }"`,
          );
        }
        options.compileWorkers = n;
      }
      return (await runDemo(options, console.log, backend)) ? 0 : 1;
    }
    case "doctor": {
      const report = await adapterReport();
      console.log(`backend: ${backend.name} (${backend.why})`);
      const hint = backendHint(backend.name, isSoftwareDevice(await getDevice()));
      if (hint) console.log(hint);
      console.log(JSON.stringify({ backend: backend.name, ...report }, null, 2));
      return 0;
    }
    case "model": {
      const software = !values.gpu;
      const costs = software ? SOFTWARE_COSTS : GPU_COSTS;
      const forward = (D: number) => fusedTiles("softmax", D, FUSED_STORAGE_BUDGET, software);
      const backward = (D: number) =>
        fusedBackwardTiles("dq", "softmax", D, FUSED_STORAGE_BUDGET, software);
      const where = `tiles for a ${software ? "software adapter" : "GPU"}; cost in FMA ` +
        `equivalents with the ${software ? "software-adapter" : "GPU"} weights`;
      console.log(`Per-score operation counts of the forward kernels (${where}).\n`);
      console.log(opModelTable([32, 64, 128], forward, costs));
      console.log(`\nPer-score operation counts of the backward kernels (${where}).\n`);
      console.log(opModelTable([32, 64, 128], backward, costs, "backward"));
      return 0;
    }
    default:
      throw new UsageError(
        `unknown command "${command}" (try demo, train, bench, report, study, doctor or model)`,
      );
  }
}

if (import.meta.main) {
  try {
    // `deno task demo -- --reps 9` passes the "--" through: drop it.
    Deno.exit(await main(Deno.args.filter((arg) => arg !== "--")));
  } catch (error) {
    if (
      error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")
    ) {
      console.error(`sigmax: ${(error as Error).message}\nrun with --help for usage`);
      Deno.exit(2);
    }
    throw error;
  }
}
