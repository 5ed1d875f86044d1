/**
 * The demo behind `deno task demo`: which adapter runs, whether the kernels
 * agree with the reference, and how fused and unfused softmax and sigmoid
 * attention compare in speed on this machine.
 *
 * @module
 */

import {
  adapterReport,
  attention,
  attentionBackward,
  attentionBackwardReference,
  type AttentionPass,
  attentionReference,
  type AttentionShape,
  attentionWorkload,
  compareAttention,
  getDevice,
  seededInputs,
} from "../mod.ts";
import { AttentionPlan } from "../kernels/attention.ts";
import { compilePipelines, defaultCompileWorkers, isSoftwareDevice } from "../kernels/device.ts";
import { GPU_COSTS, KERNELS, modelledTiles, predictedSpeedup, SOFTWARE_COSTS } from "./op_model.ts";
import { type BackendChoice, backendHint, chooseBackend } from "./backend.ts";

/** Settings of the demo (the CLI's flags). */
export interface DemoOptions {
  /** Sequence lengths to time; default by adapter, {@linkcode DEMO_SEQ_LENS}. */
  seqLens?: number[];
  heads: number;
  headDims: number[];
  reps: number;
  /** Time the backward pass too. */
  backward: boolean;
  /** Run the long-context check (the smallest power-of-two S, at most 16384, whose S×S scores no storage binding can hold). */
  long: boolean;
  /** Compile workers beside the main thread (`compilePipelines`); default `defaultCompileWorkers`. */
  compileWorkers?: number;
}

/** One attention workload the demo runs: the kernels it needs are compiled before anything is timed. */
interface DemoWork {
  shape: AttentionShape;
  implementation: "fused" | "unfused";
  activation: "softmax" | "sigmoid";
  causal: boolean;
  pass: AttentionPass;
}

/**
 * The workloads in `work` that need different pipelines, each shrunk to the
 * smallest shape with the same pipelines: batch, heads and the sequence
 * length are runtime sizes; only the head dim and whether the sequence
 * length is a multiple of 4 (the unfused matmuls' vec4 access) are compiled in.
 */
export function distinctPipelines(work: DemoWork[]): DemoWork[] {
  const seen = new Map<string, DemoWork>();
  for (const w of work) {
    const seqLen = 4 + (w.shape.seqLen % 4 || 4);
    const key = [w.implementation, w.activation, w.causal, w.pass, w.shape.headDim, seqLen].join();
    if (!seen.has(key)) {
      seen.set(key, { ...w, shape: { batch: 1, heads: 1, seqLen, headDim: w.shape.headDim } });
    }
  }
  return [...seen.values()];
}

/** The long-context step's S: the smallest power of two from 1024 whose S×S f32 scores exceed `maxBinding` bytes, at most 16384. */
export function longContextSeqLen(maxBinding: number): number {
  let S = 1024;
  while (S < 16384 && S * S * 4 <= maxBinding) S *= 2;
  return S;
}

/**
 * The sequence lengths the demo times by default. On a software adapter
 * (a CPU, tens to hundreds of times slower than a GPU) the table stops at
 * S = 512: at S = 1024 it alone took about 50 of the demo's 190 s on this
 * project's 2-core machine, and showed the same ratios. `--seq-lens` times
 * any others.
 */
export const DEMO_SEQ_LENS = { gpu: [256, 512, 1024], software: [128, 256, 512] } as const;

/**
 * Defaults: B=1, H=4, D=64, S by adapter ({@linkcode DEMO_SEQ_LENS}), 5
 * timed rounds, forward and backward, long-context check on.
 */
export const DEMO_DEFAULTS: DemoOptions = {
  heads: 4,
  headDims: [64],
  reps: 5,
  backward: true,
  long: true,
};

/**
 * Runs the demo, printing as it goes; returns false if a kernel disagreed
 * with the reference. `backend` is the choice the caller applied before the
 * first `getDevice()` (see `bench/backend.ts`).
 */
export async function runDemo(
  options: DemoOptions,
  log: (line: string) => void = console.log,
  backend: BackendChoice = chooseBackend(),
): Promise<boolean> {
  const report = await adapterReport();
  const device = await getDevice();
  const software = isSoftwareDevice(device);
  const seqLens = options.seqLens ?? [...DEMO_SEQ_LENS[software ? "software" : "gpu"]];
  log(
    `adapter: ${report.description}${software ? " (software)" : ""}, backend ${backend.name} ` +
      `(${backend.why})`,
  );
  const hint = backendHint(backend.name, software);
  if (hint) log(`  ${hint}`);
  log(
    `  shader-f16: ${report.shaderF16 ? "yes" : "no"}, timestamp-query: ${
      report.timestampQuery ? "yes" : "no"
    }, workgroup memory: ${report.limits.maxComputeWorkgroupStorageSize} B, ` +
      `max storage binding: ${report.limits.maxStorageBufferBindingSize / 2 ** 20} MiB`,
  );

  // Every check and timing runs at the first head dim of the table, so that the
  // demo compiles one set of kernels; the checks take odd sequence lengths.
  const D = options.headDims[0];
  const checks: [AttentionShape, boolean][] = [
    [{ batch: 1, heads: 2, seqLen: 97, headDim: D }, true],
    [{ batch: 2, heads: 2, seqLen: 61, headDim: D }, false],
  ];
  const longS = longContextSeqLen(report.limits.maxStorageBufferBindingSize);
  const longShape = { batch: 1, heads: 1, seqLen: longS, headDim: D };
  const passes: AttentionPass[] = options.backward ? ["forward", "backward"] : ["forward"];
  const work: DemoWork[] = [];
  for (const [shape, causal] of checks) {
    for (const pass of ["forward", "backward"] as const) {
      for (const k of KERNELS) work.push({ shape, causal, pass, ...k });
    }
  }
  for (const pass of passes) {
    for (const headDim of options.headDims) {
      for (const seqLen of seqLens) {
        for (const k of KERNELS) {
          work.push({
            shape: { batch: 1, heads: options.heads, seqLen, headDim },
            causal: false,
            pass,
            ...k,
          });
        }
      }
    }
  }
  if (options.long) {
    work.push({
      shape: longShape,
      causal: false,
      pass: "forward",
      implementation: "fused",
      activation: "sigmoid",
    });
  }
  await compileKernels(distinctPipelines(work), log, options.compileWorkers);

  log("\nkernels against the f64 reference (tolerance |err| ≤ 1e-5 + 1e-4·|ref|):");
  let allGood = true;
  for (const [shape, causal] of checks) {
    const n = shape.batch * shape.heads * shape.seqLen * shape.headDim;
    const [q, k, v] = [seededInputs(n, 1), seededInputs(n, 2), seededInputs(n, 3)];
    const cells: string[] = [];
    for (const { implementation, activation } of KERNELS) {
      const opts = { activation, causal, implementation };
      const got = await attention(q, k, v, shape, opts);
      const ref = attentionReference(q, k, v, shape, opts);
      let maxErr = 0;
      let ok = true;
      for (let i = 0; i < n; i++) {
        const err = Math.abs(got[i] - ref[i]);
        if (!(err <= 1e-5 + 1e-4 * Math.abs(ref[i]))) ok = false;
        maxErr = Math.max(maxErr, err);
      }
      allGood &&= ok;
      cells.push(
        `${implementation} ${activation} ${maxErr.toExponential(1)} ${ok ? "ok" : "FAIL"}`,
      );
    }
    const { batch: B, heads: H, seqLen: S } = shape;
    log(`  [${B},${H},${S},${D}]${causal ? " causal" : "       "}  ${cells.join("  ")}`);
  }
  log("backward (dq, dk, dv; tolerance |err| ≤ 1e-4 + 1e-3·|ref|):");
  for (const [shape, causal] of checks) {
    const n = shape.batch * shape.heads * shape.seqLen * shape.headDim;
    const [q, k, v, dOut] = [1, 2, 3, 4].map((seed) => seededInputs(n, seed));
    const cells: string[] = [];
    for (const { implementation, activation } of KERNELS) {
      const opts = { activation, causal, implementation };
      const got = await attentionBackward(q, k, v, dOut, shape, opts);
      const ref = attentionBackwardReference(q, k, v, dOut, shape, opts);
      let maxErr = 0;
      let ok = true;
      for (const g of ["dq", "dk", "dv"] as const) {
        for (let i = 0; i < n; i++) {
          const err = Math.abs(got[g][i] - ref[g][i]);
          if (!(err <= 1e-4 + 1e-3 * Math.abs(ref[g][i]))) ok = false;
          maxErr = Math.max(maxErr, err);
        }
      }
      allGood &&= ok;
      cells.push(
        `${implementation} ${activation} ${maxErr.toExponential(1)} ${ok ? "ok" : "FAIL"}`,
      );
    }
    const { batch: B, heads: H, seqLen: S } = shape;
    log(`  [${B},${H},${S},${D}]${causal ? " causal" : "       "}  ${cells.join("  ")}`);
  }

  const H = options.heads;
  const costs = software ? SOFTWARE_COSTS : GPU_COSTS;
  const clocks = new Set<string>();
  for (const pass of passes) {
    log(
      `\n${pass} time, B=1 H=${H}: kernels interleaved, median of ${options.reps} rounds ` +
        `(ms and GFLOP/s, ${pass === "forward" ? "" : "2.5 × "}4·B·H·S²·D FLOPs)`,
    );
    log(
      "       D       S" + KERNELS.map((k) => k.name.padStart(20)).join("") +
        "  sig/soft fused (model)  fused/unfused soft  sig",
    );
    for (const D of options.headDims) {
      const tiles = modelledTiles(device, pass, D, software);
      const model = predictedSpeedup("fused sigmoid", "fused softmax", D, tiles, costs, pass);
      for (const S of seqLens) {
        const shape = { batch: 1, heads: H, seqLen: S, headDim: D };
        const times = await compareAttention(shape, [...KERNELS], { reps: options.reps, pass });
        const ms = times.map((t) => t.msMedian);
        for (const t of times) {
          clocks.add(t.clock === "timestamp" ? "GPU timestamps" : "wall clock (submit to done)");
        }
        const cells = times.map((t) => `${t.msMedian.toFixed(1)} ms ${t.gflops.toFixed(2)}`);
        const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
        log(
          `  ${String(D).padStart(6)}${String(S).padStart(8)}${
            cells.map((c) => c.padStart(20)).join("")
          }` +
            `  ${ratio(ms[0], ms[1]).padStart(8)} (${model.toFixed(2)}×)` +
            `  ${ratio(ms[2], ms[0]).padStart(14)}  ${ratio(ms[3], ms[1]).padStart(6)}`,
        );
      }
    }
  }
  log("  ratios are time(baseline)/time(kernel): above 1× the kernel is faster.");
  log(`  timed with ${[...clocks].join(" and ")}; the model's prediction in brackets.`);

  if (options.long) {
    const S = longS;
    log(`\nlong context, S=${S} H=1 D=${D}:`);
    try {
      const unfused = await attentionWorkload(longShape, {
        activation: "sigmoid",
        implementation: "unfused",
      });
      await unfused.run();
      unfused.destroy();
      log("  unfused: ran (this adapter has room for the S×S scores)");
    } catch (error) {
      log(`  unfused: refused: ${(error as Error).message}`);
    }
    // One run: its kernel was compiled (and run once) with the others before
    // anything was timed; this shows memory, not speed (the tables are the timing).
    const work = await attentionWorkload(longShape, { activation: "sigmoid" });
    try {
      const ms = await work.run();
      const mib = (4 * work.plan.tensorBytes) / 2 ** 20;
      log(
        `  fused sigmoid: ran in ${(ms / 1000).toFixed(2)} s (${
          (work.plan.forwardFlops / ms / 1e6).toFixed(2)
        } GFLOP/s, one run, kernel compiled beforehand); ` +
          `global memory ${mib.toFixed(0)} MiB for q, k, v, out: O(S·D)`,
      );
    } finally {
      work.destroy();
    }
  }
  return allGood;
}

/**
 * Compiles the kernels of `work` before anything is timed: builds each
 * workload's plan at its small shape (which creates its pipelines), then
 * runs every new pipeline once with `compilePipelines` (Mesa's drivers
 * generate a shader's code at its first dispatch, so creating the pipeline
 * is not enough). The count is of pipelines, the unit a driver compiles. On a
 * terminal a live line counts them ("compiling kernels 3/12"); otherwise each
 * one that took longer than half a second gets a line.
 */
async function compileKernels(
  work: DemoWork[],
  log: (line: string) => void,
  workers?: number,
): Promise<void> {
  const tty = log === console.log && Deno.stdout.isTerminal();
  const encoder = new TextEncoder();
  const t0 = performance.now();
  const device = await getDevice();
  const plans = [];
  try {
    for (const w of work) {
      plans.push(
        await AttentionPlan.create(
          w.shape,
          { activation: w.activation, implementation: w.implementation, causal: w.causal },
          { backward: w.pass === "backward" },
        ),
      );
    }
    let announced = false;
    const threads = 1 + (workers ?? defaultCompileWorkers(device));
    const count = await compilePipelines(device, ({ done, total, label, ms }) => {
      if (!announced) {
        log(
          `\ncompiling kernels: ${total} pipelines for ${work.length} workloads on ${threads} ` +
            `thread${threads > 1 ? "s" : ""} (cached ones take milliseconds):`,
        );
        announced = true;
      }
      if (tty) {
        Deno.stdout.writeSync(
          encoder.encode(
            `\r\x1b[2K  compiling kernels ${done}/${total}: ${label} (${(ms / 1000).toFixed(1)} s)`,
          ),
        );
      } else if (ms > 500) {
        log(`  compiling kernels ${done}/${total}: ${label}: ${(ms / 1000).toFixed(1)} s`);
      }
    }, { workers: threads - 1 });
    if (tty && count > 0) Deno.stdout.writeSync(encoder.encode("\r\x1b[2K"));
  } finally {
    for (const plan of plans) plan.destroy();
  }
  log(`  kernels ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
