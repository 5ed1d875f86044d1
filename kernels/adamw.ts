/**
 * The AdamW optimiser step (Loshchilov & Hutter; PyTorch's `torch.optim.AdamW`)
 * with global gradient-norm clipping, updating a parameter tensor and its two
 * moment tensors in place on the GPU.
 *
 * With step `t` (1-based), learning rate `lr`, weight decay `λ` and
 * `S = Σ g²` over ALL the model's gradients (computed on the GPU by the caller):
 *
 * - `clip = min(1, maxNorm / (sqrt(S) + 1e-6))` when clipping is on, else 1;
 * - `g ← g·clip`;
 * - `m ← β1·m + (1 − β1)·g`, `v ← β2·v + (1 − β2)·g²`;
 * - `p ← p − lr·( (m / (1 − β1ᵗ)) / (sqrt(v / (1 − β2ᵗ)) + eps) + λ·p )`
 *   (decoupled weight decay: the same as `p·(1 − lr·λ)` followed by the Adam step).
 *
 * The scalars of the schedule (lr, β, eps, `1 − β`, the bias corrections
 * `1 − βᵗ`, maxNorm) change every step but are shared by every parameter
 * tensor: {@linkcode writeAdamWStep} computes them in f64 on the CPU and
 * writes them into one small uniform buffer ({@linkcode createAdamWStepBuffer})
 * that every {@linkcode AdamWPlan} of the model reads. The kernel is one
 * invocation per element, no loops, on a 2-D grid of workgroups (lengths past
 * 65535·64 elements).
 *
 * @module
 */

import { cachedBindGroup } from "./bind_groups.ts";
import {
  _assertDeviceAlive,
  checkBindingFits,
  checkBufferSize,
  checkIsDevice,
  findAliased,
  getPipeline,
} from "./device.ts";
import { grid2d } from "./attention_unfused.ts";

/** Invocations per workgroup. */
const _WG = 64;

/** The scalars of one optimiser step, shared by every parameter tensor. */
export interface AdamWStep {
  /** Learning rate, finite and ≥ 0. */
  lr: number;
  /** First-moment decay, in [0, 1). */
  beta1: number;
  /** Second-moment decay, in [0, 1). */
  beta2: number;
  /** Added to `sqrt(v̂)`, > 0. */
  eps: number;
  /** The step number, an integer ≥ 1 (1 for the first update): sets the bias corrections. */
  step: number;
  /** Global gradient-norm clip: `Infinity`, 0 or a negative number turn clipping off. */
  maxNorm: number;
}

/**
 * Size in bytes of the per-step uniform block: 12 f32 (`lr, β1, β2, eps,
 * 1 − β1, 1 − β2, 1 − β1ᵗ, 1 − β2ᵗ, maxNorm` and padding to 16 bytes).
 */
export const ADAMW_STEP_BYTES: number = 48;

function _checkStep(step: AdamWStep): void {
  const lr = step?.lr;
  if (typeof lr !== "number" || !Number.isFinite(lr) || lr < 0) {
    throw new RangeError(`step.lr must be a finite number ≥ 0, got ${String(lr)}`);
  }
  for (const name of ["beta1", "beta2"] as const) {
    const beta = step[name];
    if (typeof beta !== "number" || !(beta >= 0 && beta < 1)) {
      throw new RangeError(`step.${name} must be in [0, 1), got ${String(beta)}`);
    }
  }
  const eps = step.eps;
  if (typeof eps !== "number" || !Number.isFinite(eps) || !(Math.fround(eps) > 0)) {
    throw new RangeError(
      `step.eps must be a finite number > 0 (and > 0 in f32), got ${String(eps)}`,
    );
  }
  if (typeof step.step !== "number" || !Number.isInteger(step.step) || step.step < 1) {
    throw new RangeError(`step.step must be an integer ≥ 1, got ${String(step.step)}`);
  }
  if (typeof step.maxNorm !== "number" || Number.isNaN(step.maxNorm)) {
    throw new RangeError(
      `step.maxNorm must be a number (Infinity or ≤ 0: no clipping), got ${String(step.maxNorm)}`,
    );
  }
}

function _checkWeightDecay(weightDecay: unknown): void {
  if (typeof weightDecay !== "number" || !Number.isFinite(weightDecay) || weightDecay < 0) {
    throw new RangeError(`weightDecay must be a finite number ≥ 0, got ${String(weightDecay)}`);
  }
}

/** Whether `maxNorm` turns clipping on. */
function _clipping(maxNorm: number): boolean {
  return maxNorm > 0 && Number.isFinite(maxNorm);
}

/**
 * Creates the per-step uniform buffer ({@linkcode ADAMW_STEP_BYTES} bytes,
 * `UNIFORM | COPY_DST`) that {@linkcode writeAdamWStep} fills and every
 * {@linkcode AdamWPlan} reads.
 */
export function createAdamWStepBuffer(device: GPUDevice): GPUBuffer {
  return device.createBuffer({
    label: "adamw.step",
    size: ADAMW_STEP_BYTES,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
}

/**
 * Validates `step` (RangeError: lr finite and ≥ 0, 0 ≤ β < 1, eps > 0, step
 * an integer ≥ 1, maxNorm not NaN) and writes its block into `buffer` with
 * `queue.writeBuffer`, so it takes effect for command buffers submitted after
 * this call. `1 − β` and the bias corrections `1 − βᵗ` are computed in f64;
 * clipping off (`maxNorm` infinite, ≤ 0, or past the f32 range, where it
 * could never bind) is written as `maxNorm = 0`.
 */
export function writeAdamWStep(device: GPUDevice, buffer: GPUBuffer, step: AdamWStep): void {
  _checkStep(step);
  checkBufferSize("buffer", buffer, ADAMW_STEP_BYTES);
  const { lr, beta1, beta2, eps, maxNorm } = step;
  const t = step.step;
  const clip = _clipping(maxNorm) && Number.isFinite(Math.fround(maxNorm)) ? maxNorm : 0;
  const block = new Float32Array(ADAMW_STEP_BYTES / 4);
  block.set([
    lr,
    beta1,
    beta2,
    eps,
    1 - beta1,
    1 - beta2,
    1 - beta1 ** t,
    1 - beta2 ** t,
    clip,
  ]);
  device.queue.writeBuffer(buffer, 0, block);
}

/** What {@linkcode adamWReference} returns: the updated tensors, as new arrays. */
export interface AdamWReference {
  /** The updated parameters. */
  param: Float32Array;
  /** The updated first moments. */
  m: Float32Array;
  /** The updated second moments. */
  v: Float32Array;
}

/**
 * One AdamW step in plain TypeScript with f64 arithmetic (inputs and outputs
 * f32): the ground truth for {@linkcode AdamWPlan}. `gradSumSq` is `Σ g²`
 * over all the model's gradients, which sets the clip factor. The inputs are
 * not modified.
 */
export function adamWReference(
  param: Float32Array,
  grad: Float32Array,
  m: Float32Array,
  v: Float32Array,
  step: AdamWStep,
  weightDecay: number,
  gradSumSq: number,
): AdamWReference {
  _checkStep(step);
  _checkWeightDecay(weightDecay);
  if (!(param instanceof Float32Array) || param.length < 1) {
    throw new TypeError("param must be a non-empty Float32Array");
  }
  const L = param.length;
  for (const [name, data] of [["grad", grad], ["m", m], ["v", v]] as const) {
    if (!(data instanceof Float32Array)) {
      throw new TypeError(`${name} must be a Float32Array of ${L} elements`);
    }
    if (data.length !== L) throw new RangeError(`${name}.length must be ${L}, got ${data.length}`);
  }
  if (typeof gradSumSq !== "number" || !(gradSumSq >= 0)) {
    throw new RangeError(`gradSumSq must be a number ≥ 0, got ${String(gradSumSq)}`);
  }
  const { lr, beta1, beta2, eps, maxNorm } = step;
  const clip = _clipping(maxNorm) ? Math.min(1, maxNorm / (Math.sqrt(gradSumSq) + 1e-6)) : 1;
  const bc1 = 1 - beta1 ** step.step;
  const bc2 = 1 - beta2 ** step.step;
  const out = { param: new Float32Array(L), m: new Float32Array(L), v: new Float32Array(L) };
  for (let i = 0; i < L; i++) {
    const g = grad[i] * clip;
    const m1 = beta1 * m[i] + (1 - beta1) * g;
    const v1 = beta2 * v[i] + (1 - beta2) * g * g;
    const p = param[i];
    out.param[i] = p - lr * (m1 / bc1 / (Math.sqrt(v1 / bc2) + eps) + weightDecay * p);
    out.m[i] = m1;
    out.v[i] = v1;
  }
  return out;
}

/**
 * WGSL of the AdamW kernel: one invocation per element. Bindings: 0 params
 * (length, weight decay), 1 step (the shared per-step block), 2 grad,
 * 3 gradSumSq, 4 param, 5 m, 6 v (the last three read and written in place).
 */
export const ADAMW_WGSL = `// adamw
struct Params {
  length: u32,       // L
  weightDecay: f32,  // λ
  _pad0: u32,
  _pad1: u32,
}
struct Step {
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  c1: f32,        // 1 − β1
  c2: f32,        // 1 − β2
  bc1: f32,       // 1 − β1ᵗ
  bc2: f32,       // 1 − β2ᵗ
  maxNorm: f32,   // 0: no clipping
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}
override WG: u32 = ${_WG}u;
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> grad: array<f32>;       // [L]
@group(0) @binding(3) var<storage, read> gradSumSq: array<f32>;  // [1+]: element 0 is Σ g²
@group(0) @binding(4) var<storage, read_write> param: array<f32>;  // [L]
@group(0) @binding(5) var<storage, read_write> m: array<f32>;      // [L]
@group(0) @binding(6) var<storage, read_write> v: array<f32>;      // [L]

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let i = (wid.y * groups.x + wid.x) * WG + lid;
  if (i >= params.length) { return; }
  var clip = 1.0;
  if (step.maxNorm > 0.0) { clip = min(1.0, step.maxNorm / (sqrt(gradSumSq[0]) + 1e-6)); }
  let g = grad[i] * clip;
  let m1 = step.beta1 * m[i] + step.c1 * g;
  let v1 = step.beta2 * v[i] + step.c2 * (g * g);
  m[i] = m1;
  v[i] = v1;
  let p = param[i];
  param[i] = p - step.lr * ((m1 / step.bc1) / (sqrt(v1 / step.bc2) + step.eps) + params.weightDecay * p);
}
`;

/** GPU buffers of one AdamW update (f32). */
export interface AdamWBuffers {
  /** `[length]`, read and written: the parameters. */
  param: GPUBuffer;
  /** `[length]`, read: the gradient (unclipped; the kernel applies the clip). */
  grad: GPUBuffer;
  /** `[length]`, read and written: the first moments (zeros before step 1). */
  m: GPUBuffer;
  /** `[length]`, read and written: the second moments (zeros before step 1). */
  v: GPUBuffer;
  /** The shared per-step uniform block ({@linkcode createAdamWStepBuffer}, {@linkcode writeAdamWStep}). */
  step: GPUBuffer;
  /** Storage, read: element 0 is `Σ g²` over ALL the model's gradients (the global norm²). */
  gradSumSq: GPUBuffer;
}

/**
 * An AdamW update of one parameter tensor, ready to encode: pipeline built
 * (cached per device), the uniform (length, weight decay) written. Encode it
 * every step after {@linkcode writeAdamWStep}; call
 * {@linkcode AdamWPlan.destroy} when done.
 *
 * @example
 * ```ts ignore
 * const stepBuffer = createAdamWStepBuffer(device);
 * const plan = await AdamWPlan.create(device, { length: 4096, weightDecay: 0.1 });
 * writeAdamWStep(device, stepBuffer, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1, maxNorm: 1 });
 * plan.encode(encoder, { param, grad, m, v, step: stepBuffer, gradSumSq });
 * ```
 */
export class AdamWPlan {
  /** The device the plan runs on. */
  readonly device: GPUDevice;
  /** The number of elements of the parameter tensor. */
  readonly length: number;
  /** The decoupled weight decay λ. */
  readonly weightDecay: number;
  /**
   * Where the tensor starts in param, grad, m and v, in elements (0 unless
   * the tensors are ranges of flat buffers; a multiple of the device's
   * storage-offset alignment in elements).
   */
  readonly offset: number;
  readonly #params: GPUBuffer;
  readonly #pipeline: GPUComputePipeline;

  private constructor(
    device: GPUDevice,
    length: number,
    weightDecay: number,
    offset: number,
    pipeline: GPUComputePipeline,
  ) {
    this.device = device;
    this.length = length;
    this.weightDecay = weightDecay;
    this.offset = offset;
    this.#pipeline = pipeline;
    this.#params = device.createBuffer({
      label: "adamw.params",
      size: 16,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    const params = new ArrayBuffer(16);
    new Uint32Array(params, 0, 1)[0] = length;
    new Float32Array(params, 4, 1)[0] = weightDecay;
    device.queue.writeBuffer(this.#params, 0, params);
  }

  /**
   * Checks the shape (length a positive integer that fits one storage
   * binding, weight decay finite and ≥ 0, offset a non-negative multiple of
   * the device's `minStorageBufferOffsetAlignment` in elements) before any
   * GPU work, then builds the pipeline. With `offset`, the plan updates
   * elements `offset … offset + length` of flat buffers (one plan per range
   * of a flat parameter buffer that shares one weight decay).
   */
  static async create(
    device: GPUDevice,
    shape: { length: number; weightDecay: number; offset?: number },
  ): Promise<AdamWPlan> {
    const length = shape?.length;
    if (typeof length !== "number" || !Number.isInteger(length) || length < 1) {
      throw new RangeError(`shape.length must be a positive integer, got ${String(length)}`);
    }
    _checkWeightDecay(shape.weightDecay);
    checkIsDevice(device);
    const offset = shape.offset ?? 0;
    const align = device.limits.minStorageBufferOffsetAlignment / 4;
    if (!Number.isInteger(offset) || offset < 0 || offset % align !== 0) {
      throw new RangeError(
        `shape.offset must be a non-negative multiple of ${align} elements ` +
          `(minStorageBufferOffsetAlignment), got ${String(shape.offset)}`,
      );
    }
    checkBindingFits(device, `shape.length ${length}`, length * 4);
    _assertDeviceAlive(device);
    const pipeline = await getPipeline(device, {
      key: "adamw",
      label: "adamw",
      code: () => ADAMW_WGSL,
    });
    return new AdamWPlan(device, length, shape.weightDecay, offset, pipeline);
  }

  /**
   * Records the update: reads grad, gradSumSq and the step block; updates
   * param, m and v in place. The four tensors must be four different buffers,
   * and gradSumSq none of them.
   */
  encode(encoder: GPUCommandEncoder, b: AdamWBuffers): void {
    const bytes = this.length * 4;
    const offset = this.offset * 4;
    for (const name of ["param", "grad", "m", "v"] as const) {
      checkBufferSize(`buffers.${name}`, b?.[name], offset + bytes);
    }
    checkBufferSize("buffers.step", b.step, ADAMW_STEP_BYTES);
    checkBufferSize("buffers.gradSumSq", b.gradSumSq, 4);
    const range = (buffer: GPUBuffer) => ({ buffer, offset, size: bytes });
    const storage = [
      range(b.grad),
      { buffer: b.gradSumSq },
      range(b.param),
      range(b.m),
      range(b.v),
    ];
    const pair = findAliased({
      param: b.param,
      grad: b.grad,
      m: b.m,
      v: b.v,
      gradSumSq: b.gradSumSq,
    });
    if (pair) {
      // WebGPU drops a dispatch that binds one buffer both read_write and read.
      throw new RangeError(`buffers.${pair[0]} and buffers.${pair[1]} must be distinct buffers`);
    }
    const groups = grid2d(
      Math.ceil(this.length / _WG),
      this.device.limits.maxComputeWorkgroupsPerDimension,
    );
    const group = cachedBindGroup(this.device, this.#pipeline, [this.#params, b.step, ...storage]);
    const pass = encoder.beginComputePass({ label: "adamw" });
    pass.setPipeline(this.#pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(...groups);
    pass.end();
  }

  /** Frees the plan's uniform buffer; the cached pipeline stays. */
  destroy(): void {
    this.#params.destroy();
  }
}
