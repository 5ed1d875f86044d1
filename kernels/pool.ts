/**
 * Sums over the middle axis of a `[outer, middle, inner]` tensor, and the
 * broadcast that is its backward pass. The training module uses them where a
 * matrix product used to stand in for a reduction:
 *
 * - mean-pooling over positions: `pooled[b, c] = (1/S) Σ_s h[b, s, c]`
 *   (outer B, middle S, inner C, scale 1/S), O(B·S·C) work where a product
 *   with a dense block-diagonal `[B, B·S]` matrix did O(B²·S·C);
 * - the sum over heads of the attention arch: `y[n, d] = Σ_h o[n, h, d]`
 *   (outer N, middle H, inner D), where a product with `H` stacked identities
 *   did O(N·H·D²).
 *
 * Backward: `dx[o, m, i] = scale · dy[o, i]` for every m.
 *
 * In llm.c order: the references, the WGSL, then the plan. One invocation per
 * output element; the forward loops `middle` times (refused above
 * {@linkcode MAX_POOL_MIDDLE}, well inside llvmpipe's 65535-iteration guard).
 *
 * @module
 */

import { grid2d } from "./attention_unfused.ts";
import { cachedBindGroup } from "./bind_groups.ts";
import { checkBufferSize, checkIsDevice, getPipeline } from "./device.ts";

/** The shape of a middle-axis sum: x is `[outer, middle, inner]`, the sum `[outer, inner]`. */
export interface PoolShape {
  /** Leading axis (kept). */
  outer: number;
  /** The axis summed over. */
  middle: number;
  /** Trailing axis (kept, contiguous). */
  inner: number;
  /** Factor on the sum (1/middle for a mean). Default 1. */
  scale?: number;
}

/** Largest `middle` a forward invocation loops over. */
export const MAX_POOL_MIDDLE = 60000;

const _WG = 64;

function _check(shape: PoolShape): Required<PoolShape> {
  if (typeof shape !== "object" || shape === null) {
    throw new TypeError(`shape must be an object { outer, middle, inner }, got ${String(shape)}`);
  }
  for (const key of ["outer", "middle", "inner"] as const) {
    const v = shape[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
      throw new RangeError(`shape.${key} must be a positive integer, got ${String(v)}`);
    }
  }
  if (shape.middle > MAX_POOL_MIDDLE) {
    throw new RangeError(`shape.middle must be at most ${MAX_POOL_MIDDLE}, got ${shape.middle}`);
  }
  const scale = shape.scale ?? 1;
  if (!Number.isFinite(scale)) throw new RangeError(`shape.scale must be finite, got ${scale}`);
  return { ...shape, scale };
}

// ---------------------------------------------------------------------------
// References

/** `out[o, i] = scale · Σ_m x[o, m, i]` in f64: the ground truth of {@linkcode PoolPlan.encodeSum}. */
export function poolSumReference(x: Float32Array, shape: PoolShape): Float32Array {
  const { outer, middle, inner, scale } = _check(shape);
  if (x.length !== outer * middle * inner) {
    throw new RangeError(`x.length must be ${outer * middle * inner}, got ${x.length}`);
  }
  const out = new Float32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let sum = 0;
      for (let m = 0; m < middle; m++) sum += x[(o * middle + m) * inner + i];
      out[o * inner + i] = scale * sum;
    }
  }
  return out;
}

/** `dx[o, m, i] = scale · dy[o, i]`: the ground truth of {@linkcode PoolPlan.encodeBroadcast}. */
export function poolBroadcastReference(dy: Float32Array, shape: PoolShape): Float32Array {
  const { outer, middle, inner, scale } = _check(shape);
  if (dy.length !== outer * inner) {
    throw new RangeError(`dy.length must be ${outer * inner}, got ${dy.length}`);
  }
  const dx = new Float32Array(outer * middle * inner);
  for (let o = 0; o < outer; o++) {
    for (let m = 0; m < middle; m++) {
      for (let i = 0; i < inner; i++) dx[(o * middle + m) * inner + i] = scale * dy[o * inner + i];
    }
  }
  return dx;
}

// ---------------------------------------------------------------------------
// WGSL

const _HEADER = `struct Params { outer: u32, middle: u32, inner: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
const WG = ${_WG}u;
`;

/** One invocation per output `[o, i]`: the sum over m of `src[o, m, i]`. */
export const POOL_SUM_WGSL = `// pool.sum
${_HEADER}
@compute @workgroup_size(${_WG})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let j = (wid.y * groups.x + wid.x) * WG + lid; // [outer, inner]
  if (j >= p.outer * p.inner) { return; }
  let o = j / p.inner;
  let i = j - o * p.inner;
  var acc = 0.0;
  for (var m = 0u; m < p.middle; m++) {
    acc += src[(o * p.middle + m) * p.inner + i];
  }
  dst[j] = p.scale * acc;
}
`;

/** One invocation per `dx[o, m, i]`: `scale · dy[o, i]`. */
export const POOL_BROADCAST_WGSL = `// pool.broadcast
${_HEADER}
@compute @workgroup_size(${_WG})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let j = (wid.y * groups.x + wid.x) * WG + lid; // [outer, middle, inner]
  if (j >= p.outer * p.middle * p.inner) { return; }
  let i = j % p.inner;
  let o = j / (p.middle * p.inner);
  dst[j] = p.scale * src[o * p.inner + i];
}
`;

// ---------------------------------------------------------------------------
// Plan

/**
 * A middle-axis sum (and its broadcast backward) of one shape, pipelines
 * built. Call {@linkcode PoolPlan.destroy} when done.
 *
 * @example
 * ```ts ignore
 * const plan = await PoolPlan.create(device, { outer: B, middle: S, inner: C, scale: 1 / S });
 * plan.encodeSum(encoder, hidden, pooled);      // [B, S, C] → [B, C]
 * plan.encodeBroadcast(encoder, dPooled, dHidden); // [B, C] → [B, S, C]
 * ```
 */
export class PoolPlan {
  readonly #params: GPUBuffer;

  private constructor(
    readonly device: GPUDevice,
    readonly shape: Required<PoolShape>,
    readonly sum: GPUComputePipeline,
    readonly broadcast: GPUComputePipeline,
  ) {
    this.#params = device.createBuffer({
      label: "pool.params",
      size: 16,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    const data = new ArrayBuffer(16);
    new Uint32Array(data, 0, 3).set([shape.outer, shape.middle, shape.inner]);
    new Float32Array(data, 12, 1)[0] = shape.scale;
    device.queue.writeBuffer(this.#params, 0, data);
  }

  /** Checks the shape (a RangeError naming the field) before any GPU work, then builds the pipelines. */
  static async create(device: GPUDevice, shape: PoolShape): Promise<PoolPlan> {
    const s = _check(shape);
    checkIsDevice(device);
    const [sum, broadcast] = await Promise.all([
      getPipeline(device, { key: "pool.sum", label: "pool.sum", code: () => POOL_SUM_WGSL }),
      getPipeline(device, {
        key: "pool.broadcast",
        label: "pool.broadcast",
        code: () => POOL_BROADCAST_WGSL,
      }),
    ]);
    return new PoolPlan(device, s, sum, broadcast);
  }

  /** Records `out[o, i] = scale · Σ_m x[o, m, i]`. */
  encodeSum(encoder: GPUCommandEncoder, x: GPUBuffer, out: GPUBuffer): void {
    const { outer, middle, inner } = this.shape;
    this.#encode(encoder, this.sum, x, outer * middle * inner, out, outer * inner);
  }

  /** Records `dx[o, m, i] = scale · dy[o, i]`. */
  encodeBroadcast(encoder: GPUCommandEncoder, dy: GPUBuffer, dx: GPUBuffer): void {
    const { outer, middle, inner } = this.shape;
    this.#encode(encoder, this.broadcast, dy, outer * inner, dx, outer * middle * inner);
  }

  #encode(
    encoder: GPUCommandEncoder,
    pipeline: GPUComputePipeline,
    src: GPUBuffer,
    srcLength: number,
    dst: GPUBuffer,
    dstLength: number,
  ): void {
    checkBufferSize("src", src, srcLength * 4);
    checkBufferSize("dst", dst, dstLength * 4);
    if (src === dst) throw new RangeError("src and dst must be different buffers");
    const group = cachedBindGroup(this.device, pipeline, [
      this.#params,
      { buffer: src, size: srcLength * 4 },
      { buffer: dst, size: dstLength * 4 },
    ]);
    const pass = encoder.beginComputePass({ label: pipeline.label });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(
      ...grid2d(Math.ceil(dstLength / _WG), this.device.limits.maxComputeWorkgroupsPerDimension),
    );
    pass.end();
  }

  /** Frees the plan's uniform buffer; the cached pipelines stay. */
  destroy(): void {
    this.#params.destroy();
  }
}
