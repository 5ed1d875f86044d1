/**
 * Swaps the two middle axes of a 4-D tensor: `src` `[outer, a, b, inner]`
 * becomes `dst` `[outer, b, a, inner]` with `dst[o, j, i, x] = src[o, i, j, x]`.
 * The model uses it to go from `[batch, seq, heads, headDim]` to
 * `[batch, heads, seq, headDim]` and back (the inverse is the plan with `a`
 * and `b` swapped).
 *
 * One invocation per element of dst, in dst order (so the writes, and the
 * reads along `inner`, are contiguous); no loops, so Mesa llvmpipe's limit of
 * 65535 loop iterations per invocation never applies. The grid is
 * two-dimensional, so tensors past 65535 workgroups work.
 *
 * @module
 */

import { cachedBindGroup } from "./bind_groups.ts";
import {
  _assertDeviceAlive,
  checkBindingFits,
  checkBufferSize,
  checkIsDevice,
  getPipeline,
} from "./device.ts";
import { grid2d } from "./attention_unfused.ts";

/** The sizes of a permute: src is `[outer, a, b, inner]` row-major, dst `[outer, b, a, inner]`. */
export interface PermuteShape {
  /** Leading axis, kept in place (batch). */
  outer: number;
  /** First swapped axis of src (seq, going to heads-major). */
  a: number;
  /** Second swapped axis of src (heads). */
  b: number;
  /** Trailing axis, kept contiguous (headDim). */
  inner: number;
}

/** Invocations per workgroup: one element each. */
const _WG = 256;

function _checkShape(shape: PermuteShape): void {
  if (typeof shape !== "object" || shape === null) {
    throw new TypeError(`shape must be an object { outer, a, b, inner }, got ${String(shape)}`);
  }
  for (const name of ["outer", "a", "b", "inner"] as const) {
    const value = shape[name];
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
      throw new RangeError(`shape.${name} must be a positive integer, got ${String(value)}`);
    }
  }
}

/**
 * `dst[o, j, i, x] = src[o, i, j, x]` in plain TypeScript: the ground truth of
 * {@linkcode PermutePlan}. src is `[outer, a, b, inner]`; the result is
 * `[outer, b, a, inner]`.
 */
export function permuteReference(src: Float32Array, shape: PermuteShape): Float32Array {
  _checkShape(shape);
  const { outer, a, b, inner } = shape;
  const n = outer * a * b * inner;
  if (!(src instanceof Float32Array)) throw new TypeError("src must be a Float32Array");
  if (src.length !== n) throw new RangeError(`src.length must be ${n}, got ${src.length}`);
  const dst = new Float32Array(n);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < a; i++) {
      for (let j = 0; j < b; j++) {
        const from = ((o * a + i) * b + j) * inner;
        dst.set(src.subarray(from, from + inner), ((o * b + j) * a + i) * inner);
      }
    }
  }
  return dst;
}

const _PERMUTE_WGSL = `// permute
struct Params {
  length: u32,  // outer · a · b · inner
  a: u32,
  b: u32,
  inner: u32,
}
override WG: u32 = ${_WG}u;
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;        // [outer, a, b, inner]
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;  // [outer, b, a, inner]

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let e = (wid.y * groups.x + wid.x) * WG + lid;
  if (e >= params.length) { return; }
  // e = ((o·b + j)·a + i)·inner + x
  let x = e % params.inner;
  let q = e / params.inner;
  let i = q % params.a;
  let r = q / params.a;
  let j = r % params.b;
  let o = r / params.b;
  dst[e] = src[((o * params.a + i) * params.b + j) * params.inner + x];
}
`;

/**
 * A permute ready to encode: the pipeline built (cached per device) and the
 * uniform written. Call {@linkcode PermutePlan.destroy} when done.
 */
export class PermutePlan {
  /** The device the plan runs on. */
  readonly device: GPUDevice;
  /** The shape the plan was made for (of src). */
  readonly shape: Readonly<PermuteShape>;
  readonly #length: number;
  readonly #params: GPUBuffer;
  readonly #pipeline: GPUComputePipeline;

  private constructor(device: GPUDevice, shape: PermuteShape, pipeline: GPUComputePipeline) {
    this.device = device;
    const { outer, a, b, inner } = shape;
    this.shape = Object.freeze({ outer, a, b, inner });
    this.#length = outer * a * b * inner;
    this.#pipeline = pipeline;
    this.#params = device.createBuffer({
      label: "permute.params",
      size: 16,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(this.#params, 0, new Uint32Array([this.#length, a, b, inner]));
  }

  /** Checks the shape (before any GPU work) and builds the pipeline (cached per device). */
  static async create(device: GPUDevice, shape: PermuteShape): Promise<PermutePlan> {
    checkIsDevice(device);
    _checkShape(shape);
    checkBindingFits(
      device,
      "permute: the tensor",
      shape.outer * shape.a * shape.b * shape.inner * 4,
    );
    _assertDeviceAlive(device);
    const pipeline = await getPipeline(device, {
      key: "permute",
      label: "permute",
      code: () => _PERMUTE_WGSL,
    });
    return new PermutePlan(device, shape, pipeline);
  }

  /** Records the permute: reads src (`[outer, a, b, inner]`), writes dst (`[outer, b, a, inner]`). */
  encode(encoder: GPUCommandEncoder, b: { src: GPUBuffer; dst: GPUBuffer }): void {
    const bytes = this.#length * 4;
    checkBufferSize("buffers.src", b?.src, bytes);
    checkBufferSize("buffers.dst", b.dst, bytes);
    if (b.src === b.dst) {
      throw new RangeError("buffers.src and buffers.dst must be different buffers");
    }
    const group = cachedBindGroup(this.device, this.#pipeline, [
      this.#params,
      { buffer: b.src, size: bytes },
      { buffer: b.dst, size: bytes },
    ]);
    const pass = encoder.beginComputePass({ label: "permute" });
    pass.setPipeline(this.#pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(
      ...grid2d(Math.ceil(this.#length / _WG), this.device.limits.maxComputeWorkgroupsPerDimension),
    );
    pass.end();
  }

  /** Frees the plan's uniform buffer; the cached pipeline stays. */
  destroy(): void {
    this.#params.destroy();
  }
}
