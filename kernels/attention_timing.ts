/**
 * Timing attention on the GPU, as DESIGN.md measures speed: warm up, then the
 * median of at least five runs, each from GPU timestamps where the adapter
 * has `timestamp-query` and they read sane values, else from submit to
 * `onSubmittedWorkDone()`.
 *
 * @module
 */

import { type AttentionOptions, type AttentionShape, tensorLength } from "./attention_options.ts";
import { type AttentionBuffers, AttentionPlan, toStorage } from "./attention.ts";
import {
  createStorageBuffer,
  measureSubmit,
  pickClock,
  type SubmitTime,
  summarize,
  timeSubmit,
  uploadBuffer,
} from "./device.ts";

/**
 * One attention call ready to run again and again on resident buffers (see
 * {@linkcode attentionWorkload}).
 *
 * @example
 * ```ts
 * import { type AttentionWorkload, attentionWorkload } from "@sigmax/sigmax";
 * const work: AttentionWorkload = await attentionWorkload(
 *   { batch: 1, heads: 1, seqLen: 32, headDim: 8 },
 *   { activation: "softmax", causal: true },
 * );
 * console.log(work.plan.forwardFlops, await work.run());
 * work.destroy();
 * ```
 */
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
  const upload = (seed: number) =>
    uploadBuffer(
      device,
      toStorage(seededInputs(tensorLength(shape), seed), plan.options.precision),
      "attention.bench.input",
    );
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

/**
 * Result of {@linkcode timeAttention} and {@linkcode compareAttention}.
 *
 * @example
 * ```ts
 * import { type AttentionTiming, timeAttention } from "@sigmax/sigmax";
 * const t: AttentionTiming = await timeAttention(
 *   { batch: 1, heads: 1, seqLen: 64, headDim: 8 },
 *   { activation: "sigmoid" },
 * );
 * console.log(`${t.msMedian} ms (${t.clock}), ${t.gflops} GFLOP/s`);
 * ```
 */
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
 * console.log(t.msMedian, t.gflops, t.clock);
 * ```
 */
export async function timeAttention(
  shape: AttentionShape,
  options: AttentionOptions,
  timing: { warmup?: number; reps?: number } = {},
): Promise<AttentionTiming> {
  return (await compareAttention(shape, [options], timing))[0];
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
    const { clock, samples } = pickClock(runs);
    return samples.map((ms, i) => {
      const stats = summarize(ms);
      const gflops = works[i].plan.forwardFlops / stats.msMedian / 1e6;
      return { ...stats, gflops, samples: ms, clock };
    });
  } finally {
    for (const work of works) work.destroy();
  }
}
