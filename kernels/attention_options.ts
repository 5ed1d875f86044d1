/**
 * Attention shapes and options: the types of the public API, their defaults,
 * and the checks that reject bad input before any GPU work.
 *
 * @module
 */

import { maxBindingBytes } from "./device.ts";

/**
 * The attention activation: normalised softmax or element-wise sigmoid.
 *
 * @example
 * ```ts
 * import type { Activation } from "@sigmax/sigmax";
 * const both: Activation[] = ["softmax", "sigmoid"];
 * console.log(both);
 * ```
 */
export type Activation = "softmax" | "sigmoid";

/**
 * Sizes of an attention call. Tensors are row-major `[batch, heads, seqLen, headDim]`.
 *
 * @example
 * ```ts
 * import type { AttentionShape } from "@sigmax/sigmax";
 * const shape: AttentionShape = { batch: 2, heads: 4, seqLen: 128, headDim: 64 };
 * const elements = shape.batch * shape.heads * shape.seqLen * shape.headDim; // of q, k, v, out
 * console.log(elements);
 * ```
 */
export interface AttentionShape {
  /** Batch size B ≥ 1. */
  batch: number;
  /** Number of heads H ≥ 1. */
  heads: number;
  /** Sequence length S ≥ 1 (queries and keys). */
  seqLen: number;
  /** Head dimension D, 1 to 256. */
  headDim: number;
}

/**
 * Options of an attention call; only `activation` is required.
 *
 * @example
 * ```ts
 * import type { AttentionOptions } from "@sigmax/sigmax";
 * // Causal sigmoid attention with the default bias -ln(seqLen) and scale 1/sqrt(headDim):
 * const options: AttentionOptions = { activation: "sigmoid", causal: true };
 * console.log(options);
 * ```
 */
export interface AttentionOptions {
  /** `"softmax"` normalises each row; `"sigmoid"` applies `σ(s + sigmoidBias)` element-wise. */
  activation: Activation;
  /** Mask keys after the query (`j > i` gets weight exactly 0). Default false. */
  causal?: boolean;
  /** Score scale: `s_ij = scale · q_i·k_j`. Default `1 / sqrt(headDim)`. */
  scale?: number;
  /** Sigmoid bias b in `σ(s + b)`. Default `-Math.log(seqLen)`; ignored by softmax. */
  sigmoidBias?: number;
  /**
   * Storage precision. Default `"f32"`. `"f16"` stores q, k, v and the output
   * as f16 (largest finite value 65504) and accumulates in f32; it needs the
   * adapter's `shader-f16` and the fused implementation.
   */
  precision?: "f32" | "f16";
  /** `"fused"` (tiled, no S×S buffer; default) or `"unfused"` (scores written out, the baseline). */
  implementation?: "fused" | "unfused";
  /**
   * Which tile configuration the fused kernels use: a tuning and testing knob.
   * `"auto"` (default) picks `"software"` on a CPU adapter (Mesa llvmpipe,
   * lavapipe, SwiftShader, WARP) and `"gpu"` on any other. `"gpu"` forces the
   * GPU kernels (one query row per lane group, the scores of a compile-time
   * key step in registers); `"software"` forces the kernels built for a CPU
   * adapter (several rows per lane, each staged key feeding all of them).
   * Both give the same results within the tolerances; only speed differs.
   * Ignored by the unfused implementation.
   *
   * @example
   * ```ts
   * import { attention } from "@sigmax/sigmax";
   * const shape = { batch: 1, heads: 1, seqLen: 6, headDim: 4 };
   * const x = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i));
   * const gpu = await attention(x, x, x, shape, { activation: "softmax", tiling: "gpu" });
   * const cpu = await attention(x, x, x, shape, { activation: "softmax", tiling: "software" });
   * console.log(Math.max(...gpu.map((y, i) => Math.abs(y - cpu[i])))); // ~1e-7
   * ```
   */
  tiling?: Tiling;
  /** Device to run on. Default: the shared device of `getDevice()`. */
  device?: GPUDevice;
}

/**
 * The tile configurations of the fused kernels (see {@linkcode AttentionOptions.tiling}).
 *
 * @example
 * ```ts
 * import type { Tiling } from "@sigmax/sigmax";
 * const forced: Tiling[] = ["gpu", "software"];
 * console.log(forced);
 * ```
 */
export type Tiling = "auto" | "gpu" | "software";

/**
 * Options with every default filled in, as `AttentionPlan.options` holds them.
 *
 * @example
 * ```ts
 * import { AttentionPlan } from "@sigmax/sigmax";
 * const plan = await AttentionPlan.create(
 *   { batch: 1, heads: 1, seqLen: 100, headDim: 16 },
 *   { activation: "sigmoid" },
 * );
 * console.log(plan.options.scale, plan.options.sigmoidBias); // 0.25, -ln(100)
 * plan.destroy();
 * ```
 */
export interface ResolvedAttentionOptions {
  /** See {@linkcode AttentionOptions.activation}. */
  activation: Activation;
  /** See {@linkcode AttentionOptions.causal}. */
  causal: boolean;
  /** See {@linkcode AttentionOptions.scale}. */
  scale: number;
  /** See {@linkcode AttentionOptions.sigmoidBias}. */
  sigmoidBias: number;
  /** See {@linkcode AttentionOptions.precision}. */
  precision: "f32" | "f16";
  /** See {@linkcode AttentionOptions.implementation}. */
  implementation: "fused" | "unfused";
  /** See {@linkcode AttentionOptions.tiling}: as asked (`AttentionPlan.tiling` says what "auto" chose). */
  tiling: Tiling;
}

/** The largest head dimension the kernels are generated for. */
export const MAX_HEAD_DIM = 256;

function _checkDim(name: string, value: unknown, max?: number): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `shape.${name} must be a positive integer, got ${String(value)}`,
    );
  }
  if (max !== undefined && value > max) {
    throw new RangeError(`shape.${name} must be at most ${max}, got ${value}`);
  }
}

/** Throws a `RangeError` unless every dimension of `shape` is a positive integer and `headDim ≤ 256`. */
export function checkShape(shape: AttentionShape): void {
  if (typeof shape !== "object" || shape === null) {
    throw new TypeError("shape must be an object {batch, heads, seqLen, headDim}");
  }
  _checkDim("batch", shape.batch);
  _checkDim("heads", shape.heads);
  _checkDim("seqLen", shape.seqLen);
  _checkDim("headDim", shape.headDim, MAX_HEAD_DIM);
}

/** Number of elements of one `[B,H,S,D]` tensor. */
export function tensorLength(shape: AttentionShape): number {
  return shape.batch * shape.heads * shape.seqLen * shape.headDim;
}

/**
 * Throws unless `data` is a `Float32Array` of exactly B·H·S·D elements; `name`
 * names the argument in the message.
 */
export function checkTensor(name: string, data: unknown, shape: AttentionShape): void {
  const expected = tensorLength(shape);
  if (!(data instanceof Float32Array)) {
    throw new TypeError(
      `${name} must be a Float32Array of ${expected} elements ([B,H,S,D] = ` +
        `[${shape.batch},${shape.heads},${shape.seqLen},${shape.headDim}]), got ${_typeName(data)}`,
    );
  }
  if (data.length !== expected) {
    throw new RangeError(
      `${name}.length must be ${expected} (B·H·S·D = ${shape.batch}·${shape.heads}·` +
        `${shape.seqLen}·${shape.headDim}), got ${data.length}`,
    );
  }
}

/** {@linkcode checkTensor} for each named tensor, in order: `checkTensors(shape, { q, k, v })`. */
export function checkTensors(shape: AttentionShape, tensors: Record<string, unknown>): void {
  for (const [name, data] of Object.entries(tensors)) checkTensor(name, data, shape);
}

function _typeName(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return (value as object).constructor?.name ?? "object";
  return typeof value;
}

/**
 * Checks `options` against `shape` and fills in the defaults. Throws a
 * `TypeError`/`RangeError` naming the option and the expected value.
 */
export function resolveOptions(
  shape: AttentionShape,
  options: AttentionOptions,
): ResolvedAttentionOptions {
  if (typeof options !== "object" || options === null) {
    throw new TypeError('options must be an object such as { activation: "softmax" }');
  }
  const { activation } = options;
  if (activation !== "softmax" && activation !== "sigmoid") {
    throw new TypeError(
      `options.activation must be "softmax" or "sigmoid", got ${JSON.stringify(activation)}`,
    );
  }
  const causal = options.causal ?? false;
  if (typeof causal !== "boolean") {
    throw new TypeError(`options.causal must be a boolean, got ${JSON.stringify(causal)}`);
  }
  const scale = options.scale ?? 1 / Math.sqrt(shape.headDim);
  if (typeof scale !== "number" || !Number.isFinite(scale)) {
    throw new RangeError(`options.scale must be a finite number, got ${String(scale)}`);
  }
  const sigmoidBias = options.sigmoidBias ?? -Math.log(shape.seqLen);
  if (typeof sigmoidBias !== "number" || !Number.isFinite(sigmoidBias)) {
    throw new RangeError(
      `options.sigmoidBias must be a finite number, got ${String(sigmoidBias)}`,
    );
  }
  const precision = options.precision ?? "f32";
  if (precision !== "f32" && precision !== "f16") {
    throw new TypeError(
      `options.precision must be "f32" or "f16", got ${JSON.stringify(precision)}`,
    );
  }
  const implementation = options.implementation ?? "fused";
  if (implementation !== "fused" && implementation !== "unfused") {
    throw new TypeError(
      `options.implementation must be "fused" or "unfused", got ${JSON.stringify(implementation)}`,
    );
  }
  const tiling = options.tiling ?? "auto";
  if (tiling !== "auto" && tiling !== "gpu" && tiling !== "software") {
    throw new TypeError(
      `options.tiling must be "auto", "gpu" or "software", got ${JSON.stringify(tiling)}`,
    );
  }
  return { activation, causal, scale, sigmoidBias, precision, implementation, tiling };
}

/**
 * Checks what only the device can tell: `shader-f16` for f16, and that every
 * buffer and dispatch fits the device's limits. `largestBufferBytes` is the
 * largest buffer the implementation needs (the S×S scores for unfused).
 */
export function checkDeviceFits(
  device: GPUDevice,
  shape: AttentionShape,
  options: ResolvedAttentionOptions,
  largestBufferBytes: number,
): void {
  if (options.precision === "f16" && !device.features.has("shader-f16")) {
    throw new RangeError(
      'options.precision "f16" needs the adapter feature "shader-f16", which this adapter ' +
        'lacks; use precision "f32" (or install mesa-vulkan-drivers for a software adapter with f16)',
    );
  }
  const limit = maxBindingBytes(device);
  if (largestBufferBytes > limit) {
    throw new RangeError(
      `shape [B,H,S,D] = [${shape.batch},${shape.heads},${shape.seqLen},${shape.headDim}] ` +
        `needs a ${
          _mib(largestBufferBytes)
        } buffer (implementation "${options.implementation}"), ` +
        `over this device's maxStorageBufferBindingSize of ${_mib(limit)}` +
        (options.implementation === "unfused" ? '; the "fused" implementation needs O(S·D)' : ""),
    );
  }
  const bh = shape.batch * shape.heads;
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  if (bh > maxGroups) {
    throw new RangeError(
      `shape.batch · shape.heads must be at most ${maxGroups} on this device, got ${bh}`,
    );
  }
}

function _mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
