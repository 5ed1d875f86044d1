/**
 * Layer normalisation over the last dimension, forward and backward: the
 * normalisation the training module's pre-LayerNorm blocks use.
 *
 * For each row x of width C: `μ = mean(x)`, `σ² = mean((x − μ)²)`,
 * `rstd = 1/sqrt(σ² + eps)`, `x̂ = (x − μ)·rstd`, `y = x̂·γ + β`. The forward
 * pass keeps μ and rstd per row for the backward pass:
 *
 * - `dx = rstd · (g − mean(g) − x̂ · mean(g·x̂))` with `g = dy·γ`;
 * - `dγ = Σ_rows dy·x̂`, `dβ = Σ_rows dy`.
 *
 * WGSL has no float atomics, so the backward pass is two kernels: one
 * workgroup per row for dx (tree reductions for the two means), and one
 * workgroup per column for dγ and dβ (its invocations stride over the rows,
 * then reduce). No invocation loops more than about `max(rows, width) / 64`
 * times: Mesa's llvmpipe stops an invocation after 65535 loop iterations in
 * all, so a loop over every row in one invocation would silently drop rows.
 *
 * @module
 */

import { cachedBindGroup } from "./bind_groups.ts";
import { _assertDeviceAlive, checkBufferSize, getDevice, getPipeline } from "./device.ts";
import { grid2d } from "./attention_unfused.ts";
import { REDUCE_WGSL } from "./wgsl.ts";

/** Sizes of a layer norm: `rows` independent rows of `width` features, row-major. */
export interface LayerNormShape {
  rows: number;
  width: number;
}

/** The default `eps` added to the variance. */
export const LAYERNORM_EPS = 1e-5;

/** Invocations per workgroup of the row kernels and the column kernel. */
const _WG = 64;

function _checkShape(shape: LayerNormShape, eps: number): void {
  for (const name of ["rows", "width"] as const) {
    const value = shape?.[name];
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
      throw new RangeError(`shape.${name} must be a positive integer, got ${String(value)}`);
    }
  }
  if (typeof eps !== "number" || !(eps > 0) || !Number.isFinite(eps)) {
    throw new RangeError(`eps must be a positive finite number, got ${String(eps)}`);
  }
}

function _checkArray(name: string, data: unknown, length: number): void {
  if (!(data instanceof Float32Array)) {
    throw new TypeError(`${name} must be a Float32Array of ${length} elements`);
  }
  if (data.length !== length) {
    throw new RangeError(`${name}.length must be ${length}, got ${data.length}`);
  }
}

/** Mean and reciprocal standard deviation of the row `x[o … o + C)`, in f64. */
function _rowStats(x: Float32Array, o: number, C: number, eps: number): { mu: number; rs: number } {
  let mu = 0;
  for (let c = 0; c < C; c++) mu += x[o + c];
  mu /= C;
  let v = 0;
  for (let c = 0; c < C; c++) v += (x[o + c] - mu) ** 2;
  return { mu, rs: 1 / Math.sqrt(v / C + eps) };
}

/** Forward pass of {@linkcode layerNormReference}: the output and the per-row statistics. */
export interface LayerNormForward {
  /** `[rows, width]` output. */
  y: Float32Array;
  /** `[rows]` row means. */
  mean: Float32Array;
  /** `[rows]` reciprocal standard deviations `1/sqrt(σ² + eps)`. */
  rstd: Float32Array;
}

/** Layer norm in plain TypeScript with f64 sums: the ground truth for the kernels. */
export function layerNormReference(
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  shape: LayerNormShape,
  eps = LAYERNORM_EPS,
): LayerNormForward {
  _checkShape(shape, eps);
  const { rows: N, width: C } = shape;
  _checkArray("x", x, N * C);
  _checkArray("gamma", gamma, C);
  _checkArray("beta", beta, C);
  const y = new Float32Array(N * C);
  const mean = new Float32Array(N);
  const rstd = new Float32Array(N);
  for (let r = 0; r < N; r++) {
    const o = r * C;
    const { mu, rs } = _rowStats(x, o, C, eps);
    for (let c = 0; c < C; c++) y[o + c] = (x[o + c] - mu) * rs * gamma[c] + beta[c];
    mean[r] = mu;
    rstd[r] = rs;
  }
  return { y, mean, rstd };
}

/** Gradients of a layer norm. */
export interface LayerNormGradients {
  /** `[rows, width]` gradient with respect to x. */
  dx: Float32Array;
  /** `[width]` gradient with respect to γ. */
  dgamma: Float32Array;
  /** `[width]` gradient with respect to β. */
  dbeta: Float32Array;
}

/** Backward pass of layer norm in plain TypeScript with f64 sums. */
export function layerNormBackwardReference(
  x: Float32Array,
  gamma: Float32Array,
  dy: Float32Array,
  shape: LayerNormShape,
  eps = LAYERNORM_EPS,
): LayerNormGradients {
  _checkShape(shape, eps);
  const { rows: N, width: C } = shape;
  _checkArray("x", x, N * C);
  _checkArray("gamma", gamma, C);
  _checkArray("dy", dy, N * C);
  const dx = new Float32Array(N * C);
  const dgamma = new Float64Array(C);
  const dbeta = new Float64Array(C);
  const xhat = new Float64Array(C);
  for (let r = 0; r < N; r++) {
    const o = r * C;
    const { mu, rs } = _rowStats(x, o, C, eps);
    let meanG = 0;
    let meanGX = 0;
    for (let c = 0; c < C; c++) {
      xhat[c] = (x[o + c] - mu) * rs;
      const g = dy[o + c] * gamma[c];
      meanG += g;
      meanGX += g * xhat[c];
      dgamma[c] += dy[o + c] * xhat[c];
      dbeta[c] += dy[o + c];
    }
    meanG /= C;
    meanGX /= C;
    for (let c = 0; c < C; c++) {
      dx[o + c] = rs * (dy[o + c] * gamma[c] - meanG - xhat[c] * meanGX);
    }
  }
  return { dx, dgamma: Float32Array.from(dgamma), dbeta: Float32Array.from(dbeta) };
}

const _HEADER = `struct Params {
  rows: u32,   // N
  width: u32,  // C
  eps: f32,
  _pad: u32,
}
override WG: u32 = ${_WG}u;
@group(0) @binding(0) var<uniform> params: Params;
`;

/** The forward kernels' bindings (both variants). */
const _FORWARD_BINDINGS = `@group(0) @binding(1) var<storage, read> x: array<f32>;       // [N, C]
@group(0) @binding(2) var<storage, read> gamma: array<f32>;   // [C]
@group(0) @binding(3) var<storage, read> beta: array<f32>;    // [C]
@group(0) @binding(4) var<storage, read_write> y: array<f32>;     // [N, C]
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;  // [N]
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;  // [N]
`;

/** The dx kernels' bindings (both variants). */
const _DX_BINDINGS = `@group(0) @binding(1) var<storage, read> x: array<f32>;      // [N, C]
@group(0) @binding(2) var<storage, read> gamma: array<f32>;  // [C]
@group(0) @binding(3) var<storage, read> dy: array<f32>;     // [N, C]
@group(0) @binding(4) var<storage, read> mean: array<f32>;   // [N]
@group(0) @binding(5) var<storage, read> rstd: array<f32>;   // [N]
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;  // [N, C]
`;

/** WGSL of the forward kernel: one workgroup per row. Bindings: 0 params, 1 x, 2 γ, 3 β, 4 y, 5 mean, 6 rstd. */
export const LAYERNORM_FORWARD_WGSL = `// layernorm.forward
${_HEADER}
${_FORWARD_BINDINGS}
${REDUCE_WGSL}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let row = wid.y * groups.x + wid.x;
  if (row >= params.rows) { return; }  // uniform per workgroup
  let C = params.width;
  let o = row * C;
  var sum = 0.0;
  for (var c = lid; c < C; c += WG) { sum += x[o + c]; }
  partial[lid] = sum;
  let mu = reduce(lid, false) / f32(C);
  // Two passes: the variance from (x − μ)², not E[x²] − μ², which cancels badly.
  var sq = 0.0;
  for (var c = lid; c < C; c += WG) { let d = x[o + c] - mu; sq += d * d; }
  partial[lid] = sq;
  let rs = inverseSqrt(reduce(lid, false) / f32(C) + params.eps);
  for (var c = lid; c < C; c += WG) { y[o + c] = (x[o + c] - mu) * rs * gamma[c] + beta[c]; }
  if (lid == 0u) {
    mean[row] = mu;
    rstd[row] = rs;
  }
}
`;

/** WGSL of the dx kernel: one workgroup per row. Bindings: 0 params, 1 x, 2 γ, 3 dy, 4 mean, 5 rstd, 6 dx. */
export const LAYERNORM_DX_WGSL = `// layernorm.backward.dx
${_HEADER}
${_DX_BINDINGS}
${REDUCE_WGSL}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let row = wid.y * groups.x + wid.x;
  if (row >= params.rows) { return; }  // uniform per workgroup
  let C = params.width;
  let o = row * C;
  let mu = mean[row];
  let rs = rstd[row];
  var sumG = 0.0;
  var sumGX = 0.0;
  for (var c = lid; c < C; c += WG) {
    let g = dy[o + c] * gamma[c];
    sumG += g;
    sumGX += g * (x[o + c] - mu) * rs;
  }
  partial[lid] = sumG;
  let meanG = reduce(lid, false) / f32(C);
  partial[lid] = sumGX;
  let meanGX = reduce(lid, false) / f32(C);
  for (var c = lid; c < C; c += WG) {
    let xhat = (x[o + c] - mu) * rs;
    dx[o + c] = rs * (dy[o + c] * gamma[c] - meanG - xhat * meanGX);
  }
}
`;

/**
 * WGSL of the dγ/dβ kernel: one workgroup per column, its invocations
 * striding over the rows, then two tree reductions. Bindings: 0 params, 1 x,
 * 2 dy, 3 mean, 4 rstd, 5 dγ, 6 dβ.
 */
export const LAYERNORM_DPARAMS_WGSL = `// layernorm.backward.dparams
${_HEADER}
@group(0) @binding(1) var<storage, read> x: array<f32>;      // [N, C]
@group(0) @binding(2) var<storage, read> dy: array<f32>;     // [N, C]
@group(0) @binding(3) var<storage, read> mean: array<f32>;   // [N]
@group(0) @binding(4) var<storage, read> rstd: array<f32>;   // [N]
@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;  // [C]
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;   // [C]

${REDUCE_WGSL}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let c = wid.y * groups.x + wid.x;
  let C = params.width;
  if (c >= C) { return; }  // uniform per workgroup
  var dg = 0.0;
  var db = 0.0;
  for (var r = lid; r < params.rows; r += WG) {
    let d = dy[r * C + c];
    dg += d * (x[r * C + c] - mean[r]) * rstd[r];
    db += d;
  }
  partial[lid] = dg;
  dg = reduce(lid, false);
  partial[lid] = db;
  db = reduce(lid, false);
  if (lid == 0u) {
    dgamma[c] = dg;
    dbeta[c] = db;
  }
}
`;

/**
 * WGSL of the forward kernel for narrow rows: one invocation per row, no
 * workgroup memory and no barriers. On a CPU adapter a barrier costs more
 * than a short row's whole arithmetic, so rows of up to
 * {@linkcode LAYERNORM_LANE_WIDTH} features run here by default. Bindings as
 * {@linkcode LAYERNORM_FORWARD_WGSL}.
 */
export const LAYERNORM_FORWARD_LANE_WGSL = `// layernorm.forward.lane
${_HEADER}
${_FORWARD_BINDINGS}
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let row = (wid.y * groups.x + wid.x) * WG + lid;
  if (row >= params.rows) { return; }
  let C = params.width;
  let o = row * C;
  var sum = 0.0;
  for (var c = 0u; c < C; c++) { sum += x[o + c]; }
  let mu = sum / f32(C);
  var sq = 0.0;
  for (var c = 0u; c < C; c++) { let d = x[o + c] - mu; sq += d * d; }
  let rs = inverseSqrt(sq / f32(C) + params.eps);
  for (var c = 0u; c < C; c++) { y[o + c] = (x[o + c] - mu) * rs * gamma[c] + beta[c]; }
  mean[row] = mu;
  rstd[row] = rs;
}
`;

/** WGSL of the dx kernel for narrow rows: one invocation per row. Bindings as {@linkcode LAYERNORM_DX_WGSL}. */
export const LAYERNORM_DX_LANE_WGSL = `// layernorm.backward.dx.lane
${_HEADER}
${_DX_BINDINGS}
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let row = (wid.y * groups.x + wid.x) * WG + lid;
  if (row >= params.rows) { return; }
  let C = params.width;
  let o = row * C;
  let mu = mean[row];
  let rs = rstd[row];
  var sumG = 0.0;
  var sumGX = 0.0;
  for (var c = 0u; c < C; c++) {
    let g = dy[o + c] * gamma[c];
    sumG += g;
    sumGX += g * (x[o + c] - mu) * rs;
  }
  let meanG = sumG / f32(C);
  let meanGX = sumGX / f32(C);
  for (var c = 0u; c < C; c++) {
    let xhat = (x[o + c] - mu) * rs;
    dx[o + c] = rs * (dy[o + c] * gamma[c] - meanG - xhat * meanGX);
  }
}
`;

/** Rows up to this wide use the one-invocation-per-row kernels by default. */
export const LAYERNORM_LANE_WIDTH = 128;

/** The widest row the one-invocation-per-row kernels take (llvmpipe's loop budget). */
const _LANE_MAX_WIDTH = 16384;

/** Which kernels a plan uses for the row-wise passes (forward and dx). */
export type LayerNormKernel = "workgroup" | "lane";

/** GPU buffers of a layer-norm forward pass (f32). */
export interface LayerNormBuffers {
  /** `[rows, width]`, read. */
  x: GPUBuffer;
  /** `[width]`, read. */
  gamma: GPUBuffer;
  /** `[width]`, read. */
  beta: GPUBuffer;
  /** `[rows, width]`, written. */
  y: GPUBuffer;
  /** `[rows]`, written: kept for the backward pass. */
  mean: GPUBuffer;
  /** `[rows]`, written: kept for the backward pass. */
  rstd: GPUBuffer;
}

/** GPU buffers of a layer-norm backward pass (f32). */
export interface LayerNormBackwardBuffers {
  /** `[rows, width]`, read: the forward input. */
  x: GPUBuffer;
  /** `[width]`, read. */
  gamma: GPUBuffer;
  /** `[rows, width]`, read: gradient with respect to y. */
  dy: GPUBuffer;
  /** `[rows]`, read: what the forward pass wrote. */
  mean: GPUBuffer;
  /** `[rows]`, read: what the forward pass wrote. */
  rstd: GPUBuffer;
  /** `[rows, width]`, written. */
  dx: GPUBuffer;
  /** `[width]`, written (overwritten, not accumulated into). */
  dgamma: GPUBuffer;
  /** `[width]`, written (overwritten, not accumulated into). */
  dbeta: GPUBuffer;
}

/** The three pipelines of a layer norm. */
interface _Pipelines {
  forward: GPUComputePipeline;
  dx: GPUComputePipeline;
  dparams: GPUComputePipeline;
}

/**
 * A layer norm ready to encode: pipelines built (cached per device), the
 * uniform written. Encode it into your own command encoder as often as you
 * like; call {@linkcode LayerNormPlan.destroy} when done.
 */
export class LayerNormPlan {
  /** The device the plan runs on. */
  readonly device: GPUDevice;
  /** The shape the plan was made for. */
  readonly shape: Readonly<LayerNormShape>;
  /** The `eps` added to the variance. */
  readonly eps: number;
  /** The row-wise kernels in use: a workgroup per row, or an invocation per row. */
  readonly kernel: LayerNormKernel;
  readonly #params: GPUBuffer;
  readonly #pipelines: _Pipelines;

  private constructor(
    device: GPUDevice,
    shape: LayerNormShape,
    eps: number,
    kernel: LayerNormKernel,
    pipelines: _Pipelines,
  ) {
    this.device = device;
    this.shape = Object.freeze({ ...shape });
    this.eps = eps;
    this.kernel = kernel;
    this.#pipelines = pipelines;
    this.#params = device.createBuffer({
      label: "layernorm.params",
      size: 16,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    const params = new ArrayBuffer(16);
    new Uint32Array(params, 0, 2).set([shape.rows, shape.width]);
    new Float32Array(params, 8, 1)[0] = eps;
    device.queue.writeBuffer(this.#params, 0, params);
  }

  /**
   * Checks the shape (before any GPU work) and builds the pipelines. `kernel`
   * picks the row-wise kernels: by default an invocation per row for rows of
   * up to {@linkcode LAYERNORM_LANE_WIDTH} features, a workgroup per row above.
   */
  static async create(
    shape: LayerNormShape,
    options: { eps?: number; device?: GPUDevice; kernel?: LayerNormKernel } = {},
  ): Promise<LayerNormPlan> {
    const eps = options.eps ?? LAYERNORM_EPS;
    _checkShape(shape, eps);
    const kernel = options.kernel ?? (shape.width <= LAYERNORM_LANE_WIDTH ? "lane" : "workgroup");
    if (kernel !== "lane" && kernel !== "workgroup") {
      throw new RangeError(`kernel must be "lane" or "workgroup", got ${String(kernel)}`);
    }
    if (kernel === "lane" && shape.width > _LANE_MAX_WIDTH) {
      throw new RangeError(
        `the "lane" kernels take rows of at most ${_LANE_MAX_WIDTH} features, got ${shape.width}`,
      );
    }
    const device = options.device ?? await getDevice();
    // Each invocation loops over width/WG columns (forward, dx) or rows/WG rows (dγ, dβ),
    // three loops at most: within llvmpipe's 65535 iterations per invocation up to here.
    const most = Math.floor(65535 / 4) * _WG;
    for (const name of ["rows", "width"] as const) {
      if (shape[name] > most) {
        throw new RangeError(`shape.${name} must be at most ${most}, got ${shape[name]}`);
      }
    }
    _assertDeviceAlive(device);
    const pipeline = (label: string, code: string) =>
      getPipeline(device, { key: label, label, code: () => code });
    const lane = kernel === "lane";
    const [forward, dx, dparams] = await Promise.all([
      lane
        ? pipeline("layernorm.forward.lane", LAYERNORM_FORWARD_LANE_WGSL)
        : pipeline("layernorm.forward", LAYERNORM_FORWARD_WGSL),
      lane
        ? pipeline("layernorm.backward.dx.lane", LAYERNORM_DX_LANE_WGSL)
        : pipeline("layernorm.backward.dx", LAYERNORM_DX_WGSL),
      pipeline("layernorm.backward.dparams", LAYERNORM_DPARAMS_WGSL),
    ]);
    return new LayerNormPlan(device, shape, eps, kernel, { forward, dx, dparams });
  }

  #sizes(): { rowBytes: number; tensorBytes: number; paramBytes: number } {
    const { rows, width } = this.shape;
    return { rowBytes: rows * 4, tensorBytes: rows * width * 4, paramBytes: width * 4 };
  }

  #pass(
    encoder: GPUCommandEncoder,
    pipeline: GPUComputePipeline,
    buffers: GPUBuffer[],
    groups: [number, number],
  ): void {
    const group = cachedBindGroup(this.device, pipeline, [this.#params, ...buffers]);
    const pass = encoder.beginComputePass({ label: pipeline.label });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(...groups);
    pass.end();
  }

  /** Workgroups of the row-wise passes: one per row, or one per WG rows. */
  #rowGroups(): [number, number] {
    const count = this.kernel === "lane" ? Math.ceil(this.shape.rows / _WG) : this.shape.rows;
    return grid2d(count, this.device.limits.maxComputeWorkgroupsPerDimension);
  }

  /** Records the forward pass: reads x, γ, β; writes y, mean, rstd. */
  encodeForward(encoder: GPUCommandEncoder, b: LayerNormBuffers): void {
    const { rowBytes, tensorBytes, paramBytes } = this.#sizes();
    const sizes = { x: tensorBytes, gamma: paramBytes, beta: paramBytes, y: tensorBytes };
    for (const [name, bytes] of Object.entries(sizes)) {
      checkBufferSize(`buffers.${name}`, b[name as keyof LayerNormBuffers], bytes);
    }
    checkBufferSize("buffers.mean", b.mean, rowBytes);
    checkBufferSize("buffers.rstd", b.rstd, rowBytes);
    const groups = this.#rowGroups();
    this.#pass(
      encoder,
      this.#pipelines.forward,
      [b.x, b.gamma, b.beta, b.y, b.mean, b.rstd],
      groups,
    );
  }

  /** Records the backward pass: reads x, γ, dy, mean, rstd; writes dx, dγ, dβ. */
  encodeBackward(encoder: GPUCommandEncoder, b: LayerNormBackwardBuffers): void {
    const { rowBytes, tensorBytes, paramBytes } = this.#sizes();
    const sizes = {
      x: tensorBytes,
      gamma: paramBytes,
      dy: tensorBytes,
      mean: rowBytes,
      rstd: rowBytes,
      dx: tensorBytes,
      dgamma: paramBytes,
      dbeta: paramBytes,
    };
    for (const [name, bytes] of Object.entries(sizes)) {
      checkBufferSize(`buffers.${name}`, b[name as keyof LayerNormBackwardBuffers], bytes);
    }
    const rows = this.#rowGroups();
    this.#pass(encoder, this.#pipelines.dx, [b.x, b.gamma, b.dy, b.mean, b.rstd, b.dx], rows);
    const columns = grid2d(this.shape.width, this.device.limits.maxComputeWorkgroupsPerDimension);
    this.#pass(
      encoder,
      this.#pipelines.dparams,
      [b.x, b.dy, b.mean, b.rstd, b.dgamma, b.dbeta],
      columns,
    );
  }

  /** Frees the plan's uniform buffer; the cached pipelines stay. */
  destroy(): void {
    this.#params.destroy();
  }
}
