/**
 * Timing attention on the GPU, as DESIGN.md measures speed: warm up, then the
 * median of at least five runs, each from GPU timestamps where the adapter
 * has `timestamp-query` and they read sane values, else from submit to
 * `onSubmittedWorkDone()`.
 *
 * @module
 */

import { type AttentionOptions, type AttentionShape, tensorLength } from "./attention_options.ts";
import { type AttentionBackwardBuffers, AttentionPlan, toStorage } from "./attention.ts";
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
 * console.log(work.flops, await work.run());
 * work.destroy();
 * ```
 */
export interface AttentionWorkload {
  /** The compiled plan (shape, resolved options, FLOPs). */
  plan: AttentionPlan;
  /** The pass this workload runs. */
  pass: AttentionPass;
  /** FLOPs of one run of the pass (FlashAttention's convention). */
  flops: number;
  /**
   * The resident buffers: q, k, v, out and lse, plus (for the backward pass)
   * dOut, dq, dk and dv. The forward pass has run once on them, so that out
   * and lse are what the backward pass expects.
   */
  buffers:
    & Partial<AttentionBackwardBuffers>
    & Pick<AttentionBackwardBuffers, "q" | "k" | "v" | "out">;
  /** GPU memory the workload holds: its buffers plus the plan's scratch, in bytes. */
  bytes: number;
  /** Records one run of the pass into `encoder`. */
  encode(encoder: GPUCommandEncoder): void;
  /**
   * Submits one run of the pass, waits for the GPU, and returns its time in
   * ms: from GPU timestamps where the device has `timestamp-query` and they
   * read sane values, else from submit to `onSubmittedWorkDone()`.
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
 * Which pass a workload runs: `"forward"`, or `"backward"` (dq, dk, dv from
 * dOut, after one untimed forward pass that writes out and lse).
 *
 * @example
 * ```ts
 * import type { AttentionPass } from "@sigmax/sigmax";
 * const both: AttentionPass[] = ["forward", "backward"];
 * console.log(both);
 * ```
 */
export type AttentionPass = "forward" | "backward";

/**
 * Builds a plan, uploads deterministic q, k, v (and dOut for the backward
 * pass) and allocates the outputs, so that {@linkcode AttentionWorkload.run}
 * times the kernels alone.
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
  pass: AttentionPass = "forward",
): Promise<AttentionWorkload> {
  if (pass !== "forward" && pass !== "backward") {
    throw new TypeError(`pass must be "forward" or "backward", got ${JSON.stringify(pass)}`);
  }
  const backward = pass === "backward";
  const plan = await AttentionPlan.create(shape, options, { backward });
  const { device, tensorBytes } = plan;
  const upload = (seed: number) =>
    uploadBuffer(
      device,
      toStorage(seededInputs(tensorLength(shape), seed), plan.options.precision),
      "attention.bench.input",
    );
  const tensor = () => createStorageBuffer(device, tensorBytes, "attention.bench.output");
  const buffers: AttentionWorkload["buffers"] = {
    q: upload(1),
    k: upload(2),
    v: upload(3),
    out: tensor(),
    lse: createStorageBuffer(device, plan.lseBytes, "attention.bench.lse"),
  };
  if (backward) {
    Object.assign(buffers, { dOut: upload(4), dq: tensor(), dk: tensor(), dv: tensor() });
    const encoder = device.createCommandEncoder({ label: "attention.bench.forward" });
    plan.encodeForward(encoder, buffers);
    device.queue.submit([encoder.finish()]);
  }
  const encode = backward
    ? (encoder: GPUCommandEncoder) =>
      plan.encodeBackward(encoder, buffers as AttentionBackwardBuffers)
    : (encoder: GPUCommandEncoder) => plan.encodeForward(encoder, buffers);
  return {
    plan,
    pass,
    flops: backward ? plan.backwardFlops : plan.forwardFlops,
    buffers,
    bytes: Object.values(buffers).reduce((n, b) => n + b.size, 0) + plan.scratchBytes,
    encode,
    run: () => timeSubmit(device, encode),
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
  /** FLOPs of one run of the timed pass divided by the median time. */
  gflops: number;
  /** Every timed run, in ms. */
  samples: number[];
  /** Which clock timed the runs (see `GpuTiming.clock`). */
  clock: "timestamp" | "wall";
}

/**
 * How {@linkcode timeAttention} and {@linkcode compareAttention} time.
 *
 * @example
 * ```ts
 * import { timeAttention, type TimingOptions } from "@sigmax/sigmax";
 * const timing: TimingOptions = { warmup: 1, reps: 5, pass: "backward" };
 * const t = await timeAttention(
 *   { batch: 1, heads: 1, seqLen: 32, headDim: 8 },
 *   { activation: "sigmoid", causal: true },
 *   timing,
 * );
 * console.log(`backward: ${t.msMedian} ms, ${t.gflops} GFLOP/s`);
 * ```
 */
export interface TimingOptions {
  /** Untimed rounds first (the first run compiles the pipelines). Default 1. */
  warmup?: number;
  /** Timed rounds, at least 5. Default 5. */
  reps?: number;
  /** The pass to time. Default `"forward"`. */
  pass?: AttentionPass;
}

/**
 * Times one pass (forward by default): `warmup` untimed runs (the first
 * compiles), then the median of `reps` (at least 5) timed runs.
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
  timing: TimingOptions = {},
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
  timing: TimingOptions = {},
): Promise<AttentionTiming[]> {
  const works: AttentionWorkload[] = [];
  try {
    for (const options of variants) {
      works.push(await attentionWorkload(shape, options, timing.pass ?? "forward"));
    }
    const runs = works.map(() => [] as SubmitTime[]);
    const reps = Math.max(5, timing.reps ?? 5);
    for (let round = -(timing.warmup ?? 1); round < reps; round++) {
      for (const [i, work] of works.entries()) {
        const t = await measureSubmit(work.plan.device, work.encode);
        if (round >= 0) runs[i].push(t);
      }
    }
    const { clock, samples } = pickClock(runs);
    return samples.map((ms, i) => {
      const stats = summarize(ms);
      const gflops = works[i].flops / stats.msMedian / 1e6;
      return { ...stats, gflops, samples: ms, clock };
    });
  } finally {
    for (const work of works) work.destroy();
  }
}
