/**
 * Element-wise kernels of the training module: a bias added to every row, an
 * in-place sum of two tensors, and the GELU / ReLU activations with their
 * backward passes.
 *
 * - Bias add, in place: `x[r·width + c] += bias[c]` (also used with
 *   `rows = batch`, `width = seqLen·C` to add position embeddings).
 * - Add, in place: `x[i] += y[i]`.
 * - GELU (tanh approximation): `gelu(x) = ½·x·(1 + tanh(u))` with
 *   `u = √(2/π)·(x + 0.044715·x³)`. Since `½·(1 + tanh(u)) = σ(2u)`, the
 *   kernels compute `gelu(x) = x·σ(2u)` with `σ(z) = e/(1 + e)` or `1/(1 + e)`,
 *   `e = exp(−|z|)`: exp of a non-positive number only, so no overflow, no
 *   cancellation in `1 + tanh(u)` for negative x, and no NaN or Inf for any
 *   finite x (|x| is clamped to 20 inside u, where σ(2u) is already exactly 0
 *   or 1 in f32).
 * - GELU derivative: `gelu'(x) = s + 2·x·s·(1 − s)·√(2/π)·(1 + 3·0.044715·x²)`
 *   with `s = σ(2u)` and `s·(1 − s) = e/(1 + e)²`.
 * - ReLU: `max(x, 0)`; its derivative is 1 for x > 0 and 0 otherwise (0 at 0).
 *
 * Every kernel runs one invocation per element and has no loops, so Mesa
 * llvmpipe's limit of 65535 loop iterations per invocation never applies. The
 * grid is two-dimensional (`grid2d`), so lengths past 65535 workgroups work.
 * A buffer may not be bound both read and read_write in one dispatch (WebGPU
 * drops the dispatch), so the in-place kernels bind x once, read_write, and
 * the encoders refuse aliased buffers.
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

/** A row-major `[rows, width]` tensor. */
export interface RowsShape {
  /** Number of rows. */
  rows: number;
  /** Elements per row. */
  width: number;
}

/** The activations {@linkcode UnaryPlan} computes. */
export type UnaryFn = "gelu" | "relu";

/** Invocations per workgroup: one element each. */
const _WG = 256;
/** √(2/π). */
const _GELU_K = Math.sqrt(2 / Math.PI);
/** The cubic coefficient of the tanh approximation. */
const _GELU_A = 0.044715;

function _checkCount(name: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  }
}

function _checkRows(shape: RowsShape): void {
  if (typeof shape !== "object" || shape === null) {
    throw new TypeError(`shape must be an object { rows, width }, got ${String(shape)}`);
  }
  _checkCount("shape.rows", shape.rows);
  _checkCount("shape.width", shape.width);
}

function _checkFn(fn: unknown): asserts fn is UnaryFn {
  if (fn !== "gelu" && fn !== "relu") {
    throw new TypeError(`fn must be "gelu" or "relu", got ${String(fn)}`);
  }
}

function _checkArray(name: string, data: unknown, length?: number): asserts data is Float32Array {
  if (!(data instanceof Float32Array)) {
    throw new TypeError(`${name} must be a Float32Array`);
  }
  if (length !== undefined && data.length !== length) {
    throw new RangeError(`${name}.length must be ${length}, got ${data.length}`);
  }
}

/** Throws unless the buffers named are all different (a dispatch may not alias a written one). */
function _checkDistinct(buffers: Record<string, GPUBuffer>): void {
  const pair = findAliased(buffers);
  if (pair) {
    throw new RangeError(
      `buffers.${pair[0]} and buffers.${pair[1]} must be different buffers ` +
        "(WebGPU drops a dispatch that binds a buffer it writes twice)",
    );
  }
}

// ---------------------------------------------------------------------------
// References

/** `x[r, c] + bias[c]` in plain TypeScript: the ground truth of {@linkcode BiasAddPlan}. */
export function biasAddReference(
  x: Float32Array,
  bias: Float32Array,
  shape: RowsShape,
): Float32Array {
  _checkRows(shape);
  const { rows, width } = shape;
  _checkArray("x", x, rows * width);
  _checkArray("bias", bias, width);
  const out = new Float32Array(rows * width);
  for (let i = 0; i < out.length; i++) out[i] = x[i] + bias[i % width];
  return out;
}

/** `x[i] + y[i]` in plain TypeScript: the ground truth of {@linkcode AddPlan}. */
export function addReference(x: Float32Array, y: Float32Array): Float32Array {
  _checkArray("x", x);
  _checkArray("y", y, x.length);
  const out = new Float32Array(x.length);
  for (let i = 0; i < out.length; i++) out[i] = x[i] + y[i];
  return out;
}

/** `σ(2u)` and `σ(2u)·(1 − σ(2u))` of GELU at x, in f64, without overflow. */
function _geluSigmoid(x: number): { s: number; ds: number } {
  const z = 2 * _GELU_K * (x + _GELU_A * x * x * x);
  const e = Math.exp(-Math.abs(z));
  const s = (z >= 0 ? 1 : e) / (1 + e);
  return { s, ds: e / ((1 + e) * (1 + e)) };
}

/** `f(x)` in f64, rounded to f32 (GELU as `x·σ(2u)`, see the module doc). */
function _unary(fn: UnaryFn, x: number): number {
  if (fn === "relu") return x > 0 ? x : 0;
  return x * _geluSigmoid(x).s;
}

/** `f'(x)` in f64. */
function _unaryDerivative(fn: UnaryFn, x: number): number {
  if (fn === "relu") return x > 0 ? 1 : 0;
  const { s, ds } = _geluSigmoid(x);
  // ds underflows to 0 long before the polynomial overflows (|x| ≳ 27 vs 1e100).
  return ds === 0 ? s : s + 2 * x * ds * _GELU_K * (1 + 3 * _GELU_A * x * x);
}

/** `f(x)` element-wise in f64 (GELU: the tanh approximation), rounded to f32. */
export function unaryReference(fn: UnaryFn, x: Float32Array): Float32Array {
  _checkFn(fn);
  _checkArray("x", x);
  return x.map((v) => _unary(fn, v));
}

/** `dx = f'(x)·dy` element-wise in f64, rounded to f32. ReLU's derivative at 0 is 0. */
export function unaryBackwardReference(
  fn: UnaryFn,
  x: Float32Array,
  dy: Float32Array,
): Float32Array {
  _checkFn(fn);
  _checkArray("x", x);
  _checkArray("dy", dy, x.length);
  const dx = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) dx[i] = _unaryDerivative(fn, x[i]) * dy[i];
  return dx;
}

// ---------------------------------------------------------------------------
// WGSL

const _HEADER = `struct Params {
  length: u32,  // elements
  width: u32,   // bias add: elements per row
  _pad0: u32,
  _pad1: u32,
}
override WG: u32 = ${_WG}u;
@group(0) @binding(0) var<uniform> params: Params;
`;

/** The element index of an invocation on the 2-D grid, and the bounds test. */
const _INDEX = `@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let i = (wid.y * groups.x + wid.x) * WG + lid;
  if (i >= params.length) { return; }`;

const _BIAS_ADD_WGSL = `// elementwise.bias_add
${_HEADER}
@group(0) @binding(1) var<storage, read_write> x: array<f32>;  // [rows, width]
@group(0) @binding(2) var<storage, read> bias: array<f32>;     // [width]
${_INDEX}
  x[i] += bias[i % params.width];
}
`;

const _ADD_WGSL = `// elementwise.add
${_HEADER}
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
${_INDEX}
  x[i] += y[i];
}
`;

/** GELU helpers: σ(2u) and σ(2u)(1 − σ(2u)) with |x| clamped to 20 (exact in f32 beyond). */
const _GELU_FNS = `
const GELU_K: f32 = ${_GELU_K};
const GELU_A: f32 = ${_GELU_A};
// (σ(2u), σ(2u)·(1 − σ(2u))) with u = √(2/π)(x + 0.044715x³); exp of a non-positive number only.
fn geluSigmoid(xc: f32) -> vec2<f32> {
  let z = 2.0 * GELU_K * (xc + GELU_A * xc * xc * xc);
  let e = exp(-abs(z));
  let r = 1.0 / (1.0 + e);
  return vec2<f32>(select(e, 1.0, z >= 0.0) * r, e * r * r);
}
fn f(x: f32) -> f32 {
  return x * geluSigmoid(clamp(x, -20.0, 20.0)).x;
}
fn df(x: f32) -> f32 {
  let xc = clamp(x, -20.0, 20.0);
  let s = geluSigmoid(xc);
  return s.x + 2.0 * xc * s.y * GELU_K * (1.0 + 3.0 * GELU_A * xc * xc);
}
`;

const _RELU_FNS = `
fn f(x: f32) -> f32 { return max(x, 0.0); }
fn df(x: f32) -> f32 { return select(0.0, 1.0, x > 0.0); }
`;

function _unaryForwardWgsl(fn: UnaryFn): string {
  return `// elementwise.${fn}.forward
${_HEADER}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${fn === "gelu" ? _GELU_FNS : _RELU_FNS}
${_INDEX}
  y[i] = f(x[i]);
}
`;
}

function _unaryBackwardWgsl(fn: UnaryFn): string {
  return `// elementwise.${fn}.backward
${_HEADER}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
${fn === "gelu" ? _GELU_FNS : _RELU_FNS}
${_INDEX}
  dx[i] = df(x[i]) * dy[i];
}
`;
}

// ---------------------------------------------------------------------------
// Plans

/** The uniform of an element-wise plan: `[length, width, 0, 0]`. */
function _params(device: GPUDevice, label: string, length: number, width: number): GPUBuffer {
  const buffer = device.createBuffer({
    label,
    size: 16,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(buffer, 0, new Uint32Array([length, width, 0, 0]));
  return buffer;
}

/** Records one compute pass: `params` at binding 0, then `[buffer, bytes]` pairs, over `length` elements. */
function _pass(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  pipeline: GPUComputePipeline,
  params: GPUBuffer,
  buffers: [GPUBuffer, number][],
  length: number,
): void {
  // Each buffer bound over the bytes the kernel uses (a larger buffer may exceed a binding).
  const group = cachedBindGroup(device, pipeline, [
    params,
    ...buffers.map(([buffer, size]) => ({ buffer, size })),
  ]);
  const pass = encoder.beginComputePass({ label: pipeline.label });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(
    ...grid2d(Math.ceil(length / _WG), device.limits.maxComputeWorkgroupsPerDimension),
  );
  pass.end();
}

function _pipeline(
  device: GPUDevice,
  label: string,
  code: () => string,
): Promise<GPUComputePipeline> {
  return getPipeline(device, { key: label, label, code });
}

/**
 * Adds a bias to every row in place: `x[r·width + c] += bias[c]`. With
 * `rows = batch` and `width = seqLen·C` it adds position embeddings.
 */
export class BiasAddPlan {
  /** The device the plan runs on. */
  readonly device: GPUDevice;
  /** The shape the plan was made for. */
  readonly shape: Readonly<RowsShape>;
  readonly #params: GPUBuffer;
  readonly #pipeline: GPUComputePipeline;

  private constructor(device: GPUDevice, shape: RowsShape, pipeline: GPUComputePipeline) {
    this.device = device;
    this.shape = Object.freeze({ rows: shape.rows, width: shape.width });
    this.#pipeline = pipeline;
    this.#params = _params(
      device,
      "elementwise.bias_add.params",
      shape.rows * shape.width,
      shape.width,
    );
  }

  /** Checks the shape (before any GPU work) and builds the pipeline (cached per device). */
  static async create(device: GPUDevice, shape: RowsShape): Promise<BiasAddPlan> {
    checkIsDevice(device);
    _checkRows(shape);
    checkBindingFits(device, "bias add: x", (shape.rows * shape.width) * 4);
    _assertDeviceAlive(device);
    const pipeline = await _pipeline(device, "elementwise.bias_add", () => _BIAS_ADD_WGSL);
    return new BiasAddPlan(device, shape, pipeline);
  }

  /** Records `x += bias` (broadcast over rows): x `[rows, width]` read and written, bias `[width]` read. */
  encode(encoder: GPUCommandEncoder, b: { x: GPUBuffer; bias: GPUBuffer }): void {
    const { rows, width } = this.shape;
    checkBufferSize("buffers.x", b?.x, rows * width * 4);
    checkBufferSize("buffers.bias", b.bias, width * 4);
    _checkDistinct({ x: b.x, bias: b.bias });
    _pass(this.device, encoder, this.#pipeline, this.#params, [[b.x, rows * width * 4], [
      b.bias,
      width * 4,
    ]], rows * width);
  }

  /** Frees the plan's uniform buffer; the cached pipeline stays. */
  destroy(): void {
    this.#params.destroy();
  }
}

/** Adds one tensor to another in place: `x[i] += y[i]`. */
export class AddPlan {
  /** The device the plan runs on. */
  readonly device: GPUDevice;
  /** Elements of x and y. */
  readonly length: number;
  readonly #params: GPUBuffer;
  readonly #pipeline: GPUComputePipeline;

  private constructor(device: GPUDevice, length: number, pipeline: GPUComputePipeline) {
    this.device = device;
    this.length = length;
    this.#pipeline = pipeline;
    this.#params = _params(device, "elementwise.add.params", length, 1);
  }

  /** Checks the length (before any GPU work) and builds the pipeline (cached per device). */
  static async create(device: GPUDevice, length: number): Promise<AddPlan> {
    checkIsDevice(device);
    _checkCount("length", length);
    checkBindingFits(device, "add: x", length * 4);
    _assertDeviceAlive(device);
    const pipeline = await _pipeline(device, "elementwise.add", () => _ADD_WGSL);
    return new AddPlan(device, length, pipeline);
  }

  /** Records `x += y`: x read and written, y read (x and y must be different buffers). */
  encode(encoder: GPUCommandEncoder, b: { x: GPUBuffer; y: GPUBuffer }): void {
    checkBufferSize("buffers.x", b?.x, this.length * 4);
    checkBufferSize("buffers.y", b.y, this.length * 4);
    _checkDistinct({ x: b.x, y: b.y });
    const bytes = this.length * 4;
    _pass(
      this.device,
      encoder,
      this.#pipeline,
      this.#params,
      [[b.x, bytes], [b.y, bytes]],
      this.length,
    );
  }

  /** Frees the plan's uniform buffer; the cached pipeline stays. */
  destroy(): void {
    this.#params.destroy();
  }
}

/** An activation, forward `y = f(x)` and backward `dx = f'(x)·dy`, over `length` elements. */
export class UnaryPlan {
  /** The device the plan runs on. */
  readonly device: GPUDevice;
  /** The shape the plan was made for. */
  readonly shape: Readonly<{ length: number; fn: UnaryFn }>;
  readonly #params: GPUBuffer;
  readonly #forward: GPUComputePipeline;
  readonly #backward: GPUComputePipeline;

  private constructor(
    device: GPUDevice,
    shape: { length: number; fn: UnaryFn },
    forward: GPUComputePipeline,
    backward: GPUComputePipeline,
  ) {
    this.device = device;
    this.shape = Object.freeze({ length: shape.length, fn: shape.fn });
    this.#forward = forward;
    this.#backward = backward;
    this.#params = _params(device, `elementwise.${shape.fn}.params`, shape.length, 1);
  }

  /** Checks the shape (before any GPU work) and builds both pipelines (cached per device). */
  static async create(
    device: GPUDevice,
    shape: { length: number; fn: UnaryFn },
  ): Promise<UnaryPlan> {
    checkIsDevice(device);
    if (typeof shape !== "object" || shape === null) {
      throw new TypeError(`shape must be an object { length, fn }, got ${String(shape)}`);
    }
    _checkCount("shape.length", shape.length);
    _checkFn(shape.fn);
    checkBindingFits(device, `${shape.fn}: x`, (shape.length) * 4);
    _assertDeviceAlive(device);
    const { fn } = shape;
    const [forward, backward] = await Promise.all([
      _pipeline(device, `elementwise.${fn}.forward`, () => _unaryForwardWgsl(fn)),
      _pipeline(device, `elementwise.${fn}.backward`, () => _unaryBackwardWgsl(fn)),
    ]);
    return new UnaryPlan(device, shape, forward, backward);
  }

  /** Records `y = f(x)`: x read, y written (x and y must be different buffers). */
  encodeForward(encoder: GPUCommandEncoder, b: { x: GPUBuffer; y: GPUBuffer }): void {
    const bytes = this.shape.length * 4;
    checkBufferSize("buffers.x", b?.x, bytes);
    checkBufferSize("buffers.y", b.y, bytes);
    _checkDistinct({ x: b.x, y: b.y });
    _pass(
      this.device,
      encoder,
      this.#forward,
      this.#params,
      [[b.x, bytes], [b.y, bytes]],
      this.shape.length,
    );
  }

  /** Records `dx = f'(x)·dy`: x and dy read, dx written (dx must differ from x and dy). */
  encodeBackward(
    encoder: GPUCommandEncoder,
    b: { x: GPUBuffer; dy: GPUBuffer; dx: GPUBuffer },
  ): void {
    const bytes = this.shape.length * 4;
    checkBufferSize("buffers.x", b?.x, bytes);
    checkBufferSize("buffers.dy", b.dy, bytes);
    checkBufferSize("buffers.dx", b.dx, bytes);
    _checkDistinct({ x: b.x, dx: b.dx });
    _checkDistinct({ dy: b.dy, dx: b.dx });
    _pass(
      this.device,
      encoder,
      this.#backward,
      this.#params,
      [[b.x, bytes], [b.dy, bytes], [b.dx, bytes]],
      this.shape.length,
    );
  }

  /** Frees the plan's uniform buffer; the cached pipelines stay. */
  destroy(): void {
    this.#params.destroy();
  }
}
