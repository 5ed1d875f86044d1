/**
 * Batched f32 matrix multiply: `C[b] = alpha · op(A[b]) · op(B[b])`, with
 * `op(X) = Xᵀ` when the matching transpose flag is set. It is the building
 * block of the unfused attention baseline (scores = Q·Kᵀ, out = P·V) and of
 * the training module's dense layers.
 *
 * In llm.c order: a plain-TS reference, the WGSL generator (a tiled,
 * register-blocked kernel), then the launcher.
 *
 * @module
 */

import { cachedBindGroup } from "./bind_groups.ts";
import {
  _assertDeviceAlive,
  checkBufferSize,
  createStorageBuffer,
  getDevice,
  getPipeline,
  maxBindingBytes,
  readFloat32,
  uploadBuffer,
} from "./device.ts";

/**
 * The shape of a batched matrix product `C[b] = alpha · op(A[b]) · op(B[b])`.
 * All matrices are row-major and contiguous per batch entry: A is
 * `[batch, m, k]` (or `[batch, k, m]` with `transA`), B is `[batch, k, n]`
 * (or `[batch, n, k]` with `transB`), C is `[batch, m, n]`.
 */
export interface MatmulShape {
  /** Number of independent products. */
  batch: number;
  /** Rows of `op(A)` and of C. */
  m: number;
  /** Columns of `op(B)` and of C. */
  n: number;
  /** Columns of `op(A)`, rows of `op(B)`: the summed dimension. */
  k: number;
  /** A is stored `k×m` and used transposed. Default false. */
  transA?: boolean;
  /** B is stored `n×k` and used transposed (attention scores: `Q·Kᵀ`). Default false. */
  transB?: boolean;
}

// ---------------------------------------------------------------------------
// Reference

/**
 * Plain-TS matrix product with f64 accumulation, the ground truth the GPU
 * kernel is tested against. Throws a `RangeError` for a bad shape or arrays
 * whose lengths do not match it.
 */
export function matmulReference(
  a: Float32Array,
  b: Float32Array,
  shape: MatmulShape,
  alpha = 1,
): Float32Array {
  _validate(shape, alpha, a, b);
  const { batch: B, m: M, n: N, k: K } = shape;
  const transA = shape.transA ?? false;
  const transB = shape.transB ?? false;
  const c = new Float32Array(B * M * N); // [B,M,N]
  const row = new Float64Array(N);
  for (let bi = 0; bi < B; bi++) {
    const aOff = bi * M * K; // A: [B,M,K] or [B,K,M]
    const bOff = bi * K * N; // B: [B,K,N] or [B,N,K]
    for (let i = 0; i < M; i++) {
      row.fill(0);
      for (let p = 0; p < K; p++) {
        const av = a[aOff + (transA ? p * M + i : i * K + p)];
        if (transB) {
          for (let j = 0; j < N; j++) row[j] += av * b[bOff + j * K + p];
        } else {
          const bRow = bOff + p * N;
          for (let j = 0; j < N; j++) row[j] += av * b[bRow + j];
        }
      }
      const cRow = (bi * M + i) * N;
      for (let j = 0; j < N; j++) c[cRow + j] = alpha * row[j];
    }
  }
  return c;
}

// ---------------------------------------------------------------------------
// WGSL

/** Compile-time choices of {@linkcode matmulWgsl}. */
export interface MatmulWgslConfig {
  /** A is stored `[batch, k, m]`. */
  transA: boolean;
  /** B is stored `[batch, n, k]`. */
  transB: boolean;
  /** Read A as `vec4`s: A's contiguous dimension (k, or m with `transA`) must be a multiple of 4. */
  vec4A?: boolean;
  /** Read B as `vec4`s: B's contiguous dimension (n, or k with `transB`) must be a multiple of 4. */
  vec4B?: boolean;
  /** Write C as `vec4`s: n must be a multiple of 4. */
  vec4C?: boolean;
  /** Rows of C each invocation keeps in registers, a multiple of 4. Default 16. */
  rowsPerThread?: number;
  /** Columns of C each invocation keeps in registers, a multiple of 4. Default 8. */
  colsPerThread?: number;
}

/**
 * The tuning, chosen by measuring the attention shapes (batch 4; m = n = 1024,
 * k = 64 and m = 1024, n = 64, k = 1024) on Mesa's lavapipe and llvmpipe: each
 * invocation keeps a 16×8 block of C in registers, an 8×8 workgroup covers a
 * 128×64 tile of C, and k advances 8 at a time, so the staged tiles take
 * (128 + 64)·8·4 B = 6 KiB of workgroup memory (WebGPU guarantees 16 KiB).
 * `TILE_K` = 16 runs as fast on Vulkan but compiles 3–4× slower on the OpenGL
 * backend, whose zero-initialisation of workgroup memory grows with its size.
 */
const _RM = 16;
const _RN = 8;
const _CONSTANTS = { WG_X: 8, WG_Y: 8, TILE_K: 8 } as const;
const _TILE_M = _CONSTANTS.WG_Y * _RM;
const _TILE_N = _CONSTANTS.WG_X * _RN;

/**
 * WGSL for `C[b] = alpha · op(A[b]) · op(B[b])`, entry point `main`.
 *
 * Bindings (group 0): 0 = A and 1 = B (read-only storage), 2 = C (storage),
 * 3 = uniform `{ batch, m, n, k: u32, alpha: f32 }`. Dispatch
 * `(ceil(n / TILE_N), ceil(m / TILE_M), batch)` workgroups, where
 * `TILE_M = WG_Y · rowsPerThread` and `TILE_N = WG_X · colsPerThread`.
 *
 * Each invocation accumulates a `rowsPerThread × colsPerThread` block of C in
 * registers. The workgroup walks k in steps of `TILE_K`, staging the op(A) and
 * op(B) tiles in workgroup memory in the layout they have in global memory, so
 * staging is a straight `vec4` copy and each `vec4` read from a tile feeds
 * several multiply-adds. Out-of-range elements are staged as zeros, so any
 * sizes work. `WG_X`, `WG_Y` and `TILE_K` (a multiple of 4) are `override`
 * constants; the transposes, `vec4` access and register block are compiled in.
 * Workgroup memory: `(TILE_M + TILE_N) · TILE_K · 4` bytes.
 */
export function matmulWgsl(config: MatmulWgslConfig): string {
  const { transA, transB } = config;
  const RM = config.rowsPerThread ?? _RM;
  const RN = config.colsPerThread ?? _RN;
  if (RM % 4 || RN % 4 || RM < 4 || RN < 4) {
    throw new RangeError(
      `matmulWgsl: rowsPerThread and colsPerThread must be positive multiples of 4, got ${RM}, ${RN}`,
    );
  }
  const range = (n: number) => [...Array(n).keys()];

  // A tile is an array of vec4s, [R, C/4], mirroring the stored matrix: element
  // l holds stored (r0 + l / (C/4), c0 + 4·(l % (C/4)) .. +3).
  const stage = (tile: string, len: string, load: string, r0: string, c0: string, c4: string) => `
    for (var s = 0u; s < (${len} + THREADS - 1u) / THREADS; s++) {
      let l = li + s * THREADS;
      if (l < ${len}) { ${tile}[l] = ${load}(${r0} + l / (${c4}), ${c0} + 4u * (l % (${c4}))); }
    }`;
  const stageA = transA
    ? stage("tileA", "TILE_A_LEN", "_loadA", "k0", "row0", "TILE_M / 4u") // [TILE_K, TILE_M/4]
    : stage("tileA", "TILE_A_LEN", "_loadA", "row0", "k0", "TILE_K / 4u"); // [TILE_M, TILE_K/4]
  const stageB = transB
    ? stage("tileB", "TILE_B_LEN", "_loadB", "col0", "k0", "TILE_K / 4u") // [TILE_N, TILE_K/4]
    : stage("tileB", "TILE_B_LEN", "_loadB", "k0", "col0", "TILE_N / 4u"); // [TILE_K, TILE_N/4]

  // One step of the inner loop covers k .. k+3 (t = 0..3): RM + RN vec4 reads
  // from the tiles, then 4·RM·RN multiply-adds.
  const reads: string[] = [];
  if (transA) { // a{t}_{g} = op(A)[rows 4g .. 4g+3 of this invocation, kk + t]
    for (const t of range(4)) {
      for (const g of range(RM / 4)) {
        reads.push(
          `let a${t}_${g} = tileA[(kk + ${t}u) * (TILE_M / 4u) + lid.y * ${RM / 4}u + ${g}u];`,
        );
      }
    }
  } else { // a{i} = op(A)[row i of this invocation, kk .. kk+3]
    for (const i of range(RM)) {
      reads.push(`let a${i} = tileA[(lid.y * ${RM}u + ${i}u) * (TILE_K / 4u) + kk / 4u];`);
    }
  }
  if (transB) { // b{j} = op(B)[kk .. kk+3, column j of this invocation]
    for (const j of range(RN)) {
      reads.push(`let b${j} = tileB[(lid.x * ${RN}u + ${j}u) * (TILE_K / 4u) + kk / 4u];`);
    }
  } else { // b{t}_{g} = op(B)[kk + t, columns 4g .. 4g+3 of this invocation]
    for (const t of range(4)) {
      for (const g of range(RN / 4)) {
        reads.push(
          `let b${t}_${g} = tileB[(kk + ${t}u) * (TILE_N / 4u) + lid.x * ${RN / 4}u + ${g}u];`,
        );
      }
    }
  }
  const aAt = (i: number, t: number) => transA ? `a${t}_${i >> 2}[${i & 3}]` : `a${i}[${t}]`;
  const bRow = (g: number, t: number) =>
    transB ? `vec4<f32>(${range(4).map((j) => `b${4 * g + j}[${t}]`).join(", ")})` : `b${t}_${g}`;
  // acc{i}_{g} += Σ_t aAt(i, t) · bRow(g, t), as one nested fma per accumulator.
  const fma = (i: number, g: number) => (acc: string, t: number) =>
    `fma(vec4<f32>(${aAt(i, t)}), ${bRow(g, t)}, ${acc})`;
  const fmas = range(RM).flatMap((i) =>
    range(RN / 4).map((g) => `acc${i}_${g} = ${range(4).reduce(fma(i, g), `acc${i}_${g}`)};`)
  );
  // acc{i}_{g} = C[row i of this invocation, columns 4g .. 4g+3]
  const accs = range(RM).flatMap((i) => range(RN / 4).map((g) => `acc${i}_${g}`));
  const stores = range(RM).flatMap((i) =>
    range(RN / 4).map((g) => `_storeC(r0 + ${i}u, c0 + ${4 * g}u, acc${i}_${g} * p.alpha);`)
  );

  // Stored elements (row, col .. col+3) of a row-major [rows, cols] matrix at
  // element offset `off`, zero outside it.
  const loader = (
    fn: string,
    buf: string,
    off: string,
    rows: string,
    cols: string,
    vec4?: boolean,
  ) =>
    vec4
      ? `fn ${fn}(row: u32, col: u32) -> vec4<f32> {
  if (row < ${rows} && col < ${cols}) { return ${buf}[(${off} + row * ${cols} + col) / 4u]; }
  return vec4<f32>();
}`
      : `fn ${fn}(row: u32, col: u32) -> vec4<f32> {
  var v = vec4<f32>();
  if (row < ${rows}) {
    let i = ${off} + row * ${cols} + col;
${range(4).map((t) => `    if (col + ${t}u < ${cols}) { v[${t}] = ${buf}[i + ${t}u]; }`).join("\n")}
  }
  return v;
}`;
  const storer = config.vec4C
    ? `fn _storeC(row: u32, col: u32, v: vec4<f32>) {
  if (row < p.m && col < p.n) { C[(cOff + row * p.n + col) / 4u] = v; }
}`
    : `fn _storeC(row: u32, col: u32, v: vec4<f32>) {
  if (row < p.m) {
    let i = cOff + row * p.n + col;
${range(4).map((t) => `    if (col + ${t}u < p.n) { C[i + ${t}u] = v[${t}]; }`).join("\n")}
  }
}`;
  const elem = (vec4?: boolean) => vec4 ? "vec4<f32>" : "f32";
  const name = `matmul.${transA ? "t" : "n"}${transB ? "t" : "n"}`;
  const shapeA = transA ? "[B,K,M]" : "[B,M,K]";
  const shapeB = transB ? "[B,N,K]" : "[B,K,N]";
  const shapeTileA = transA ? "[TILE_K, TILE_M/4]" : "[TILE_M, TILE_K/4]";
  const shapeTileB = transB ? "[TILE_N, TILE_K/4]" : "[TILE_K, TILE_N/4]";

  return /* wgsl */ `// ${name}: C[b] = alpha * op(A[b]) * op(B[b])
override WG_X: u32 = ${_CONSTANTS.WG_X};    // invocations along n
override WG_Y: u32 = ${_CONSTANTS.WG_Y};    // invocations along m
override TILE_K: u32 = ${_CONSTANTS.TILE_K}; // k staged per step, a multiple of 4
// Derived, not meant to be set:
override THREADS = WG_X * WG_Y;
override TILE_M = WG_Y * ${RM}u;            // rows of C per workgroup
override TILE_N = WG_X * ${RN}u;            // columns of C per workgroup
override TILE_A_LEN = TILE_M * TILE_K / 4u; // vec4s in the op(A) tile
override TILE_B_LEN = TILE_N * TILE_K / 4u; // vec4s in the op(B) tile

struct Params { batch: u32, m: u32, n: u32, k: u32, alpha: f32 }

@group(0) @binding(0) var<storage, read> A: array<${elem(config.vec4A)}>; // ${shapeA}
@group(0) @binding(1) var<storage, read> B: array<${elem(config.vec4B)}>; // ${shapeB}
@group(0) @binding(2) var<storage, read_write> C: array<${elem(config.vec4C)}>; // [B,M,N]
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> tileA: array<vec4<f32>, TILE_A_LEN>; // ${shapeTileA}
var<workgroup> tileB: array<vec4<f32>, TILE_B_LEN>; // ${shapeTileB}
var<private> aOff: u32; // where this batch entry starts in A, B, C (elements)
var<private> bOff: u32;
var<private> cOff: u32;

${loader("_loadA", "A", "aOff", transA ? "p.k" : "p.m", transA ? "p.m" : "p.k", config.vec4A)}

${loader("_loadB", "B", "bOff", transB ? "p.n" : "p.k", transB ? "p.k" : "p.n", config.vec4B)}

${storer}

@compute @workgroup_size(WG_X, WG_Y)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let row0 = wg.y * TILE_M; // this workgroup's tile of C starts at (row0, col0)
  let col0 = wg.x * TILE_N;
  aOff = wg.z * p.m * p.k;
  bOff = wg.z * p.k * p.n;
  cOff = wg.z * p.m * p.n;

  ${accs.map((acc) => `var ${acc} = vec4<f32>();`).join("\n  ")}

  for (var k0 = 0u; k0 < p.k; k0 += TILE_K) {
    // Stage op(A)[row0 .., k0 ..] and op(B)[k0 .., col0 ..], zero-padded.${stageA}${stageB}
    workgroupBarrier();

    for (var kk = 0u; kk < TILE_K; kk += 4u) {
      ${reads.join("\n      ")}
      ${fmas.join("\n      ")}
    }
    workgroupBarrier();
  }

  let r0 = row0 + lid.y * ${RM}u;
  let c0 = col0 + lid.x * ${RN}u;
  ${stores.join("\n  ")}
}
`;
}

// ---------------------------------------------------------------------------
// Launcher

/** Bytes of the uniform block `{ batch, m, n, k: u32, alpha: f32 }`, padded to 32. */
const _PARAMS_BYTES = 32;

/**
 * A matrix product ready to encode: the pipeline for its transposes and
 * `vec4` alignment (cached per device, shared by every size) plus the plan's
 * own uniform buffer holding the sizes and alpha. Encode it as often as you
 * like; call {@linkcode MatmulPlan.destroy} when done.
 */
export class MatmulPlan {
  /** Floating-point operations of one product: `2·batch·m·n·k`. */
  readonly flops: number;
  /** The shape this plan computes, transposes filled in. */
  readonly shape: Readonly<Required<MatmulShape>>;
  /** The scale applied to every product. */
  readonly alpha: number;
  readonly #device: GPUDevice;
  readonly #pipeline: GPUComputePipeline;
  readonly #params: GPUBuffer;
  readonly #workgroups: [number, number, number];

  private constructor(
    device: GPUDevice,
    pipeline: GPUComputePipeline,
    shape: Required<MatmulShape>,
    alpha: number,
  ) {
    const { batch, m, n, k } = shape;
    this.#device = device;
    this.#pipeline = pipeline;
    this.shape = shape;
    this.alpha = alpha;
    this.flops = 2 * batch * m * n * k;
    this.#workgroups = [Math.ceil(n / _TILE_N), Math.ceil(m / _TILE_M), batch];
    this.#params = device.createBuffer({
      label: `${pipeline.label}.params`,
      size: _PARAMS_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    const params = new ArrayBuffer(_PARAMS_BYTES);
    new Uint32Array(params, 0, 4).set([batch, m, n, k]);
    new Float32Array(params, 16, 1)[0] = alpha;
    device.queue.writeBuffer(this.#params, 0, params);
  }

  /**
   * Checks `shape` (and the device's dispatch and buffer limits), then builds
   * or fetches the pipeline, labelled `matmul.nn`, `matmul.nt`, `matmul.tn` or
   * `matmul.tt` plus the operands read or written as `vec4`s (e.g.
   * `matmul.nt.vec4-abc`). Throws a `RangeError` for a bad shape before any
   * GPU work.
   */
  static async create(device: GPUDevice, shape: MatmulShape, alpha = 1): Promise<MatmulPlan> {
    _validate(shape, alpha);
    _checkLimits(device, shape);
    _assertDeviceAlive(device);
    const { m, n, k } = shape;
    const transA = shape.transA ?? false;
    const transB = shape.transB ?? false;
    // vec4 access wherever the contiguous dimension allows it.
    const config: MatmulWgslConfig = {
      transA,
      transB,
      vec4A: (transA ? m : k) % 4 === 0,
      vec4B: (transB ? k : n) % 4 === 0,
      vec4C: n % 4 === 0,
    };
    const vec4 = [config.vec4A && "a", config.vec4B && "b", config.vec4C && "c"].filter(Boolean);
    const name = `matmul.${transA ? "t" : "n"}${transB ? "t" : "n"}` +
      (vec4.length ? `.vec4-${vec4.join("")}` : "");
    const pipeline = await getPipeline(device, {
      key: name,
      label: name,
      code: () => matmulWgsl(config),
      constants: { ..._CONSTANTS },
    });
    return new MatmulPlan(device, pipeline, { ...shape, transA, transB }, alpha);
  }

  /**
   * Records the product as one compute pass in `encoder`: reads `a`
   * (`batch·m·k` f32) and `b` (`batch·k·n` f32), writes `c` (`batch·m·n` f32).
   * Throws a `RangeError` if a buffer is too small.
   */
  encode(encoder: GPUCommandEncoder, a: GPUBuffer, b: GPUBuffer, c: GPUBuffer): void {
    const { batch, m, n, k } = this.shape;
    checkBufferSize("matmul buffer a", a, batch * m * k * 4);
    checkBufferSize("matmul buffer b", b, batch * k * n * 4);
    checkBufferSize("matmul buffer c", c, batch * m * n * 4);
    const group = cachedBindGroup(this.#device, this.#pipeline, [a, b, c, this.#params]);
    const pass = encoder.beginComputePass({ label: this.#pipeline.label });
    pass.setPipeline(this.#pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(...this.#workgroups);
    pass.end();
  }

  /** Frees the plan's uniform buffer; the cached pipeline stays. */
  destroy(): void {
    this.#params.destroy();
  }
}

/**
 * Computes `alpha · op(A) · op(B)` on the GPU: uploads `a` and `b`, runs one
 * {@linkcode MatmulPlan} and reads C (`[batch, m, n]`) back. Bad shapes or
 * array lengths throw a `RangeError` before any GPU work.
 */
export async function matmul(
  a: Float32Array,
  b: Float32Array,
  shape: MatmulShape,
  options: { alpha?: number; device?: GPUDevice } = {},
): Promise<Float32Array> {
  const alpha = options.alpha ?? 1;
  _validate(shape, alpha, a, b);
  const device = options.device ?? await getDevice();
  const plan = await MatmulPlan.create(device, shape, alpha);
  const length = shape.batch * shape.m * shape.n;
  const aBuf = uploadBuffer(device, a, "matmul.a");
  const bBuf = uploadBuffer(device, b, "matmul.b");
  const cBuf = createStorageBuffer(device, length * 4, "matmul.c");
  try {
    const encoder = device.createCommandEncoder({ label: "matmul" });
    plan.encode(encoder, aBuf, bBuf, cBuf);
    device.queue.submit([encoder.finish()]);
    return await readFloat32(device, cBuf, length);
  } finally {
    plan.destroy();
    aBuf.destroy();
    bBuf.destroy();
    cBuf.destroy();
  }
}

// ---------------------------------------------------------------------------
// Validation

/** Throws a `RangeError` for a bad shape or alpha, or arrays that do not match the shape. */
function _validate(shape: MatmulShape, alpha: number, a?: Float32Array, b?: Float32Array): void {
  for (const dim of ["batch", "m", "n", "k"] as const) {
    const v = shape[dim];
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`matmul: shape.${dim} must be a positive integer, got ${v}`);
    }
  }
  if (!Number.isFinite(alpha)) {
    throw new RangeError(`matmul: alpha must be a finite number, got ${alpha}`);
  }
  const { batch, m, n, k } = shape;
  if (a && a.length !== batch * m * k) {
    throw new RangeError(
      `matmul: a must hold batch·m·k = ${batch * m * k} values ` +
        `(${shape.transA ? "[batch, k, m]" : "[batch, m, k]"}), got ${a.length}`,
    );
  }
  if (b && b.length !== batch * k * n) {
    throw new RangeError(
      `matmul: b must hold batch·k·n = ${batch * k * n} values ` +
        `(${shape.transB ? "[batch, n, k]" : "[batch, k, n]"}), got ${b.length}`,
    );
  }
}

/** Throws a `RangeError` if the shape exceeds the device's dispatch or buffer limits. */
function _checkLimits(device: GPUDevice, shape: MatmulShape): void {
  const { batch, m, n, k } = shape;
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  const groups = { batch, m: Math.ceil(m / _TILE_M), n: Math.ceil(n / _TILE_N) };
  for (const [dim, count] of Object.entries(groups)) {
    if (count > maxGroups) {
      throw new RangeError(
        `matmul: shape.${dim} = ${shape[dim as "m"]} needs ${count} workgroups in one dimension, ` +
          `more than the device's maxComputeWorkgroupsPerDimension = ${maxGroups}`,
      );
    }
  }
  const maxBytes = maxBindingBytes(device);
  const values = { a: batch * m * k, b: batch * k * n, c: batch * m * n };
  for (const [name, count] of Object.entries(values)) {
    if (count * 4 > maxBytes) {
      throw new RangeError(
        `matmul: ${name} needs ${count * 4} bytes, more than the device's ` +
          `maxStorageBufferBindingSize = ${maxBytes}`,
      );
    }
  }
}

/** Throws a `RangeError` if `buffer` cannot hold `count` f32 values. */
