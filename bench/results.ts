/**
 * The throughput sweep's results file: what `deno task bench -- --preset …`
 * writes and `deno task report` reads. One JSON document per sweep.
 *
 * @module
 */

/**
 * Who computed a record: sigmax's fused kernels or its unfused baseline, or
 * a peer in the same process: TF.js (WebGPU backend, unfused), ONNX Runtime
 * Web (`ort`, WebGPU execution provider; forward only) or jax-js (`jax`).
 */
export type Implementation = "fused" | "unfused" | "tfjs" | "ort" | "jax";

/** One timed case of the sweep. */
export interface SweepRecord {
  impl: Implementation;
  activation: "softmax" | "sigmoid";
  pass: "forward" | "backward";
  precision: "f32" | "f16";
  batch: number;
  heads: number;
  seqLen: number;
  headDim: number;
  causal: boolean;
  /** Median, fastest and slowest time of one call, in milliseconds. */
  msMedian: number;
  msMin: number;
  msMax: number;
  /** Useful FLOPs (the attention op count of `attentionFlops`, ×2.5 for backward) / median time. */
  gflops: number;
  /** Bytes of GPU memory the case allocated (inputs, outputs and scratch). */
  peakBytes: number;
  /** How msMedian/msMin/msMax were taken: GPU timestamps, or the wall clock submit → done. */
  clock: "timestamp" | "wall";
  /** Median on the wall clock (submit → results ready), for comparisons across clocks (the peers). */
  msWallMedian: number;
  /** Fastest and slowest run on the wall clock (the spread of `msWallMedian`), where recorded. */
  msWallMin?: number;
  msWallMax?: number;
  /**
   * What a peer actually ran, in words (required for ORT: its operator, the
   * kernel its programs amount to, e.g. FlashAttention or the unfused
   * fallback, and the device), as bench/peers/compare.ts prints it.
   */
  ran?: string;
  /** Fused only: the tile configuration that ran ("gpu" or "software"). */
  tiling?: "gpu" | "software";
  /** sigmax only: the labels of the compute pipelines that ran. */
  kernels?: string[];
}

/** A case that failed (out of memory, over a device limit, a kernel error): recorded, not fatal. */
export interface SweepFailure {
  impl: Implementation;
  activation: "softmax" | "sigmoid";
  pass: "forward" | "backward";
  precision: "f32" | "f16";
  batch: number;
  heads: number;
  seqLen: number;
  headDim: number;
  causal: boolean;
  /** The error's message. */
  error: string;
}

/** The longest sequence each implementation ran within the memory bound. */
export interface MaxSeqLenRecord {
  impl: Implementation;
  activation: "softmax" | "sigmoid";
  headDim: number;
  /** Largest seqLen tried that completed. */
  maxSeqLen: number;
  /** The first seqLen that failed or would exceed the bound, with the reason. */
  failedAt?: number;
  reason?: string;
  /** The memory bound used, in bytes. */
  boundBytes: number;
}

/** Our matmul's best throughput on the adapter: the roofline the kernels are compared with. */
export interface RooflineRecord {
  /** Best GFLOP/s over the square sizes tried. */
  gflops: number;
  /** The size m = n = k that reached it. */
  size: number;
  /** TF.js's matmul at the same size, when it ran. */
  tfjsGflops?: number;
  /** jax-js's `jit(numpy.matmul)` at the same size (its own device, wall clock), when it ran. */
  jaxGflops?: number;
}

/** A training step of the same model in sigmax and in TF.js. */
export interface TrainingStepRecord {
  impl: "sigmax" | "tfjs";
  activation: "softmax" | "sigmoid";
  /** Sequences × positions per second. */
  tokensPerSecond: number;
  msMedian: number;
  /** The model: width, layers, heads, seqLen, batch. */
  model: { width: number; layers: number; heads: number; seqLen: number; batch: number };
}

/** What the operation-count model (bench/op_model.ts) predicts for a pass and head dim. */
export interface ModelPrediction {
  pass: "forward" | "backward";
  headDim: number;
  /** Predicted speed of fused sigmoid over fused softmax. */
  sigmoidOverSoftmax: number;
  /** Predicted speed of fused over unfused, softmax. */
  fusedOverUnfusedSoftmax: number;
  /** Predicted speed of fused over unfused, sigmoid. */
  fusedOverUnfusedSigmoid: number;
}

/**
 * One spot check of the fused kernels against the f64 reference, before
 * anything is timed: `worst` is the largest `|got − ref| / (atol + rtol·|ref|)`
 * over the outputs (the pass's gradients for backward); it passes when ≤ 1.
 */
export interface SpotCheck {
  tiling: "gpu" | "software";
  activation: "softmax" | "sigmoid";
  pass: "forward" | "backward";
  precision: "f32" | "f16";
  batch: number;
  heads: number;
  seqLen: number;
  headDim: number;
  causal: boolean;
  /** Largest absolute error. */
  maxAbsErr: number;
  /** Largest error over its tolerance (≤ 1 passes). */
  worst: number;
  ok: boolean;
  /** Set when the case could not run. */
  error?: string;
}

/** The whole results document. */
export interface SweepResults {
  /** Format version of this document. */
  version: 1;
  preset: string;
  /** ISO date and time the sweep started. */
  date: string;
  adapter: { description: string; software: boolean; shaderF16: boolean };
  /** Seconds the sweep took. */
  seconds: number;
  records: SweepRecord[];
  failures: SweepFailure[];
  maxSeqLen: MaxSeqLenRecord[];
  roofline?: RooflineRecord;
  training: TrainingStepRecord[];
  /** The operation-count model's predicted ratios, beside which the measured ones are shown. */
  model?: ModelPrediction[];
  /** The full adapter report (`deno task doctor`'s), where the preset records it. */
  adapterReport?: Record<string, unknown>;
  /** Spot checks against the f64 reference at both tilings, where the preset runs them. */
  checks?: SpotCheck[];
  /** Peers the preset names that could not run here, each with the reason. */
  peersSkipped?: { impl: Implementation; reason: string }[];
  /** Cases the preset's time budget left out, as `pass B H S D causal` labels. */
  skipped?: string[];
}
