/**
 * Timing attention on the GPU, as DESIGN.md measures speed: warm up, then the
 * median of at least five runs, each from submit to `onSubmittedWorkDone()`.
 *
 * @module
 */

import type { AttentionOptions, AttentionShape } from "./attention_options.ts";
import { type AttentionBuffers, AttentionPlan } from "./attention.ts";
import {
  createStorageBuffer,
  measureSubmit,
  type SubmitTime,
  summarize,
  timeGpu,
  timeSubmit,
  uploadBuffer,
} from "./device.ts";

/** One attention call ready to run again and again on resident buffers. */
export interface AttentionWorkload {
  /** The compiled plan (shape, resolved options, FLOPs). */
  plan: AttentionPlan;
  /** The resident q, k, v and out buffers. */
  buffers: AttentionBuffers;
  /**
   * Submits one forward pass, waits for the GPU, and returns its time in ms:
   * from GPU timestamps where the device has `timestamp-query` and they read
   * sane values, else from submit to `onSubmittedWorkDone()`.
   */
  run(): Promise<number>;
  /** Frees the buffers and the plan. */
  destroy(): void;
}

/**
 * Deterministic inputs in [-1, 1) from a fixed LCG, so that every run times
 * (or checks) the same data.
 *
 * @example
 * ```ts
 * import { seededInputs } from "@sigmax/sigmax";
 * console.log(seededInputs(3, 1)); // the same three numbers on every machine
 * ```
 */
export function seededInputs(length: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x / 2 ** 31 - 1;
  }
  return out;
}

/**
 * Builds a plan, uploads deterministic q, k, v and allocates the output, so
 * that {@linkcode AttentionWorkload.run} times the kernels alone.
 *
 * @example
 * ```ts
 * import { attentionWorkload } from "@sigmax/sigmax";
 * const work = await attentionWorkload(
 *   { batch: 1, heads: 1, seqLen: 64, headDim: 16 },
 *   { activation: "sigmoid" },
 * );
 * await work.run(); // the first run pays for shader compilation
 * const ms = await work.run();
 * console.log(`${ms.toFixed(2)} ms, ${(work.plan.forwardFlops / ms / 1e6).toFixed(3)} GFLOP/s`);
 * work.destroy();
 * ```
 */
export async function attentionWorkload(
  shape: AttentionShape,
  options: AttentionOptions,
): Promise<AttentionWorkload> {
  const plan = await AttentionPlan.create(shape, options);
  const { device, tensorBytes } = plan;
  const length = tensorBytes / (plan.options.precision === "f16" ? 2 : 4);
  const upload = (seed: number) => {
    const data = seededInputs(length, seed);
    return uploadBuffer(
      device,
      plan.options.precision === "f16" ? new Uint16Array(Float16Array.from(data).buffer) : data,
      "attention.bench.input",
    );
  };
  const buffers = {
    q: upload(1),
    k: upload(2),
    v: upload(3),
    out: createStorageBuffer(device, tensorBytes, "attention.bench.out"),
  };
  return {
    plan,
    buffers,
    run: () => timeSubmit(device, (encoder) => plan.encodeForward(encoder, buffers)),
    destroy() {
      for (const buffer of Object.values(buffers)) buffer.destroy();
      plan.destroy();
    },
  };
}

/** Result of {@linkcode timeAttention}. */
export interface AttentionTiming {
  /** Median time of the timed runs, ms. */
  msMedian: number;
  /** Fastest timed run, ms. */
  msMin: number;
  /** Slowest timed run, ms. */
  msMax: number;
  /** FLOPs of one forward pass divided by the median time. */
  gflops: number;
  /** Every timed run, in ms. */
  samples: number[];
  /** Which clock timed the runs (see `GpuTiming.clock`). */
  clock: "timestamp" | "wall";
}

/**
 * Times the forward pass: `warmup` untimed runs (the first compiles), then the
 * median of `reps` (at least 5) timed runs.
 *
 * @example
 * ```ts
 * import { timeAttention } from "@sigmax/sigmax";
 * const t = await timeAttention(
 *   { batch: 1, heads: 2, seqLen: 128, headDim: 32 },
 *   { activation: "softmax", causal: true },
 * );
 * console.log(t.msMedian, t.gflops);
 * ```
 */
export async function timeAttention(
  shape: AttentionShape,
  options: AttentionOptions,
  timing: { warmup?: number; reps?: number } = {},
): Promise<AttentionTiming> {
  const work = await attentionWorkload(shape, options);
  try {
    const { samples, msMedian, msMin, msMax, clock } = await timeGpu(
      work.plan.device,
      (encoder) => work.plan.encodeForward(encoder, work.buffers),
      { warmup: timing.warmup ?? 1, reps: timing.reps },
    );
    const gflops = work.plan.forwardFlops / msMedian / 1e6;
    return { msMedian, msMin, msMax, gflops, samples, clock };
  } finally {
    work.destroy();
  }
}

/**
 * Times several variants of the same attention call (say softmax against
 * sigmoid, fused against unfused) interleaved: each round runs every variant
 * once, in turn, so that a slow patch of a noisy machine hits them all alike.
 * After `warmup` untimed rounds, `reps` (at least 5) timed rounds; returns
 * one {@linkcode AttentionTiming} per variant, in order.
 *
 * @example
 * ```ts
 * import { compareAttention } from "@sigmax/sigmax";
 * const shape = { batch: 1, heads: 2, seqLen: 128, headDim: 32 };
 * const [soft, sig] = await compareAttention(shape, [
 *   { activation: "softmax" },
 *   { activation: "sigmoid" },
 * ]);
 * console.log(`sigmoid/softmax speed: ${(soft.msMedian / sig.msMedian).toFixed(2)}×`);
 * ```
 */
export async function compareAttention(
  shape: AttentionShape,
  variants: AttentionOptions[],
  timing: { warmup?: number; reps?: number } = {},
): Promise<AttentionTiming[]> {
  const works: AttentionWorkload[] = [];
  try {
    for (const options of variants) works.push(await attentionWorkload(shape, options));
    const runs = works.map(() => [] as SubmitTime[]);
    const reps = Math.max(5, timing.reps ?? 5);
    for (let round = -(timing.warmup ?? 1); round < reps; round++) {
      for (const [i, work] of works.entries()) {
        const t = await measureSubmit(
          work.plan.device,
          (encoder) => work.plan.encodeForward(encoder, work.buffers),
        );
        if (round >= 0) runs[i].push(t);
      }
    }
    // One clock for all: timestamps only if every run of every variant read sane values.
    const timestamps = runs.every((r) => r.every((t) => t.gpuMs !== undefined));
    return runs.map((r, i) => {
      const samples = r.map((t) => timestamps ? t.gpuMs! : t.wallMs);
      const stats = summarize(samples);
      const gflops = works[i].plan.forwardFlops / stats.msMedian / 1e6;
      return { ...stats, gflops, samples, clock: timestamps ? "timestamp" : "wall" };
    });
  } finally {
    for (const work of works) work.destroy();
  }
}
