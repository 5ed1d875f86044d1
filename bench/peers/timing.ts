/**
 * The peers' one timing type: a call timed on the wall clock (the only clock
 * ONNX Runtime Web and jax-js have), median of the timed calls after untimed
 * warmup calls, with every sample, the FLOPs credited and what ran.
 *
 * @module
 */

import type { AttentionShape } from "../../kernels/attention_options.ts";

/** Where a peer ran: sigmax's `GPUDevice` (`"shared"`), or a device of ORT's or jax-js's own. */
export type PeerDevice = "shared" | "ort" | "jax";

/** A wall-clock timing of a peer's call. */
export interface WallTiming {
  /** Median time of one call, ms. */
  msMedian: number;
  /** Fastest call, ms. */
  msMin: number;
  /** Slowest call, ms. */
  msMax: number;
  /** Every timed call, ms, in order. */
  samples: number[];
  /** Always the wall clock (call → the device's work done). */
  clock: "wall";
  /** FLOPs credited to one call. */
  flops: number;
  /** `flops / msMedian`, in GFLOP/s. */
  gflops: number;
  /** The device it ran on. */
  device: PeerDevice;
  /**
   * What ran, in words: ORT's operator, the kernel its programs amount to
   * (FlashAttention or the unfused fallback) and the device; jax-js's
   * jitted function and device.
   */
  ran: string;
  /** ORT only: the programs (shader labels) one call dispatched, in order. */
  programs?: string[];
}

/** What {@linkcode timeWall} times besides the call itself. */
export interface WallTimingOptions {
  /** FLOPs credited to one call. */
  flops: number;
  /** Untimed calls first (the first compiles). Default 1. */
  warmup?: number;
  /** Timed calls, at least 1. Default 5. */
  reps?: number;
  device: PeerDevice;
  ran: string;
  programs?: string[];
}

/**
 * Times `call` (which returns its own wall-clock ms): `warmup` untimed
 * calls, then `reps` timed ones; the median, the extremes and every sample.
 *
 * @example
 * ```ts
 * import { timeWall } from "./timing.ts";
 * const t = await timeWall(() => Promise.resolve(2), { flops: 2e6, device: "jax", ran: "a test" });
 * if (t.msMedian !== 2 || t.gflops !== 1) throw new Error("unexpected");
 * ```
 */
export async function timeWall(
  call: () => Promise<number>,
  options: WallTimingOptions,
): Promise<WallTiming> {
  for (let i = 0; i < Math.max(0, options.warmup ?? 1); i++) await call();
  const samples: number[] = [];
  for (let i = 0; i < Math.max(1, options.reps ?? 5); i++) samples.push(await call());
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const msMedian = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return {
    msMedian,
    msMin: sorted[0],
    msMax: sorted[sorted.length - 1],
    samples,
    clock: "wall",
    flops: options.flops,
    gflops: options.flops / msMedian / 1e6,
    device: options.device,
    ran: options.ran,
    ...(options.programs ? { programs: options.programs } : {}),
  };
}

/** FLOPs of one attention pass: `4·B·H·S²·D`, halved for causal, ×2.5 for backward. */
export function attentionPassFlops(
  shape: AttentionShape,
  causal: boolean,
  pass: "forward" | "backward",
): number {
  const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
  return 4 * B * H * S * S * D * (causal ? 0.5 : 1) * (pass === "backward" ? 2.5 : 1);
}
