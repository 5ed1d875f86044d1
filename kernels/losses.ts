/**
 * Loss functions of the training module, forward and backward in one pass:
 * softmax cross-entropy over class logits and mean squared error. Each kernel
 * writes one loss term per row (or element), scaled so that their sum is the
 * mean loss, and the gradient of that mean with respect to its input.
 *
 * Cross-entropy, for logits `x` of `rows × classes` and integer targets `t`
 * (`−1`: no loss at that row), with `n` the number of rows whose target is a
 * class (`valid`):
 *
 * - `p_r = softmax(x_r)`, computed stably as `exp(x_r − max x_r) / Σ exp(x_r − max x_r)`;
 * - `losses[r] = −log p_r[t_r] / n = (max x_r + log Σ exp(x_r − max x_r) − x_r[t_r]) / n`;
 * - `dlogits[r, c] = (p_r[c] − [c = t_r]) / n`;
 * - ignored rows have `losses[r] = 0` and `dlogits[r, :] = 0`; with `n = 0` everything is 0.
 *
 * `n` is counted on the GPU (a one-workgroup pass over the targets, into a
 * small buffer the plan owns), so a training step needs no CPU arithmetic.
 * Then one workgroup per row: a max reduction, a sum reduction, and a pass
 * writing the gradient. On the GPU a target outside `[−1, classes)` counts as
 * ignored; the reference refuses it.
 *
 * Mean squared error, for `pred` and `target` of `length` elements:
 * `losses[i] = (pred[i] − target[i])² / length`,
 * `dpred[i] = 2·(pred[i] − target[i]) / length`.
 *
 * No invocation loops more than about `max(rows, classes) / 64` times: Mesa's
 * llvmpipe stops an invocation after 65535 loop iterations in all, so the
 * plans refuse shapes that would need more.
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
  STORAGE_USAGE,
} from "./device.ts";
import { grid2d } from "./attention_unfused.ts";
import { REDUCE_WGSL } from "./wgsl.ts";

/** Invocations per workgroup of every loss kernel. */
const _WG = 64;
/** Loop iterations an invocation may spend (llvmpipe stops it at 65535), with a margin. */
const _LOOP_BUDGET = 60000;

/** Sizes of a cross-entropy: `rows` independent rows of `classes` logits, row-major. */
export interface CrossEntropyShape {
  /** Rows (e.g. token positions), each with one target; a positive integer. */
  rows: number;
  /** Classes per row (logits per row); an integer ≥ 2. */
  classes: number;
}

/** Sizes of a mean squared error: `length` elements. */
export interface MseShape {
  /** Elements of `pred` and `target`; a positive integer. */
  length: number;
}

function _checkPositiveInteger(name: string, value: unknown, least = 1): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < least) {
    throw new RangeError(
      `${name} must be ${least === 1 ? "a positive integer" : `an integer ≥ ${least}`}, ` +
        `got ${String(value)}`,
    );
  }
}

function _checkCrossEntropyShape(shape: CrossEntropyShape): void {
  _checkPositiveInteger("shape.rows", shape?.rows);
  _checkPositiveInteger("shape.classes", shape?.classes, 2);
}

function _checkMseShape(shape: MseShape): void {
  _checkPositiveInteger("shape.length", shape?.length);
}

function _checkArray(
  name: string,
  data: unknown,
  length: number,
  type: typeof Float32Array | typeof Int32Array = Float32Array,
): void {
  if (!(data instanceof type)) {
    throw new TypeError(
      `${name} must be a${type === Int32Array ? "n" : ""} ${type.name} of ${length} elements`,
    );
  }
  if (data.length !== length) {
    throw new RangeError(`${name}.length must be ${length}, got ${data.length}`);
  }
}

/** What {@linkcode crossEntropyReference} returns. */
export interface CrossEntropyReference {
  /** `[rows]`: `−log softmax(logits_r)[t_r] / valid`, 0 for ignored rows; sums to `loss`. */
  losses: Float32Array;
  /** `[rows, classes]`: `(softmax(logits_r) − onehot(t_r)) / valid`, 0 for ignored rows. */
  dlogits: Float32Array;
  /** The mean loss over the valid rows (0 when there are none), in f64. */
  loss: number;
  /** The number of rows whose target is a class (not −1). */
  valid: number;
}

/**
 * Softmax cross-entropy in plain TypeScript with f64 arithmetic: the ground
 * truth for {@linkcode CrossEntropyPlan}. `targets[r]` is a class in
 * `[0, classes)` or −1 (no loss at row r); anything else is a RangeError.
 */
export function crossEntropyReference(
  logits: Float32Array,
  targets: Int32Array,
  shape: CrossEntropyShape,
): CrossEntropyReference {
  _checkCrossEntropyShape(shape);
  const { rows: N, classes: C } = shape;
  _checkArray("logits", logits, N * C);
  _checkArray("targets", targets, N, Int32Array);
  let valid = 0;
  for (let r = 0; r < N; r++) {
    const t = targets[r];
    if (t < -1 || t >= C) {
      throw new RangeError(`targets[${r}] must be −1 or a class in [0, ${C}), got ${t}`);
    }
    if (t >= 0) valid++;
  }
  const losses = new Float32Array(N);
  const dlogits = new Float32Array(N * C);
  let total = 0;
  const p = new Float64Array(C);
  for (let r = 0; r < N; r++) {
    const t = targets[r];
    if (t < 0) continue;
    const o = r * C;
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, logits[o + c]);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += p[c] = Math.exp(logits[o + c] - max);
    const nll = max - logits[o + t] + Math.log(sum);
    total += nll;
    losses[r] = nll / valid;
    for (let c = 0; c < C; c++) dlogits[o + c] = (p[c] / sum - (c === t ? 1 : 0)) / valid;
  }
  return { losses, dlogits, loss: valid > 0 ? total / valid : 0, valid };
}

/** What {@linkcode mseReference} returns. */
export interface MseReference {
  /** `[length]`: `(pred − target)² / length`; sums to `loss`. */
  losses: Float32Array;
  /** `[length]`: `2·(pred − target) / length`. */
  dpred: Float32Array;
  /** The mean squared error, in f64. */
  loss: number;
}

/** Mean squared error in plain TypeScript with f64 arithmetic: the ground truth for {@linkcode MsePlan}. */
export function mseReference(pred: Float32Array, target: Float32Array): MseReference {
  if (!(pred instanceof Float32Array)) throw new TypeError("pred must be a Float32Array");
  const L = pred.length;
  _checkMseShape({ length: L });
  _checkArray("target", target, L);
  const losses = new Float32Array(L);
  const dpred = new Float32Array(L);
  let total = 0;
  for (let i = 0; i < L; i++) {
    const d = pred[i] - target[i];
    total += d * d;
    losses[i] = d * d / L;
    dpred[i] = 2 * d / L;
  }
  return { losses, dpred, loss: total / L };
}

/**
 * WGSL of the valid-target count: one workgroup whose invocations stride
 * over the rows, then a tree reduction. Writes `valid[0]` = the number of
 * targets in `[0, classes)` (an f32: exact below 2²⁴ rows). Bindings:
 * 0 params, 1 targets, 2 valid.
 */
export const CROSS_ENTROPY_COUNT_WGSL = `// losses.cross_entropy.count
struct Params {
  rows: u32,
  classes: u32,
  _pad0: u32,
  _pad1: u32,
}
override WG: u32 = ${_WG}u;
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> targets: array<i32>;      // [N]
@group(0) @binding(2) var<storage, read_write> valid: array<f32>;  // [1]

${REDUCE_WGSL}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  var count = 0.0;
  for (var r = lid; r < params.rows; r += WG) {
    // As u32, −1 and every negative target wrap past classes.
    count += select(0.0, 1.0, u32(targets[r]) < params.classes);
  }
  partial[lid] = count;
  let total = reduce(lid, false);
  if (lid == 0u) { valid[0] = total; }
}
`;

/** The loss pass's uniform and bindings (both variants). */
const _CE_BINDINGS = `struct Params {
  rows: u32,     // N
  classes: u32,  // C
  _pad0: u32,
  _pad1: u32,
}
override WG: u32 = ${_WG}u;
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;   // [N, C]
@group(0) @binding(2) var<storage, read> targets: array<i32>;  // [N]
@group(0) @binding(3) var<storage, read> valid: array<f32>;    // [1]
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;   // [N]
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;  // [N, C]
`;

/**
 * WGSL of the cross-entropy kernel: one workgroup per row (a max and a sum
 * reduction, then the gradient). Bindings: 0 params, 1 logits, 2 targets,
 * 3 valid (the count pass's output), 4 losses, 5 dlogits.
 */
export const CROSS_ENTROPY_WGSL = `// losses.cross_entropy
${_CE_BINDINGS}
${REDUCE_WGSL}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let row = wid.y * groups.x + wid.x;
  if (row >= params.rows) { return; }  // uniform per workgroup
  let C = params.classes;
  let o = row * C;
  let t = u32(targets[row]);  // −1 and other negatives wrap past C
  let counted = t < C;
  // Counted rows make valid ≥ 1; ignored rows multiply by 0 (and select 0 below).
  let scale = select(0.0, 1.0 / valid[0], counted);
  var m = -3.4028234663852886e38;
  for (var c = lid; c < C; c += WG) { m = max(m, logits[o + c]); }
  partial[lid] = m;
  m = reduce(lid, true);
  var s = 0.0;
  for (var c = lid; c < C; c += WG) { s += exp(logits[o + c] - m); }
  partial[lid] = s;
  s = reduce(lid, false);
  let inv = 1.0 / s;
  for (var c = lid; c < C; c += WG) {
    let g = exp(logits[o + c] - m) * inv - select(0.0, 1.0, c == t);
    dlogits[o + c] = select(0.0, g * scale, counted);
  }
  if (lid == 0u) {
    // −log p_t = (max − x_t) + log Σ exp(x − max); both terms are ≥ 0.
    let nll = (m - logits[o + select(0u, t, counted)]) + log(s);
    losses[row] = select(0.0, nll * scale, counted);
  }
}
`;

/**
 * WGSL of the loss pass for rows of few classes: one invocation per row, no
 * workgroup memory and no barriers (on a CPU adapter the barriers of
 * {@linkcode CROSS_ENTROPY_WGSL} cost more than a short row's arithmetic).
 * Same bindings and results.
 */
export const CROSS_ENTROPY_LANE_WGSL = `// losses.cross_entropy.lane
${_CE_BINDINGS}
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let row = (wid.y * groups.x + wid.x) * WG + lid;
  if (row >= params.rows) { return; }
  let C = params.classes;
  let o = row * C;
  let t = u32(targets[row]);  // −1 and other negatives wrap past C
  let counted = t < C;
  let scale = select(0.0, 1.0 / valid[0], counted);
  var m = -3.4028234663852886e38;
  for (var c = 0u; c < C; c++) { m = max(m, logits[o + c]); }
  var s = 0.0;
  for (var c = 0u; c < C; c++) { s += exp(logits[o + c] - m); }
  let inv = 1.0 / s;
  for (var c = 0u; c < C; c++) {
    let g = exp(logits[o + c] - m) * inv - select(0.0, 1.0, c == t);
    dlogits[o + c] = select(0.0, g * scale, counted);
  }
  let nll = (m - logits[o + select(0u, t, counted)]) + log(s);
  losses[row] = select(0.0, nll * scale, counted);
}
`;

/** Rows of up to this many classes use {@linkcode CROSS_ENTROPY_LANE_WGSL}. */
export const CROSS_ENTROPY_LANE_CLASSES = 256;

/**
 * WGSL of the mean-squared-error kernel: one invocation per element.
 * Bindings: 0 params, 1 pred, 2 target, 3 losses, 4 dpred.
 */
export const MSE_WGSL = `// losses.mse
struct Params {
  length: u32,  // L
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}
override WG: u32 = ${_WG}u;
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;    // [L]
@group(0) @binding(2) var<storage, read> tgt: array<f32>;   // [L]
@group(0) @binding(3) var<storage, read_write> losses: array<f32>;  // [L]
@group(0) @binding(4) var<storage, read_write> dpred: array<f32>;   // [L]

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let i = (wid.y * groups.x + wid.x) * WG + lid;
  if (i >= params.length) { return; }
  let d = pred[i] - tgt[i];
  let n = f32(params.length);
  losses[i] = d * d / n;
  dpred[i] = 2.0 * d / n;
}
`;

/** Records one compute pass: `buffers` bound in order after the uniform `params` (binding 0). */
function _pass(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  pipeline: GPUComputePipeline,
  buffers: GPUBuffer[],
  groups: [number, number],
): void {
  const group = cachedBindGroup(device, pipeline, buffers);
  const pass = encoder.beginComputePass({ label: pipeline.label });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(...groups);
  pass.end();
}

/** A 16-byte uniform buffer holding `words` (u32), the rest zero. */
function _uniform(device: GPUDevice, label: string, words: number[]): GPUBuffer {
  const buffer = device.createBuffer({
    label,
    size: 16,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  const data = new Uint32Array(4);
  data.set(words);
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/**
 * Throws a RangeError if two of the named buffers are the same: WebGPU drops a
 * dispatch that binds one buffer both read_write and read (and rejects two
 * writable bindings).
 */
function _checkDistinct(buffers: Record<string, GPUBuffer>, written?: string[]): void {
  const pair = findAliased(buffers, written);
  if (pair) {
    throw new RangeError(`buffers.${pair[0]} and buffers.${pair[1]} must be distinct GPUBuffers`);
  }
}

/** GPU buffers of a cross-entropy (f32 unless noted). */
export interface CrossEntropyBuffers {
  /** `[rows, classes]`, read. */
  logits: GPUBuffer;
  /** `[rows]` of i32, read: a class, or −1 (or anything outside `[0, classes)`) for no loss. */
  targets: GPUBuffer;
  /** `[rows]`, written: the per-row terms of the mean loss (0 for ignored rows). */
  losses: GPUBuffer;
  /** `[rows, classes]`, written: the gradient of the mean loss with respect to the logits. */
  dlogits: GPUBuffer;
}

/**
 * A softmax cross-entropy ready to encode: pipelines built (cached per
 * device), the uniform written, and a 4-byte buffer for the valid-row count.
 * Encode it into your own command encoder as often as you like; call
 * {@linkcode CrossEntropyPlan.destroy} when done.
 *
 * @example
 * ```ts ignore
 * const plan = await CrossEntropyPlan.create(device, { rows: 4096, classes: 64 });
 * plan.encode(encoder, { logits, targets, losses, dlogits });
 * ```
 */
export class CrossEntropyPlan {
  /** The device the plan runs on. */
  readonly device: GPUDevice;
  /** The shape the plan was made for. */
  readonly shape: Readonly<CrossEntropyShape>;
  readonly #params: GPUBuffer;
  readonly #valid: GPUBuffer;
  readonly #count: GPUComputePipeline;
  readonly #rows: GPUComputePipeline;
  /** One invocation per row ({@linkcode CROSS_ENTROPY_LANE_WGSL}) instead of a workgroup. */
  readonly #lane: boolean;

  private constructor(
    device: GPUDevice,
    shape: CrossEntropyShape,
    count: GPUComputePipeline,
    rows: GPUComputePipeline,
    lane: boolean,
  ) {
    this.device = device;
    this.#lane = lane;
    this.shape = Object.freeze({ rows: shape.rows, classes: shape.classes });
    this.#count = count;
    this.#rows = rows;
    this.#params = _uniform(device, "losses.cross_entropy.params", [shape.rows, shape.classes]);
    this.#valid = device.createBuffer({
      label: "losses.cross_entropy.valid",
      size: 4,
      usage: STORAGE_USAGE,
    });
  }

  /**
   * Checks the shape (before any GPU work) and builds the pipelines. Rows and
   * classes are each limited to about 3.8 million by llvmpipe's loop budget
   * (the count pass loops rows/64 times; a row's invocations, classes/64
   * times, three loops), and `rows × classes` floats must fit one storage
   * binding.
   */
  static async create(device: GPUDevice, shape: CrossEntropyShape): Promise<CrossEntropyPlan> {
    _checkCrossEntropyShape(shape);
    checkIsDevice(device);
    const { rows, classes } = shape;
    // Count pass: rows/WG iterations + 1 exit + the reduction's log2(WG) + 1.
    const mostRows = (_LOOP_BUDGET - 8) * _WG;
    if (rows > mostRows) {
      throw new RangeError(`shape.rows must be at most ${mostRows}, got ${rows}`);
    }
    // Row kernel: three loops over classes/WG, each one more for its exit, two reductions.
    const mostClasses = Math.floor((_LOOP_BUDGET - 20) / 3) * _WG;
    if (classes > mostClasses) {
      throw new RangeError(`shape.classes must be at most ${mostClasses}, got ${classes}`);
    }
    checkBindingFits(device, "logits", rows * classes * 4);
    _assertDeviceAlive(device);
    const pipeline = (label: string, code: string) =>
      getPipeline(device, { key: label, label, code: () => code });
    const lane = classes <= CROSS_ENTROPY_LANE_CLASSES;
    const [count, perRow] = await Promise.all([
      pipeline("losses.cross_entropy.count", CROSS_ENTROPY_COUNT_WGSL),
      lane
        ? pipeline("losses.cross_entropy.lane", CROSS_ENTROPY_LANE_WGSL)
        : pipeline("losses.cross_entropy", CROSS_ENTROPY_WGSL),
    ]);
    return new CrossEntropyPlan(device, shape, count, perRow, lane);
  }

  /**
   * Records the count pass and the loss pass: reads logits and targets;
   * writes losses and dlogits (overwritten, not accumulated into).
   */
  encode(encoder: GPUCommandEncoder, b: CrossEntropyBuffers): void {
    const { rows, classes } = this.shape;
    const sizes = { logits: rows * classes * 4, targets: rows * 4, losses: rows * 4 };
    for (const [name, bytes] of Object.entries(sizes)) {
      checkBufferSize(`buffers.${name}`, b?.[name as keyof CrossEntropyBuffers], bytes);
    }
    checkBufferSize("buffers.dlogits", b.dlogits, rows * classes * 4);
    _checkDistinct({ logits: b.logits, targets: b.targets, losses: b.losses, dlogits: b.dlogits });
    _pass(this.device, encoder, this.#count, [this.#params, b.targets, this.#valid], [1, 1]);
    const groups = grid2d(
      this.#lane ? Math.ceil(rows / _WG) : rows,
      this.device.limits.maxComputeWorkgroupsPerDimension,
    );
    _pass(
      this.device,
      encoder,
      this.#rows,
      [this.#params, b.logits, b.targets, this.#valid, b.losses, b.dlogits],
      groups,
    );
  }

  /** Frees the plan's uniform and count buffers; the cached pipelines stay. */
  destroy(): void {
    this.#params.destroy();
    this.#valid.destroy();
  }
}

/** GPU buffers of a mean squared error (f32). */
export interface MseBuffers {
  /** `[length]`, read: the predictions. */
  pred: GPUBuffer;
  /** `[length]`, read: the targets. */
  target: GPUBuffer;
  /** `[length]`, written: the terms of the mean, `(pred − target)² / length`. */
  losses: GPUBuffer;
  /** `[length]`, written: `2·(pred − target) / length`. */
  dpred: GPUBuffer;
}

/**
 * A mean squared error ready to encode: pipeline built (cached per device),
 * the uniform written. Call {@linkcode MsePlan.destroy} when done.
 *
 * @example
 * ```ts ignore
 * const plan = await MsePlan.create(device, { length: 1024 });
 * plan.encode(encoder, { pred, target, losses, dpred });
 * ```
 */
export class MsePlan {
  /** The device the plan runs on. */
  readonly device: GPUDevice;
  /** The shape the plan was made for. */
  readonly shape: Readonly<MseShape>;
  readonly #params: GPUBuffer;
  readonly #pipeline: GPUComputePipeline;

  private constructor(device: GPUDevice, shape: MseShape, pipeline: GPUComputePipeline) {
    this.device = device;
    this.shape = Object.freeze({ length: shape.length });
    this.#pipeline = pipeline;
    this.#params = _uniform(device, "losses.mse.params", [shape.length]);
  }

  /** Checks the shape (before any GPU work) and builds the pipeline. The kernel has no loops. */
  static async create(device: GPUDevice, shape: MseShape): Promise<MsePlan> {
    _checkMseShape(shape);
    checkIsDevice(device);
    checkBindingFits(device, "pred", shape.length * 4);
    _assertDeviceAlive(device);
    const pipeline = await getPipeline(device, {
      key: "losses.mse",
      label: "losses.mse",
      code: () => MSE_WGSL,
    });
    return new MsePlan(device, shape, pipeline);
  }

  /** Records the pass: reads pred and target; writes losses and dpred (overwritten). */
  encode(encoder: GPUCommandEncoder, b: MseBuffers): void {
    const bytes = this.shape.length * 4;
    for (const name of ["pred", "target", "losses", "dpred"] as const) {
      checkBufferSize(`buffers.${name}`, b?.[name], bytes);
    }
    // pred and target may be one buffer (both are only read); the outputs may not.
    // pred and target may be one buffer (both are only read); the outputs must be their own.
    _checkDistinct(
      { pred: b.pred, target: b.target, losses: b.losses, dpred: b.dpred },
      ["losses", "dpred"],
    );
    const groups = grid2d(
      Math.ceil(this.shape.length / _WG),
      this.device.limits.maxComputeWorkgroupsPerDimension,
    );
    _pass(
      this.device,
      encoder,
      this.#pipeline,
      [this.#params, b.pred, b.target, b.losses, b.dpred],
      groups,
    );
  }

  /** Frees the plan's uniform buffer; the cached pipeline stays. */
  destroy(): void {
    this.#params.destroy();
  }
}
