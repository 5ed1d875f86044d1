/**
 * Measures how often a Deno process that used WebGPU from Worker threads
 * dies while exiting (the driver teardown crash that `tests/run.ts`
 * tolerates). Each run is a fresh `deno run` of this file in child mode:
 * two Workers (like two test modules on their threads) each request a
 * device and run one trivial dispatch, close themselves, and the process
 * exits as soon as both reported back, racing the Workers' teardown.
 *
 *   deno run -A bench/teardown_crash.ts --runs 100 --backend default,vulkan,gl
 *
 * `default` leaves `DENO_WEBGPU_BACKEND` unset (Deno loads every backend's
 * driver it finds); `vulkan` and `gl` load one; `vulkan-preload` also
 * preloads the Vulkan loader, drivers and layers (`LD_PRELOAD`), as
 * `deno task test` does.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { vulkanLibraries } from "./backend.ts";

const USAGE = `usage: deno run -A bench/teardown_crash.ts [--runs N] [--backend LIST] [--workers N]

Runs N fresh processes per backend that use WebGPU from Worker threads and
exit at once, and counts how many die of a signal (SIGSEGV, SIGABRT) instead
of exiting with 0.

options:
  --runs N        processes per backend (default 30)
  --backend LIST  comma-separated: default (DENO_WEBGPU_BACKEND unset), vulkan,
                  gl, vulkan-preload (vulkan with its libraries in LD_PRELOAD, as
                  deno task test runs) (default: default,vulkan,gl,vulkan-preload)
  --workers N     Worker threads per process (default 2)
  -h, --help      show this help`;

const WORKER_CODE = `
const adapter = await navigator.gpu.requestAdapter();
const device = await adapter.requestDevice();
const module = device.createShaderModule({ code:
  "@group(0) @binding(0) var<storage, read_write> x: array<f32>;\\n" +
  "@compute @workgroup_size(1) fn main() { x[0] = x[0] + 1.0; }" });
const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
const buffer = device.createBuffer({ size: 4, usage: GPUBufferUsage.STORAGE });
const bindGroup = device.createBindGroup({
  layout: pipeline.getBindGroupLayout(0),
  entries: [{ binding: 0, resource: { buffer } }],
});
const encoder = device.createCommandEncoder();
const pass = encoder.beginComputePass();
pass.setPipeline(pipeline);
pass.setBindGroup(0, bindGroup);
pass.dispatchWorkgroups(1);
pass.end();
device.queue.submit([encoder.finish()]);
await device.queue.onSubmittedWorkDone();
self.postMessage("done");
self.close();
`;

/** Child mode: start the Workers, exit the moment the last one is done. */
function child(workers: number): void {
  const url = `data:application/javascript,${encodeURIComponent(WORKER_CODE)}`;
  let done = 0;
  for (let i = 0; i < workers; i++) {
    const worker = new Worker(url, { type: "module" });
    worker.onmessage = () => {
      if (++done === workers) Deno.exit(0);
    };
    worker.onerror = (e) => {
      console.error(`worker failed: ${e.message}`);
      Deno.exit(3);
    };
  }
}

/** Outcomes of `runs` child processes: exit codes and signals, counted. */
export async function measure(
  backend: string,
  runs: number,
  workers: number,
  onRun: (i: number) => void = () => {},
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const env = Deno.env.toObject();
  delete env.DENO_WEBGPU_BACKEND;
  delete env.LD_PRELOAD;
  if (backend !== "default") env.DENO_WEBGPU_BACKEND = backend.replace("-preload", "");
  if (backend === "vulkan-preload") env.LD_PRELOAD = vulkanLibraries().join(" ");
  for (let i = 0; i < runs; i++) {
    const command = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", import.meta.filename!, "--child", String(workers)],
      env,
      clearEnv: true,
      stdout: "null",
      stderr: "null",
    });
    const { code, signal } = await command.output();
    const key = signal ?? `exit ${code}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    onRun(i);
  }
  return counts;
}

async function main(args: string[]): Promise<number> {
  if (args[0] === "--child") {
    child(Number(args[1] ?? 2));
    return await new Promise<number>(() => {});
  }
  const { values } = parseArgs({
    args,
    options: {
      runs: { type: "string", default: "30" },
      backend: { type: "string", default: "default,vulkan,gl,vulkan-preload" },
      workers: { type: "string", default: "2" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const runs = Number(values.runs);
  const workers = Number(values.workers);
  if (!Number.isInteger(runs) || runs < 1) {
    throw new RangeError(`--runs must be a positive integer, got "${values.runs}"`);
  }
  if (!Number.isInteger(workers) || workers < 1) {
    throw new RangeError(`--workers must be a positive integer, got "${values.workers}"`);
  }
  const backends = values.backend.split(",");
  for (const b of backends) {
    if (!["default", "vulkan", "gl", "vulkan-preload"].includes(b)) {
      throw new RangeError(`--backend takes default, vulkan, gl and vulkan-preload, got "${b}"`);
    }
  }
  console.log("| backend | runs | exit 0 | died of a signal | rate |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const backend of backends) {
    const counts = await measure(backend, runs, workers, (i) => {
      if ((i + 1) % 10 === 0) console.error(`  ${backend}: ${i + 1}/${runs} runs`);
    });
    const ok = counts.get("exit 0") ?? 0;
    const signals = [...counts].filter(([k]) => k.startsWith("SIG"));
    const crashed = signals.reduce((s, [, n]) => s + n, 0);
    const other = [...counts].filter(([k]) => k !== "exit 0" && !k.startsWith("SIG"));
    console.log(
      `| ${backend} | ${runs} | ${ok} | ${crashed}${
        signals.length ? ` (${signals.map(([k, n]) => `${k} ${n}`).join(", ")})` : ""
      }${other.length ? `; other: ${other.map(([k, n]) => `${k} ${n}`).join(", ")}` : ""} | ${
        (100 * crashed / runs).toFixed(0)
      }% |`,
    );
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
