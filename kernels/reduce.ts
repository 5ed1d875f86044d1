/**
 * Reductions of the training module: the sum of a whole tensor (the mean loss,
 * squared gradient norms) and the column sums of a matrix (bias and
 * position-embedding gradients).
 *
 * - {@linkcode SumPlan}: `out[outIndex] = scale · Σ_i x[i]`, or
 *   `scale · Σ_i x[i]²` with `square`. Two passes: many workgroups, each
 *   invocation striding over the tensor and then a tree reduction, write one
 *   partial sum per workgroup into a scratch buffer the plan owns; one
 *   workgroup then sums the partials. A tensor larger than the device's
 *   largest storage binding is summed in segments (each its own dispatch of
 *   the first pass, bound at an offset), so lengths are limited only by the
 *   largest buffer. x is never bound in the pass that writes `out`, so x and
 *   `out` may be the same buffer (e.g. a norm of slots written into the next
 *   slot).
 * - {@linkcode ColumnSumPlan}: `out[c] = Σ_r x[r, c]`. A workgroup of 256
 *   invocations covers a block of TC consecutive columns (TC = the width
 *   rounded up to a power of two, at most 64) and a chunk of rows, its
 *   `256/TC` row lanes striding over the chunk, then a tree reduction over the
 *   row lanes. With one chunk the result goes straight to `out`; otherwise each
 *   chunk's partial row goes into scratch and a second pass sums the chunks
 *   per column. This is efficient both for tall matrices (bias gradients,
 *   rows ≫ width) and for wide ones (position-embedding gradients).
 *
 * No invocation loops more than a few hundred times: Mesa's llvmpipe stops an
 * invocation after 65535 loop iterations in all, so a loop over a whole
 * tensor in one invocation would silently drop elements. Shapes that would
 * need more than about 60000 iterations are refused with a RangeError.
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
  maxBindingBytes,
} from "./device.ts";
import { grid2d } from "./attention_unfused.ts";
import { REDUCE_WGSL } from "./wgsl.ts";
import type { RowsShape } from "./elementwise.ts";

/** Invocations per workgroup of every reduction kernel. */
const _WG = 256;
/** At most this many workgroups (partial sums) per segment of SumPlan's first pass. */
const _SUM_GROUPS = 1024;
/** ColumnSumPlan: rows each row lane sums per chunk. */
const _ROWS_PER_LANE = 64;
/** Loop iterations one invocation may spend (llvmpipe stops at 65535 in all). */
const _LOOP_BUDGET = 60000;
/** Bytes between the uniform slots of a plan (WebGPU's dynamic-offset alignment is at most 256). */
const _SLOT = 256;

function _checkCount(name: string, value: unknown, min = 1): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    const what = min === 0 ? "a non-negative integer" : "a positive integer";
    throw new RangeError(`${name} must be ${what}, got ${String(value)}`);
  }
}

function _checkRows(shape: RowsShape): void {
  if (typeof shape !== "object" || shape === null) {
    throw new TypeError(`shape must be an object { rows, width }, got ${String(shape)}`);
  }
  _checkCount("shape.rows", shape.rows);
  _checkCount("shape.width", shape.width);
}

function _checkArray(name: string, data: unknown, length?: number): asserts data is Float32Array {
  if (!(data instanceof Float32Array)) throw new TypeError(`${name} must be a Float32Array`);
  if (length !== undefined && data.length !== length) {
    throw new RangeError(`${name}.length must be ${length}, got ${data.length}`);
  }
}

function _checkLoops(what: string, iterations: number): void {
  if (iterations > _LOOP_BUDGET) {
    throw new RangeError(
      `${what} would loop ${iterations} times in one invocation, more than the ` +
        `${_LOOP_BUDGET} the software adapter allows (llvmpipe stops at 65535)`,
    );
  }
}

/** A storage binding of part of a buffer. */
interface _Binding {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

/** Records one compute pass of `pipeline` with one dispatch per entry of `dispatches`. */
function _pass(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  pipeline: GPUComputePipeline,
  dispatches: { bindings: _Binding[]; groups: [number, number] }[],
): void {
  const pass = encoder.beginComputePass({ label: pipeline.label });
  pass.setPipeline(pipeline);
  for (const { bindings, groups } of dispatches) {
    const group = cachedBindGroup(device, pipeline, bindings);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(...groups);
  }
  pass.end();
}

function _uniform(device: GPUDevice, label: string, slots: ArrayBuffer[]): GPUBuffer {
  const buffer = device.createBuffer({
    label,
    size: _SLOT * slots.length,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  slots.forEach((slot, i) => device.queue.writeBuffer(buffer, i * _SLOT, slot));
  return buffer;
}

// ---------------------------------------------------------------------------
// References

/** `scale · Σ x` (or `scale · Σ x²` with `square`) in f64: the ground truth of {@linkcode SumPlan}. */
export function sumReference(
  x: Float32Array,
  options: { square?: boolean; scale?: number } = {},
): number {
  _checkArray("x", x);
  const square = options.square ?? false;
  const scale = options.scale ?? 1;
  let sum = 0;
  if (square) { for (let i = 0; i < x.length; i++) sum += x[i] * x[i]; }
  else for (let i = 0; i < x.length; i++) sum += x[i];
  return scale * sum;
}

/** `out[c] = Σ_r x[r, c]` in f64, rounded to f32: the ground truth of {@linkcode ColumnSumPlan}. */
export function columnSumReference(x: Float32Array, shape: RowsShape): Float32Array {
  _checkRows(shape);
  const { rows, width } = shape;
  _checkArray("x", x, rows * width);
  const sums = new Float64Array(width);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < width; c++) sums[c] += x[r * width + c];
  }
  return Float32Array.from(sums);
}

// ---------------------------------------------------------------------------
// WGSL

const _SUM_HEADER = `struct Params {
  length: u32,  // elements of this segment (first pass) or partial sums (second pass)
  groups: u32,  // workgroups of this segment (first pass)
  index: u32,   // first pass: where this segment's partials start; second pass: outIndex
  square: u32,  // 1: sum x², first pass only
  scale: f32,   // second pass only
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}
override WG: u32 = ${_WG}u;
@group(0) @binding(0) var<uniform> params: Params;
${REDUCE_WGSL}
`;

const _SUM_PARTIALS_WGSL = `// reduce.sum.partials
${_SUM_HEADER}
@group(0) @binding(1) var<storage, read> x: array<f32>;              // one segment
@group(0) @binding(2) var<storage, read_write> scratch: array<f32>;  // [partials]

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let stride = params.groups * WG;
  let square = params.square != 0u;
  var s = 0.0;
  for (var i = wid.x * WG + lid; i < params.length; i += stride) {
    let v = x[i];
    s += select(v, v * v, square);
  }
  partial[lid] = s;
  let total = reduce(lid, false);
  if (lid == 0u) { scratch[params.index + wid.x] = total; }
}
`;

const _SUM_FINISH_WGSL = `// reduce.sum.finish
${_SUM_HEADER}
@group(0) @binding(1) var<storage, read> scratch: array<f32>;   // [partials]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < params.length; i += WG) { s += scratch[i]; }
  partial[lid] = s;
  let total = reduce(lid, false);
  if (lid == 0u) { out[params.index] = params.scale * total; }
}
`;

const _COLUMN_HEADER = `struct Params {
  rows: u32,
  width: u32,
  tc: u32,         // columns per workgroup, a power of two dividing WG
  chunk: u32,      // rows per chunk
  parts: u32,      // chunks
  colBlocks: u32,  // ceil(width / tc)
  _pad0: u32,
  _pad1: u32,
}
override WG: u32 = ${_WG}u;
@group(0) @binding(0) var<uniform> params: Params;
`;

const _COLUMN_PARTIALS_WGSL = `// reduce.column_sum.partials
${_COLUMN_HEADER}
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [rows, width]
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;    // [parts, width]
var<workgroup> tile: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let id = wid.y * groups.x + wid.x;
  if (id >= params.colBlocks * params.parts) { return; }  // uniform per workgroup
  let W = params.width;
  let TC = params.tc;
  let TR = WG / TC;
  let part = id / params.colBlocks;
  let col = (id % params.colBlocks) * TC + lid % TC;
  let lane = lid / TC;
  let r0 = part * params.chunk;
  let r1 = min(r0 + params.chunk, params.rows);
  var s = 0.0;
  if (col < W) {
    for (var r = r0 + lane; r < r1; r += TR) { s += x[r * W + col]; }
  }
  tile[lid] = s;
  // Tree reduction over the row lanes of each column.
  for (var stride = TR / 2u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lane < stride) { tile[lid] += tile[lid + stride * TC]; }
  }
  if (lane == 0u && col < W) { dst[part * W + col] = tile[lid]; }
}
`;

const _COLUMN_FINISH_WGSL = `// reduce.column_sum.finish
${_COLUMN_HEADER}
@group(0) @binding(1) var<storage, read> scratch: array<f32>;   // [parts, width]
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [width]

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let c = (wid.y * groups.x + wid.x) * WG + lid;
  let W = params.width;
  if (c >= W) { return; }
  var s = 0.0;
  for (var p = 0u; p < params.parts; p++) { s += scratch[p * W + c]; }
  out[c] = s;
}
`;

function _pipeline(device: GPUDevice, label: string, code: string): Promise<GPUComputePipeline> {
  return getPipeline(device, { key: label, label, code: () => code });
}

// ---------------------------------------------------------------------------
// Plans

/** One segment of SumPlan's first pass. */
interface _SumSegment {
  /** First element. */
  start: number;
  /** Elements. */
  length: number;
  /** Workgroups (= partial sums). */
  groups: number;
}

/**
 * The sum of a tensor, `out[outIndex] = scale · Σ x` (or `scale · Σ x²` with
 * `square`), written as one f32; the rest of `out` is left alone.
 */
export class SumPlan {
  /** The device the plan runs on. */
  readonly device: GPUDevice;
  /** The shape the plan was made for, defaults filled in. */
  readonly shape: Readonly<{ length: number; square: boolean; scale: number; outIndex: number }>;
  readonly #segments: _SumSegment[];
  readonly #partials: number;
  readonly #params: GPUBuffer;
  readonly #scratch: GPUBuffer;
  readonly #first: GPUComputePipeline;
  readonly #finish: GPUComputePipeline;

  private constructor(
    device: GPUDevice,
    shape: { length: number; square: boolean; scale: number; outIndex: number },
    segments: _SumSegment[],
    pipelines: [GPUComputePipeline, GPUComputePipeline],
  ) {
    this.device = device;
    this.shape = Object.freeze(shape);
    this.#segments = segments;
    [this.#first, this.#finish] = pipelines;
    this.#partials = segments.reduce((n, s) => n + s.groups, 0);
    const slots: ArrayBuffer[] = [];
    let base = 0;
    for (const s of segments) {
      slots.push(SumPlan.#slot(s.length, s.groups, base, shape.square ? 1 : 0, 0));
      base += s.groups;
    }
    slots.push(SumPlan.#slot(this.#partials, 1, shape.outIndex, 0, shape.scale));
    this.#params = _uniform(device, "reduce.sum.params", slots);
    this.#scratch = device.createBuffer({
      label: "reduce.sum.scratch",
      size: this.#partials * 4,
      usage: GPUBufferUsage.STORAGE,
    });
  }

  static #slot(
    length: number,
    groups: number,
    index: number,
    square: number,
    scale: number,
  ): ArrayBuffer {
    const slot = new ArrayBuffer(32);
    new Uint32Array(slot, 0, 4).set([length, groups, index, square]);
    new Float32Array(slot, 16, 1)[0] = scale;
    return slot;
  }

  /**
   * Checks the shape (before any GPU work) and builds the pipelines (cached
   * per device). `square` defaults to false, `scale` to 1, `outIndex` to 0.
   */
  static async create(
    device: GPUDevice,
    shape: { length: number; square?: boolean; scale?: number; outIndex?: number },
  ): Promise<SumPlan> {
    checkIsDevice(device);
    if (typeof shape !== "object" || shape === null) {
      throw new TypeError(`shape must be an object { length, … }, got ${String(shape)}`);
    }
    _checkCount("shape.length", shape.length);
    const square = shape.square ?? false;
    if (typeof square !== "boolean") {
      throw new TypeError(`shape.square must be a boolean, got ${String(square)}`);
    }
    const scale = shape.scale ?? 1;
    if (typeof scale !== "number" || !Number.isFinite(scale)) {
      throw new RangeError(`shape.scale must be a finite number, got ${String(scale)}`);
    }
    const outIndex = shape.outIndex ?? 0;
    _checkCount("shape.outIndex", outIndex, 0);
    const { length } = shape;
    if (length * 4 > device.limits.maxBufferSize) {
      throw new RangeError(
        `shape.length = ${length} needs ${length * 4} bytes, more than the device's ` +
          `maxBufferSize = ${device.limits.maxBufferSize}`,
      );
    }
    // Segments of at most one storage binding, starting at aligned offsets.
    const align = Math.max(1, device.limits.minStorageBufferOffsetAlignment / 4);
    const most = Math.floor(maxBindingBytes(device) / 4 / align) * align;
    const segments: _SumSegment[] = [];
    for (let start = 0; start < length; start += most) {
      const n = Math.min(most, length - start);
      const groups = Math.min(_SUM_GROUPS, Math.ceil(n / _WG));
      segments.push({ start, length: n, groups });
      _checkLoops("SumPlan's first pass", Math.ceil(n / (groups * _WG)) + 1 + Math.log2(_WG));
    }
    const partials = segments.reduce((n, s) => n + s.groups, 0);
    _checkLoops("SumPlan's second pass", Math.ceil(partials / _WG) + 1 + Math.log2(_WG));
    _assertDeviceAlive(device);
    const pipelines = await Promise.all([
      _pipeline(device, "reduce.sum.partials", _SUM_PARTIALS_WGSL),
      _pipeline(device, "reduce.sum.finish", _SUM_FINISH_WGSL),
    ]);
    return new SumPlan(device, { length, square, scale, outIndex }, segments, pipelines);
  }

  /**
   * Records the sum: reads x (`[length]`), overwrites `out[outIndex]` (out
   * must hold `outIndex + 1` values). x and out may be the same buffer.
   */
  encode(encoder: GPUCommandEncoder, b: { x: GPUBuffer; out: GPUBuffer }): void {
    checkBufferSize("buffers.x", b?.x, this.shape.length * 4);
    checkBufferSize("buffers.out", b.out, (this.shape.outIndex + 1) * 4);
    const params = (slot: number): _Binding => ({
      buffer: this.#params,
      offset: slot * _SLOT,
      size: 32,
    });
    const first = this.#segments.map((s, i) => ({
      bindings: [
        params(i),
        { buffer: b.x, offset: s.start * 4, size: s.length * 4 },
        { buffer: this.#scratch },
      ],
      groups: [s.groups, 1] as [number, number],
    }));
    _pass(this.device, encoder, this.#first, first);
    _pass(this.device, encoder, this.#finish, [{
      bindings: [
        params(this.#segments.length),
        { buffer: this.#scratch },
        { buffer: b.out, size: (this.shape.outIndex + 1) * 4 },
      ],
      groups: [1, 1],
    }]);
  }

  /** Frees the plan's uniform and scratch buffers; the cached pipelines stay. */
  destroy(): void {
    this.#params.destroy();
    this.#scratch.destroy();
  }
}

/** The column sums of a `[rows, width]` matrix: `out[c] = Σ_r x[r, c]`. */
export class ColumnSumPlan {
  /** The device the plan runs on. */
  readonly device: GPUDevice;
  /** The shape the plan was made for. */
  readonly shape: Readonly<RowsShape>;
  readonly #params: GPUBuffer;
  readonly #parts: number;
  readonly #colBlocks: number;
  readonly #scratch: GPUBuffer | undefined;
  readonly #first: GPUComputePipeline;
  readonly #finish: GPUComputePipeline;

  private constructor(
    device: GPUDevice,
    shape: RowsShape,
    layout: { tc: number; chunk: number; parts: number; colBlocks: number },
    pipelines: [GPUComputePipeline, GPUComputePipeline],
  ) {
    this.device = device;
    this.shape = Object.freeze({ rows: shape.rows, width: shape.width });
    [this.#first, this.#finish] = pipelines;
    this.#parts = layout.parts;
    this.#colBlocks = layout.colBlocks;
    const slot = new Uint32Array([
      shape.rows,
      shape.width,
      layout.tc,
      layout.chunk,
      layout.parts,
      layout.colBlocks,
      0,
      0,
    ]);
    this.#params = _uniform(device, "reduce.column_sum.params", [slot.buffer]);
    if (layout.parts > 1) {
      this.#scratch = device.createBuffer({
        label: "reduce.column_sum.scratch",
        size: layout.parts * shape.width * 4,
        usage: GPUBufferUsage.STORAGE,
      });
    }
  }

  /** Checks the shape (before any GPU work) and builds the pipelines (cached per device). */
  static async create(device: GPUDevice, shape: RowsShape): Promise<ColumnSumPlan> {
    checkIsDevice(device);
    _checkRows(shape);
    const { rows, width } = shape;
    checkBindingFits(device, "column sum: x", rows * width * 4);
    let tc = 1;
    while (tc < width && tc < 64) tc *= 2;
    const lanes = _WG / tc;
    const chunk = lanes * _ROWS_PER_LANE;
    const parts = Math.ceil(rows / chunk);
    const colBlocks = Math.ceil(width / tc);
    _checkLoops("ColumnSumPlan's first pass", _ROWS_PER_LANE + 1 + Math.log2(lanes));
    _checkLoops("ColumnSumPlan's second pass (rows)", parts + 1);
    if (parts > 1 && parts * width * 4 > maxBindingBytes(device)) {
      throw new RangeError(`column sum: the partial sums would not fit in one storage binding`);
    }
    _assertDeviceAlive(device);
    const pipelines = await Promise.all([
      _pipeline(device, "reduce.column_sum.partials", _COLUMN_PARTIALS_WGSL),
      _pipeline(device, "reduce.column_sum.finish", _COLUMN_FINISH_WGSL),
    ]);
    return new ColumnSumPlan(device, shape, { tc, chunk, parts, colBlocks }, pipelines);
  }

  /** Records the column sums: reads x (`[rows, width]`), overwrites `out[0 … width)`. */
  encode(encoder: GPUCommandEncoder, b: { x: GPUBuffer; out: GPUBuffer }): void {
    const { rows, width } = this.shape;
    checkBufferSize("buffers.x", b?.x, rows * width * 4);
    checkBufferSize("buffers.out", b.out, width * 4);
    if (b.x === b.out) {
      throw new RangeError("buffers.x and buffers.out must be different buffers");
    }
    const maxGroups = this.device.limits.maxComputeWorkgroupsPerDimension;
    const params = { buffer: this.#params, offset: 0, size: 32 };
    const dst = this.#scratch ? { buffer: this.#scratch } : { buffer: b.out, size: width * 4 };
    _pass(this.device, encoder, this.#first, [{
      bindings: [params, { buffer: b.x, size: rows * width * 4 }, dst],
      groups: grid2d(this.#colBlocks * this.#parts, maxGroups),
    }]);
    if (this.#scratch) {
      _pass(this.device, encoder, this.#finish, [{
        bindings: [params, { buffer: this.#scratch }, { buffer: b.out, size: width * 4 }],
        groups: grid2d(Math.ceil(width / _WG), maxGroups),
      }]);
    }
  }

  /** Frees the plan's uniform and scratch buffers; the cached pipelines stay. */
  destroy(): void {
    this.#params.destroy();
    this.#scratch?.destroy();
  }
}
