/**
 * Where a cold first run spends its time: every compute pipeline a workload
 * creates, with the wall and CPU time `createComputePipeline` took and the
 * size of its WGSL. Run it with an empty Mesa shader cache to see the cold
 * cost (the script says whether the cache folder was empty):
 *
 *   MESA_SHADER_CACHE_DIR=$(mktemp -d) DENO_WEBGPU_BACKEND=gl \
 *     deno run -A bench/compile_profile.ts --workload demo
 *
 * The WebGPU device is wrapped, not changed: `createShaderModule`,
 * `createComputePipeline` and the first submission that dispatches each
 * pipeline are timed around the real calls. Both Mesa drivers generate the
 * machine code at a pipeline's first dispatch (`createComputePipeline` does
 * the front end only), so the first submission's time (submit until the
 * queue is done, which also holds the dispatch's small run time) is the
 * cold compile. The demo runs each pipeline once by itself
 * (`compilePipelines`), so each row is one pipeline's compile.
 *
 * What drives it, measured: on Vulkan lavapipe, a new compile for every new
 * value of a uniform that steers control flow (Mesa's uniform inlining: every
 * sequence length, causal flag or activation flag), unless the kernel reads
 * its uniforms at an offset the compiler cannot fold (the software kernels
 * do); and the unrolled rows × head dim (R = 1/2/4/8 rows per lane:
 * 2.1/3.2/5.7/13.6 s). On OpenGL llvmpipe, naga's zero-initialisation of
 * workgroup memory, one store per 4 bytes, whose cost grows with the
 * kernel's size (sigmoid forward D=64 R=2: 32 s CPU with 16 KiB of tiles,
 * 8 s with 4 KiB).
 *
 * @module
 */

import { parseArgs } from "node:util";
import process from "node:process";
import { adapterReport, attentionWorkload, getDevice } from "../mod.ts";
import { runDemo } from "./demo.ts";
import { fusedForwardWgsl } from "../kernels/attention_fused.ts";

const USAGE = `usage: deno run -A bench/compile_profile.ts [options]

Creates the pipelines of a workload and prints, per pipeline, the time
createComputePipeline took (wall and CPU), the WGSL size, and the totals.

options:
  --workload NAME  demo: the pipelines \`deno task demo\` creates (its checks,
                   the timing table at D=64 and the long-context step; the
                   kernels run at small sizes, which do not change the
                   pipelines); checks: only the demo's reference checks;
                   fused: the demo's fused kernels alone (softmax and sigmoid,
                   forward and backward, D=64, S=8) (default demo)
  --json PATH      also write the rows as JSON to PATH
  --quiet          do not pass the workload's own output through
  --drivers        instead: what drives one kernel's compile time. Compiles
                   the fused sigmoid forward kernel at D=64 with R = 1, 2, 4, 8
                   rows per lane and key tiles of 32 and 8 rows (16 KiB and
                   4 KiB of workgroup memory, which the OpenGL backend
                   zero-initialises with one store per vec4), each in a fresh
                   process with an empty shader cache, on the backend given
  --one FILE       compile and dispatch one WGSL file once (--drivers' child);
                   --constants NAME=V,... sets its override constants
  -h, --help       show this help

Give it a cold cache with MESA_SHADER_CACHE_DIR=$(mktemp -d), and pick the
backend with DENO_WEBGPU_BACKEND=gl|vulkan.`;

/** One created pipeline. */
export interface PipelineCompile {
  label: string;
  /** Characters of WGSL of the pipeline's shader module. */
  wgslChars: number;
  /** `createShaderModule` wall time, ms. */
  moduleMs: number;
  /** `createComputePipeline` wall time, ms (Mesa compiles here). */
  pipelineMs: number;
  /** CPU time (user + sys, whole process) during `createComputePipeline`, ms. */
  pipelineCpuMs: number;
  /**
   * Wall time of the first submission that dispatched this pipeline, submit
   * until the queue was done, ms; shared out evenly when one submission held
   * several new pipelines. NaN until it is dispatched.
   */
  firstSubmitMs: number;
  /** CPU time (user + sys, whole process) of that submission, ms, shared out the same way. */
  firstSubmitCpuMs: number;
}

/** Wraps `device`'s shader-module and pipeline creation to record a {@linkcode PipelineCompile} per pipeline. */
export function recordCompiles(
  device: GPUDevice,
  onCompile: (row: PipelineCompile) => void = () => {},
): PipelineCompile[] {
  const rows: PipelineCompile[] = [];
  const byPipeline = new WeakMap<GPUComputePipeline, PipelineCompile>();
  const used = new WeakMap<GPUCommandEncoder | GPUCommandBuffer, Set<GPUComputePipeline>>();
  const modules = new WeakMap<GPUShaderModule, { chars: number; ms: number }>();
  const createShaderModule = device.createShaderModule.bind(device);
  const createComputePipeline = device.createComputePipeline.bind(device);
  device.createShaderModule = (descriptor: GPUShaderModuleDescriptor) => {
    const t0 = performance.now();
    const module = createShaderModule(descriptor);
    modules.set(module, { chars: descriptor.code.length, ms: performance.now() - t0 });
    return module;
  };
  device.createComputePipeline = (descriptor: GPUComputePipelineDescriptor) => {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const pipeline = createComputePipeline(descriptor);
    const pipelineMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const module = modules.get(descriptor.compute.module) ?? { chars: NaN, ms: NaN };
    const row: PipelineCompile = {
      label: descriptor.label ?? "(no label)",
      wgslChars: module.chars,
      moduleMs: module.ms,
      pipelineMs,
      pipelineCpuMs: (cpu.user + cpu.system) / 1000,
      firstSubmitMs: NaN,
      firstSubmitCpuMs: NaN,
    };
    rows.push(row);
    byPipeline.set(pipeline, row);
    return pipeline;
  };
  // Which pipelines each command buffer dispatches.
  const createCommandEncoder = device.createCommandEncoder.bind(device);
  device.createCommandEncoder = (descriptor?: GPUCommandEncoderDescriptor) => {
    const encoder = createCommandEncoder(descriptor);
    const pipelines = new Set<GPUComputePipeline>();
    used.set(encoder, pipelines);
    const beginComputePass = encoder.beginComputePass.bind(encoder);
    encoder.beginComputePass = (passDescriptor?: GPUComputePassDescriptor) => {
      const pass = beginComputePass(passDescriptor);
      const setPipeline = pass.setPipeline.bind(pass);
      pass.setPipeline = (pipeline: GPUComputePipeline) => {
        pipelines.add(pipeline);
        setPipeline(pipeline);
      };
      return pass;
    };
    const finish = encoder.finish.bind(encoder);
    encoder.finish = (finishDescriptor?: GPUCommandBufferDescriptor) => {
      const buffer = finish(finishDescriptor);
      used.set(buffer, pipelines);
      return buffer;
    };
    return encoder;
  };
  const queue = device.queue;
  const submit = queue.submit.bind(queue);
  queue.submit = (buffers: Iterable<GPUCommandBuffer>) => {
    const list = [...buffers];
    const fresh = new Set<PipelineCompile>();
    for (const b of list) {
      for (const p of used.get(b) ?? []) {
        const row = byPipeline.get(p);
        if (row && Number.isNaN(row.firstSubmitMs)) fresh.add(row);
      }
    }
    if (fresh.size === 0) return submit(list);
    for (const row of fresh) row.firstSubmitMs = 0; // claimed: later submissions are not first
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    submit(list);
    queue.onSubmittedWorkDone().then(() => {
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      for (const row of fresh) {
        row.firstSubmitMs = ms / fresh.size;
        row.firstSubmitCpuMs = (cpu.user + cpu.system) / 1000 / fresh.size;
        onCompile(row);
      }
    });
  };
  return rows;
}

/** A table of the rows, slowest first, with totals. */
export function compileTable(rows: PipelineCompile[]): string {
  const total = (r: PipelineCompile) => r.pipelineMs + (r.firstSubmitMs || 0);
  const sorted = [...rows].sort((a, b) => total(b) - total(a));
  const s = (ms: number) => Number.isNaN(ms) ? "–" : (ms / 1000).toFixed(2);
  const lines = [
    "| pipeline | WGSL chars | create s (CPU s) | first submit s (CPU s) | sum s |",
    "| --- | ---: | ---: | ---: | ---: |",
    ...sorted.map((r) =>
      `| ${r.label} | ${r.wgslChars} | ${s(r.pipelineMs)} (${s(r.pipelineCpuMs)}) | ` +
      `${s(r.firstSubmitMs)} (${s(r.firstSubmitCpuMs)}) | ${s(total(r))} |`
    ),
  ];
  const sum = (f: (r: PipelineCompile) => number) => rows.reduce((a, r) => a + (f(r) || 0), 0);
  lines.push(
    `| **${rows.length} pipelines** | | **${s(sum((r) => r.pipelineMs))} (${
      s(sum((r) => r.pipelineCpuMs))
    })** | **${s(sum((r) => r.firstSubmitMs))} (${s(sum((r) => r.firstSubmitCpuMs))})** | **${
      s(sum(total))
    }** |`,
  );
  return lines.join("\n");
}

/** One compile-and-dispatch of a WGSL file: creation and first-submission wall and CPU seconds. */
interface OneCompile {
  chars: number;
  createS: number;
  createCpuS: number;
  submitS: number;
  submitCpuS: number;
}

/**
 * Compiles `code` and dispatches one workgroup with zero-filled bindings (a
 * uniform at binding 0 when the shader declares one, storage buffers for the
 * rest; with a zero sequence length the kernel does no work), so that Mesa's
 * OpenGL driver generates the shader's code too.
 */
async function compileOne(code: string, constants: Record<string, number>): Promise<OneCompile> {
  const device = await getDevice();
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  let c = cpu();
  let t = performance.now();
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code });
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main", constants },
  });
  const error = await device.popErrorScope();
  if (error) throw new Error(`the shader did not compile: ${error.message}`);
  const createS = (performance.now() - t) / 1000;
  const createCpuS = cpu() - c;
  const bindings = [...code.matchAll(/@binding\((\d+)\) var<(\w+)/g)];
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: bindings.map(([, binding, space]) => ({
      binding: Number(binding),
      resource: {
        buffer: device.createBuffer({
          size: 1 << 16,
          usage: space === "uniform" ? GPUBufferUsage.UNIFORM : GPUBufferUsage.STORAGE,
        }),
      },
    })),
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(1);
  pass.end();
  c = cpu();
  t = performance.now();
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
  return {
    chars: code.length,
    createS,
    createCpuS,
    submitS: (performance.now() - t) / 1000,
    submitCpuS: cpu() - c,
  };
}

/** `--drivers`: the fused sigmoid forward kernel at D=64 over rows per lane and key tiles, each cold. */
async function drivers(): Promise<void> {
  const backend = Deno.env.get("DENO_WEBGPU_BACKEND") ?? "(default)";
  console.log(`backend ${backend}; each row a fresh process with an empty shader cache\n`);
  console.log(
    "| kernel | R | BK | workgroup bytes | WGSL chars | create s (CPU) | first dispatch s (CPU) |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  const dir = await Deno.makeTempDir({ prefix: "sigmax-compile-" });
  try {
    for (const rowsPerLane of [1, 2, 4, 8]) {
      for (const keys of [32, 8]) {
        const file = `${dir}/r${rowsPerLane}.wgsl`;
        await Deno.writeTextFile(
          file,
          fusedForwardWgsl({ activation: "sigmoid", headDim: 64, precision: "f32", rowsPerLane }),
        );
        const cache = await Deno.makeTempDir({ dir, prefix: "cache-" });
        const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            import.meta.filename!,
            "--one",
            file,
            "--constants",
            `WG=16,BK=${keys}`,
          ],
          env: { MESA_SHADER_CACHE_DIR: cache },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(stdout);
        if (code !== 0) throw new Error(`--one failed: ${new TextDecoder().decode(stderr)}`);
        const r = JSON.parse(text.trim().split("\n").pop()!) as OneCompile;
        const f = (x: number) => x.toFixed(2);
        console.log(
          `| attention.forward.sigmoid.d64 | ${rowsPerLane} | ${keys} | ${2 * keys * 16 * 16} | ` +
            `${r.chars} | ${f(r.createS)} (${f(r.createCpuS)}) | ${f(r.submitS)} (${
              f(r.submitCpuS)
            }) |`,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      workload: { type: "string", default: "demo" },
      json: { type: "string" },
      quiet: { type: "boolean" },
      drivers: { type: "boolean" },
      one: { type: "string" },
      constants: { type: "string", default: "" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.one !== undefined) {
    const constants: Record<string, number> = {};
    for (const kv of values.constants.split(",").filter(Boolean)) {
      const [name, value] = kv.split("=");
      if (!name || !Number.isFinite(Number(value))) {
        console.error(`--constants takes NAME=NUMBER,..., got "${kv}"`);
        return 2;
      }
      constants[name] = Number(value);
    }
    console.log(JSON.stringify(await compileOne(await Deno.readTextFile(values.one), constants)));
    return 0;
  }
  if (values.drivers) {
    await drivers();
    return 0;
  }
  const workload = values.workload;
  if (workload !== "demo" && workload !== "checks" && workload !== "fused") {
    console.error(`--workload must be demo, checks or fused, got "${workload}"`);
    return 2;
  }
  const cacheDir = Deno.env.get("MESA_SHADER_CACHE_DIR");
  let cold = "unknown (MESA_SHADER_CACHE_DIR is not set: Mesa's default cache)";
  if (cacheDir) {
    let entries = 0;
    try {
      for await (const _ of Deno.readDir(cacheDir)) entries++;
    } catch { /* a missing folder is an empty cache */ }
    cold = entries === 0 ? `cold (${cacheDir} is empty)` : `warm? (${cacheDir} has entries)`;
  }
  const device = await getDevice();
  const report = await adapterReport();
  console.error(
    `compile profile: ${report.description}, backend ${
      Deno.env.get("DENO_WEBGPU_BACKEND") ?? "(default)"
    }, shader cache ${cold}`,
  );
  const rows = recordCompiles(device, (row) =>
    console.error(
      `  compiled ${row.label}: created in ${(row.pipelineMs / 1000).toFixed(2)} s, first ` +
        `submission ${(row.firstSubmitMs / 1000).toFixed(2)} s ` +
        `(${((row.pipelineCpuMs + row.firstSubmitCpuMs) / 1000).toFixed(2)} s CPU in all, ` +
        `${row.wgslChars} chars of WGSL)`,
    ));
  const log = values.quiet ? () => {} : (...a: unknown[]) => console.error(...a);
  const t0 = performance.now();
  if (workload === "fused") {
    for (const pass of ["forward", "backward"] as const) {
      for (const activation of ["softmax", "sigmoid"] as const) {
        const shape = { batch: 1, heads: 1, seqLen: 8, headDim: 64 };
        const work = await attentionWorkload(shape, { activation }, pass);
        await work.run();
        work.destroy();
      }
    }
  } else {
    await runDemo({
      seqLens: [64],
      heads: 1,
      headDims: [64],
      reps: 5,
      backward: workload === "demo",
      long: workload === "demo",
      compileWorkers: 0, // one pipeline at a time: each row is one compile
    }, log);
  }
  const totalS = (performance.now() - t0) / 1000;
  console.log(compileTable(rows));
  console.log(`\nworkload ${workload}: ${totalS.toFixed(1)} s wall in all`);
  if (values.json) {
    await Deno.writeTextFile(
      values.json,
      JSON.stringify({ adapter: report.description, cache: cold, workload, rows }, null, 2),
    );
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
