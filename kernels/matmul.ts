/**
 * Batched f32 matrix multiply: `C[b] = alpha · op(A[b]) · op(B[b])`, with
 * `op(X) = Xᵀ` when the matching transpose flag is set. It is the building
 * block of the unfused attention baseline (scores = Q·Kᵀ, out = P·V) and of
 * the training module's dense layers.
 *
 * In llm.c order: a plain-TS reference, the WGSL generators, then the
 * launcher. Two kernels compute a product, chosen from its shape when the
 * plan is made ({@linkcode matmulPath}):
 *
 * - `"tiled"`: a workgroup stages 128×64 tiles of op(A) and op(B) in
 *   workgroup memory and each invocation keeps a 16×8 block of C in
 *   registers: the kernel for large products (C of at least 131,072
 *   elements: the unfused attention baseline's S×S scores from S = 363).
 * - `"direct"`: no workgroup memory and no barriers; each invocation reads
 *   its rows of op(A) and columns of op(B) straight from global memory and
 *   keeps a 16×8 block of C, a workgroup covering 128×32. It is the kernel for
 *   the training module's small products (a `[32, 576]ᵀ·[576, 32]` weight
 *   gradient), where a 128×64 tile would be mostly zero padding.
 *
 * Either can split the summed dimension K (split-K): the product runs as
 * `splitK` slices of K, each workgroup writing its slice's partial product to
 * a scratch buffer, and a second dispatch sums the slices in a fixed order
 * and scales them. It gives a product with a tiny output and a long K (one
 * workgroup's worth of C) more than one workgroup to run on.
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

// Shared pieces of the two kernels.

const _range = (n: number) => [...Array(n).keys()];
const _elem = (vec4?: boolean) => vec4 ? "vec4<f32>" : "f32";

/** The uniform block of both kernels and of the split-K sum (32 bytes). */
const _PARAMS_WGSL = `// kChunk: k per slice of split-K; splits: slices
struct Params { batch: u32, m: u32, n: u32, k: u32, alpha: f32, kChunk: u32, splits: u32 }`;

/**
 * Where workgroup z's batch entry starts in A, B and C. Its slice of k,
 * [kBegin, kEnd), is computed in each kernel's main as \`let\`s from the
 * workgroup id and the uniform block, so that the loops with barriers over it
 * stay in uniform control flow (WGSL's uniformity analysis treats every
 * private variable as possibly non-uniform; Tint enforces it, naga does not).
 */
const _offsetsWgsl = `var<private> aOff: u32; // where this batch entry starts in A, B (elements)
var<private> bOff: u32;
var<private> cOff: u32; // where this (batch entry, k slice) starts in C
var<private> sOff: u32; // where this (batch entry, k slice) starts in S, the column sums

// Sets the offsets of workgroup z = b · splits + s.
fn _offsets(z: u32) {
  let b = z / p.splits;
  aOff = b * p.m * p.k;
  bOff = b * p.k * p.n;
  cOff = z * p.m * p.n;
  sOff = z * p.n;
}`;

/** The slice of k of workgroup z = b · splits + s, as uniform values (see _offsetsWgsl). */
const _K_SLICE_WGSL = `_offsets(wg.z);
  let kBegin = (wg.z % p.splits) * p.kChunk; // this workgroup sums k in [kBegin, kEnd)
  let kEnd = min(p.k, kBegin + p.kChunk);`;

/**
 * Stored elements (row, col .. col+3) of a row-major [rows, cols] matrix at
 * element offset `off`, zero outside it.
 */
function _loader(
  fn: string,
  buf: string,
  off: string,
  rows: string,
  cols: string,
  vec4?: boolean,
): string {
  return vec4
    ? `fn ${fn}(row: u32, col: u32) -> vec4<f32> {
  if (row < ${rows} && col < ${cols}) { return ${buf}[(${off} + row * ${cols} + col) / 4u]; }
  return vec4<f32>();
}`
    : `fn ${fn}(row: u32, col: u32) -> vec4<f32> {
  var v = vec4<f32>();
  if (row < ${rows}) {
    let i = ${off} + row * ${cols} + col;
${
      _range(4).map((t) => `    if (col + ${t}u < ${cols}) { v[${t}] = ${buf}[i + ${t}u]; }`).join(
        "\n",
      )
    }
  }
  return v;
}`;
}

/** `_storeC(row, col, v)`: C[row, col .. col+3] = v, within C's bounds. */
function _storer(vec4?: boolean): string {
  return vec4
    ? `fn _storeC(row: u32, col: u32, v: vec4<f32>) {
  if (row < p.m && col < p.n) { C[(cOff + row * p.n + col) / 4u] = v; }
}`
    : `fn _storeC(row: u32, col: u32, v: vec4<f32>) {
  if (row < p.m) {
    let i = cOff + row * p.n + col;
${_range(4).map((t) => `    if (col + ${t}u < p.n) { C[i + ${t}u] = v[${t}]; }`).join("\n")}
  }
}`;
}

/**
 * The epilogues' bindings and helpers: `_loadBias(col, firstSlice)` = bias[col .. col+3]
 * (zero outside it, and in every slice of k but the first, so that a split
 * sum adds it once), and `_storeS(col, v)` = S[col .. col+3] of this
 * workgroup's (batch entry, slice).
 */
function _epilogueWgsl(config: MatmulWgslConfig): string {
  const lines: string[] = [];
  let binding = 4;
  if (config.bias) {
    lines.push(
      `@group(0) @binding(${binding++}) var<storage, read> bias: array<f32>; // [N]`,
      `fn _loadBias(col: u32, firstSlice: bool) -> vec4<f32> {
  var v = vec4<f32>();
  if (firstSlice) {
${_range(4).map((t) => `    if (col + ${t}u < p.n) { v[${t}] = bias[col + ${t}u]; }`).join("\n")}
  }
  return v;
}`,
    );
  }
  if (config.columnSums) {
    lines.push(
      `@group(0) @binding(${binding++}) var<storage, read_write> S: array<f32>; // [B,SPLITS,N]`,
      `fn _storeS(col: u32, v: vec4<f32>) {
${_range(4).map((t) => `  if (col + ${t}u < p.n) { S[sOff + col + ${t}u] = v[${t}]; }`).join("\n")}
}`,
    );
  }
  return lines.join("\n\n");
}

/**
 * The register block of one invocation: RM × RN accumulators (`acc{i}_{g}` =
 * C[row i, columns 4g .. 4g+3] of the block), the multiply-adds of one step
 * of four k given the reads `a…` and `b…` (see the kernels), and the stores.
 */
function _block(
  config: MatmulWgslConfig,
  RM: number,
  RN: number,
): { fmas: string[]; accs: string[]; stores: string[] } {
  const { transA, transB } = config;
  const range = _range;
  const aAt = (i: number, t: number) => transA ? `a${t}_${i >> 2}[${i & 3}]` : `a${i}[${t}]`;
  const bRow = (g: number, t: number) =>
    transB ? `vec4<f32>(${range(4).map((j) => `b${4 * g + j}[${t}]`).join(", ")})` : `b${t}_${g}`;
  // acc{i}_{g} += Σ_t aAt(i, t) · bRow(g, t), as one nested fma per accumulator.
  const fma = (i: number, g: number) => (acc: string, t: number) =>
    `fma(vec4<f32>(${aAt(i, t)}), ${bRow(g, t)}, ${acc})`;
  const fmas = range(RM).flatMap((i) =>
    range(RN / 4).map((g) => `acc${i}_${g} = ${range(4).reduce(fma(i, g), `acc${i}_${g}`)};`)
  );
  const accs = range(RM).flatMap((i) => range(RN / 4).map((g) => `acc${i}_${g}`));
  const stores: string[] = [];
  if (config.bias) {
    stores.push(
      ...range(RN / 4).map((g) => `let bias${g} = _loadBias(c0 + ${4 * g}u, kBegin == 0u);`),
    );
  }
  stores.push(
    ...range(RM).flatMap((i) =>
      range(RN / 4).map((g) =>
        `_storeC(r0 + ${i}u, c0 + ${4 * g}u, acc${i}_${g} * p.alpha${
          config.bias ? ` + bias${g}` : ""
        });`
      )
    ),
  );
  if (config.columnSums) {
    // cs{g} = Σ over this slice of k of op(B)[k, columns 4g .. 4g+3], kept by
    // the invocations whose block starts at row 0 (sumRow).
    accs.push(...range(RN / 4).map((g) => `cs${g}`));
    fmas.push(
      `if (sumRow) {`,
      ...range(RN / 4).map((g) =>
        `  cs${g} += (${bRow(g, 0)} + ${bRow(g, 1)}) + (${bRow(g, 2)} + ${bRow(g, 3)});`
      ),
      `}`,
    );
    stores.push(
      `if (sumRow) {`,
      ...range(RN / 4).map((g) => `  _storeS(c0 + ${4 * g}u, cs${g});`),
      `}`,
    );
  }
  return { fmas, accs, stores };
}

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
  /** Add `bias[j]` to every C[b, i, j] (binding 4, `[n]`), after alpha. */
  bias?: boolean;
  /**
   * Also write the column sums of op(B), `S[b, j] = Σ_k op(B[b])[k, j]`, to
   * binding 4 (5 with `bias`), `[batch, splits, n]`: for a weight gradient
   * `Xᵀ·dY`, the bias gradient. Not scaled by alpha.
   */
  columnSums?: boolean;
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
 * What both kernels share: the uniform block, the bindings A, B, C and p, the
 * batch offsets, op(A)/op(B) loaders, the store of C and the epilogues.
 */
function _sharedWgsl(config: MatmulWgslConfig): string {
  const { transA, transB } = config;
  return `${_PARAMS_WGSL}

@group(0) @binding(0) var<storage, read> A: array<${_elem(config.vec4A)}>; // ${
    transA ? "[B,K,M]" : "[B,M,K]"
  }
@group(0) @binding(1) var<storage, read> B: array<${_elem(config.vec4B)}>; // ${
    transB ? "[B,N,K]" : "[B,K,N]"
  }
@group(0) @binding(2) var<storage, read_write> C: array<${_elem(config.vec4C)}>; // [B,SPLITS,M,N]
@group(0) @binding(3) var<uniform> p: Params;

${_offsetsWgsl}

${_loader("_loadA", "A", "aOff", transA ? "p.k" : "p.m", transA ? "p.m" : "p.k", config.vec4A)}

${_loader("_loadB", "B", "bOff", transB ? "p.n" : "p.k", transB ? "p.k" : "p.n", config.vec4B)}

${_storer(config.vec4C)}

${_epilogueWgsl(config)}`;
}

/**
 * WGSL for `C[b] = alpha · op(A[b]) · op(B[b])`, entry point `main`.
 *
 * Bindings (group 0): 0 = A and 1 = B (read-only storage), 2 = C (storage),
 * 3 = uniform `{ batch, m, n, k: u32, alpha: f32, kChunk, splits: u32 }`, then the
 * epilogues' buffers (`bias`, `columnSums`).
 * Dispatch `(ceil(n / TILE_N), ceil(m / TILE_M), batch · splits)` workgroups,
 * where `TILE_M = WG_Y · rowsPerThread` and `TILE_N = WG_X · colsPerThread`.
 * Workgroup z sums k in `[s · kChunk, (s + 1) · kChunk)` of batch entry
 * `b = z / splits` (`s = z % splits`, `kChunk` a multiple of `TILE_K`) into
 * `C[b, s]` (scaled by alpha, the bias added by slice 0), so with
 * `splits = 1` and `kChunk ≥ k`, C is the product itself; with more, C holds
 * the slices' partial products for {@linkcode matmulSplitSumWgsl}.
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
  const range = _range;

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
  const { fmas, accs, stores } = _block(config, RM, RN);

  const name = `matmul.${transA ? "t" : "n"}${transB ? "t" : "n"}`;
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

var<workgroup> tileA: array<vec4<f32>, TILE_A_LEN>; // ${shapeTileA}
var<workgroup> tileB: array<vec4<f32>, TILE_B_LEN>; // ${shapeTileB}

${_sharedWgsl(config)}

@compute @workgroup_size(WG_X, WG_Y)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let row0 = wg.y * TILE_M; // this workgroup's tile of C starts at (row0, col0)
  let col0 = wg.x * TILE_N;
  ${_K_SLICE_WGSL}
  let sumRow = wg.y == 0u && lid.y == 0u; // this invocation's block starts at row 0

  ${accs.map((acc) => `var ${acc} = vec4<f32>();`).join("\n  ")}

  for (var k0 = kBegin; k0 < kEnd; k0 += TILE_K) {
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

/**
 * The direct kernel's register block and workgroup: each invocation keeps a
 * 16×8 block of C (the tiled kernel's), a 4×8 workgroup (32 invocations)
 * covers 128×32. Measured on lavapipe, interleaved, on the training module's
 * products ([32, 576]ᵀ·[576, 32], [576, 32]·[32, 32], [576, 32]·[32, 128],
 * [576, 128]·[32, 128]ᵀ …) against 8×8, 16×4, 8×16 and 16×16 blocks in
 * workgroups of 8 to 128 invocations: within the noise of the fastest on
 * each (16×16 blocks ran up to 20% faster there, but 256 accumulators per
 * invocation are more registers than a GPU has), 1.3–2× faster than 8×8
 * blocks, and 2–8× faster than the tiled kernel, whose 128×64 tile is mostly
 * padding on these shapes and whose barriers cost more than its staging saves.
 */
const _DIRECT = { RM: 16, RN: 8, WG_X: 4, WG_Y: 8 } as const;
const _DIRECT_TILE_M = _DIRECT.WG_Y * _DIRECT.RM;
const _DIRECT_TILE_N = _DIRECT.WG_X * _DIRECT.RN;

/**
 * WGSL for the direct kernel (see the module docs), entry point `main`, with
 * the bindings, uniform and dispatch of {@linkcode matmulWgsl} (`TILE_M` =
 * `WG_Y · rowsPerThread`, `TILE_N` = `WG_X · colsPerThread`, `kChunk` a
 * multiple of 4). No workgroup memory and no barriers: each invocation walks
 * its slice of k four at a time, reading `rowsPerThread + colsPerThread`
 * `vec4`s of op(A) and op(B) from global memory (zero outside them) per
 * `4 · rowsPerThread · colsPerThread` multiply-adds. `WG_X` and `WG_Y` are
 * `override` constants; the transposes, `vec4` access and register block are
 * compiled in.
 */
export function matmulDirectWgsl(config: MatmulWgslConfig): string {
  const { transA, transB } = config;
  const RM = config.rowsPerThread ?? _DIRECT.RM;
  const RN = config.colsPerThread ?? _DIRECT.RN;
  if (RM % 4 || RN % 4 || RM < 4 || RN < 4) {
    throw new RangeError(
      `matmulDirectWgsl: rowsPerThread and colsPerThread must be positive multiples of 4, got ${RM}, ${RN}`,
    );
  }
  const range = _range;
  // One step covers k .. k+3 (t = 0..3), read in the layout A and B are stored in.
  const reads: string[] = [];
  if (transA) { // a{t}_{g} = op(A)[rows r0+4g .. r0+4g+3, k + t] = A[k + t, r0+4g ..]
    for (const t of range(4)) {
      for (const g of range(RM / 4)) {
        reads.push(`let a${t}_${g} = _loadA(k + ${t}u, r0 + ${4 * g}u);`);
      }
    }
  } else { // a{i} = op(A)[row r0+i, k .. k+3]
    for (const i of range(RM)) reads.push(`let a${i} = _loadA(r0 + ${i}u, k);`);
  }
  if (transB) { // b{j} = op(B)[k .. k+3, column c0+j] = B[c0+j, k ..]
    for (const j of range(RN)) reads.push(`let b${j} = _loadB(c0 + ${j}u, k);`);
  } else { // b{t}_{g} = op(B)[k + t, columns c0+4g .. c0+4g+3]
    for (const t of range(4)) {
      for (const g of range(RN / 4)) {
        reads.push(`let b${t}_${g} = _loadB(k + ${t}u, c0 + ${4 * g}u);`);
      }
    }
  }
  const { fmas, accs, stores } = _block(config, RM, RN);
  const name = `matmul.direct.${transA ? "t" : "n"}${transB ? "t" : "n"}`;
  return /* wgsl */ `// ${name}: C[b] = alpha * op(A[b]) * op(B[b]), no workgroup memory
override WG_X: u32 = ${_DIRECT.WG_X}; // invocations along n
override WG_Y: u32 = ${_DIRECT.WG_Y}; // invocations along m

${_sharedWgsl(config)}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  // This invocation's block of C starts at (r0, c0).
  let r0 = (wg.y * WG_Y + lid.y) * ${RM}u;
  let c0 = (wg.x * WG_X + lid.x) * ${RN}u;
  ${_K_SLICE_WGSL}
  let sumRow = r0 == 0u; // this invocation's block starts at row 0
  if (r0 >= p.m || c0 >= p.n) { return; } // no barriers below: lanes may leave

  ${accs.map((acc) => `var ${acc} = vec4<f32>();`).join("\n  ")}

  for (var k = kBegin; k < kEnd; k += 4u) {
    ${reads.join("\n    ")}
    ${fmas.join("\n    ")}
  }

  ${stores.join("\n  ")}
}
`;
}

/** Invocations per workgroup of the split-K sum. */
const _SUM_WG = 64;

/**
 * WGSL for the second dispatch of split-K, entry point `main`:
 * `C[b, i] = Σ_s P[b, s, i]` over the slices s = 0 … splits−1 in order, for
 * each of the `m·n` elements i of each batch entry b; with `columnSums`, also
 * `S[b, j] = Σ_s SP[b, s, j]` for the `n` column sums. Bindings: 0 = the
 * partial products P `[batch, splits, m, n]` (read-only storage), 1 = C
 * `[batch, m, n]` (storage), 2 = the kernels' uniform, then with
 * `columnSums` 3 = SP `[batch, splits, n]` and 4 = S `[batch, n]`. One
 * invocation per element of C (and S): dispatch `(x, y)` workgroups of 64
 * with `64·x·y ≥ batch·m·n (+ batch·n)`; element `gid.x + gid.y · 64·x`.
 */
export function matmulSplitSumWgsl(options: { columnSums?: boolean } = {}): string {
  const sums = options.columnSums
    ? `
@group(0) @binding(3) var<storage, read> SP: array<f32>; // [B,SPLITS,N]
@group(0) @binding(4) var<storage, read_write> S: array<f32>; // [B,N]`
    : "";
  const sumS = options.columnSums
    ? `
  let j = i - p.batch * mn; // S[j]
  if (j >= p.batch * p.n) { return; }
  let bj = j / p.n;
  let atS = bj * p.splits * p.n + (j - bj * p.n); // SP[b, 0, j]
  var sumS = 0.0;
  for (var s = 0u; s < p.splits; s++) { sumS += SP[atS + s * p.n]; }
  S[j] = sumS;`
    : `
  return;`;
  return /* wgsl */ `// matmul.split_sum: C[b, i] = sum over s of P[b, s, i]${
    options.columnSums ? ", S[b, j] = sum over s of SP[b, s, j]" : ""
  }
${_PARAMS_WGSL}

@group(0) @binding(0) var<storage, read> P: array<f32>; // [B,SPLITS,M,N]
@group(0) @binding(1) var<storage, read_write> C: array<f32>; // [B,M,N]
@group(0) @binding(2) var<uniform> p: Params;${sums}

@compute @workgroup_size(${_SUM_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${_SUM_WG}u;
  let mn = p.m * p.n;
  if (i < p.batch * mn) {
    let b = i / mn;
    let at = b * p.splits * mn + (i - b * mn); // P[b, 0, i]
    var sum = 0.0;
    for (var s = 0u; s < p.splits; s++) { sum += P[at + s * mn]; }
    C[i] = sum;
    return;
  }${sumS}
}
`;
}

// ---------------------------------------------------------------------------
// Launcher

/** How a product is computed: the kernel, and K cut into `splitK` slices of `kChunk`. */
export interface MatmulPath {
  /** `"tiled"` (workgroup-memory tiles, 128×64 of C) or `"direct"` (no workgroup memory, 128×32). */
  kernel: "tiled" | "direct";
  /** Slices of K, each summed by its own workgroups; 1 = no split. */
  splitK: number;
  /** k per slice: a multiple of 8, and `ceil(k / kChunk) = splitK`. */
  kChunk: number;
}

/**
 * What a plan computes besides the product, in the same dispatch (the dense
 * layers' bias and bias gradient, without a dispatch of their own).
 */
export interface MatmulEpilogue {
  /** `C[b, i, j] = alpha · (op(A)·op(B))[b, i, j] + bias[j]`: encode then takes `bias` (`n` f32). */
  bias?: boolean;
  /**
   * Also write the column sums of op(B), `S[b, j] = Σ_k op(B[b])[k, j]`
   * (unscaled): encode then takes `columnSums` (`batch·n` f32). For a weight
   * gradient `Xᵀ·dY` they are the bias gradient.
   */
  columnSums?: boolean;
}

/** How {@linkcode MatmulPlan.create} and {@linkcode matmul} compute a product. */
export interface MatmulOptions {
  /** The kernel: `"auto"` (default) chooses from the shape, see {@linkcode matmulPath}. */
  kernel?: "auto" | "tiled" | "direct";
  /**
   * Slices of K (split-K): a positive integer, or `"auto"` (default), see
   * {@linkcode matmulPath}. Slices are rounded to multiples of 8, so fewer
   * may run than asked for (never an empty one).
   */
  splitK?: number | "auto";
}

/**
 * The tiled kernel serves products whose C (per batch entry) covers at least
 * this many elements, 16 of its 128×64 tiles; smaller ones go to the direct
 * kernel, which has no barriers and pads less.
 */
const _TILED_MIN_OUTPUT = 16 * _TILE_M * _TILE_N;
/** Automatic split-K gives a product at least this many workgroups… */
const _SPLIT_MIN_WORKGROUPS = 4;
/** …as long as each slice keeps at least this much of K. */
const _SPLIT_MIN_K = 128;

/**
 * The kernel and split-K of a product, chosen from its shape when a plan is
 * made (the same on every adapter, so a product's rounding does not depend
 * on the machine's core count): the tiled kernel when C (per batch entry) has
 * at least 16·128·64 elements, else the direct one; and K split into as many
 * slices as bring the dispatch up to 4 workgroups, keeping at least 128 of K
 * per slice (a `[32, 576]ᵀ·[576, 32]` weight gradient, one workgroup,
 * runs as 4 slices of 144). `options` forces either choice.
 */
export function matmulPath(shape: MatmulShape, options: MatmulOptions = {}): MatmulPath {
  _validateOptions(options);
  const { batch, m, n, k } = shape;
  const choice = options.kernel ?? "auto";
  const kernel = choice !== "auto" ? choice : m * n >= _TILED_MIN_OUTPUT ? "tiled" : "direct";
  const [tileM, tileN] = kernel === "tiled" ? [_TILE_M, _TILE_N] : [_DIRECT_TILE_M, _DIRECT_TILE_N];
  const workgroups = batch * Math.ceil(m / tileM) * Math.ceil(n / tileN);
  const asked = options.splitK ?? "auto";
  const wanted = asked !== "auto" ? asked : workgroups >= _SPLIT_MIN_WORKGROUPS ? 1 : Math.max(
    1,
    Math.min(Math.ceil(_SPLIT_MIN_WORKGROUPS / workgroups), Math.floor(k / _SPLIT_MIN_K)),
  );
  // A slice is a whole number of the tiled kernel's k steps (its loaders are bounded by k, not
  // by the slice's end), and of the direct kernel's vec4 steps.
  const kChunk = Math.ceil(Math.ceil(k / wanted) / _CONSTANTS.TILE_K) * _CONSTANTS.TILE_K;
  return { kernel, splitK: Math.ceil(k / kChunk), kChunk };
}

/** Bytes of the uniform block `{ batch, m, n, k: u32, alpha: f32, kChunk, splits: u32 }`, padded to 32. */
const _PARAMS_BYTES = 32;

/**
 * A matrix product ready to encode: the pipeline for its kernel, transposes
 * and `vec4` alignment (cached per device, shared by every size) plus the
 * plan's own uniform buffer holding the sizes and alpha, and with split-K the
 * split sum's pipeline and a scratch buffer for the partial products. Encode
 * it as often as you like; call {@linkcode MatmulPlan.destroy} when done.
 */
export class MatmulPlan {
  /** Floating-point operations of one product: `2·batch·m·n·k`. */
  readonly flops: number;
  /** The shape this plan computes, transposes filled in. */
  readonly shape: Readonly<Required<MatmulShape>>;
  /** The scale applied to every product. */
  readonly alpha: number;
  /** The kernel and split-K this plan runs. */
  readonly path: Readonly<MatmulPath>;
  /** The epilogues this plan computes. */
  readonly epilogue: Readonly<Required<MatmulEpilogue>>;
  readonly #device: GPUDevice;
  readonly #pipeline: GPUComputePipeline;
  readonly #sum: GPUComputePipeline | undefined;
  readonly #partials: GPUBuffer | undefined;
  readonly #sumPartials: GPUBuffer | undefined;
  readonly #params: GPUBuffer;
  readonly #workgroups: [number, number, number];
  readonly #sumWorkgroups: [number, number];

  private constructor(
    device: GPUDevice,
    pipelines: { main: GPUComputePipeline; sum?: GPUComputePipeline },
    shape: Required<MatmulShape>,
    alpha: number,
    path: MatmulPath,
    epilogue: Required<MatmulEpilogue>,
  ) {
    const { batch, m, n, k } = shape;
    const split = path.splitK > 1;
    this.epilogue = epilogue;
    this.#device = device;
    this.#pipeline = pipelines.main;
    this.#sum = pipelines.sum;
    this.shape = shape;
    this.alpha = alpha;
    this.path = path;
    this.flops = 2 * batch * m * n * k;
    this.#workgroups = _workgroups(shape, path);
    this.#sumWorkgroups = _sumWorkgroups(device, _sumCount(shape, epilogue));
    this.#params = device.createBuffer({
      label: `${pipelines.main.label}.params`,
      size: _PARAMS_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.#partials = split
      ? createStorageBuffer(
        device,
        batch * path.splitK * m * n * 4,
        `${pipelines.main.label}.partials`,
      )
      : undefined;
    this.#sumPartials = split && epilogue.columnSums
      ? createStorageBuffer(device, batch * path.splitK * n * 4, `${pipelines.main.label}.sums`)
      : undefined;
    const params = new ArrayBuffer(_PARAMS_BYTES);
    new Uint32Array(params, 0, 4).set([batch, m, n, k]);
    new Float32Array(params, 16, 1)[0] = alpha;
    new Uint32Array(params, 20, 2).set([path.kChunk, path.splitK]);
    device.queue.writeBuffer(this.#params, 0, params);
  }

  /**
   * Checks `shape` and `options` (and the device's dispatch and buffer
   * limits), then builds or fetches the pipeline, labelled `matmul.nn`,
   * `matmul.nt`, `matmul.tn` or `matmul.tt` (the tiled kernel) or
   * `matmul.direct.nn` … (the direct one) plus the operands read or written
   * as `vec4`s (e.g. `matmul.nt.vec4-abc`) and its epilogues (`.bias`,
   * `.colsum`), and with split-K `matmul.split_sum`. Throws a `RangeError`
   * for a bad shape or option before any GPU work.
   */
  static async create(
    device: GPUDevice,
    shape: MatmulShape,
    alpha = 1,
    options: MatmulOptions & MatmulEpilogue = {},
  ): Promise<MatmulPlan> {
    _validate(shape, alpha);
    const path = matmulPath(shape, options);
    _checkLimits(device, shape, path, options);
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
      bias: options.bias ?? false,
      columnSums: options.columnSums ?? false,
    };
    const epilogue = { bias: config.bias!, columnSums: config.columnSums! };
    const vec4 = [config.vec4A && "a", config.vec4B && "b", config.vec4C && "c"].filter(Boolean);
    const name = `matmul.${path.kernel === "direct" ? "direct." : ""}` +
      `${transA ? "t" : "n"}${transB ? "t" : "n"}` +
      (vec4.length ? `.vec4-${vec4.join("")}` : "") +
      (epilogue.bias ? ".bias" : "") + (epilogue.columnSums ? ".colsum" : "");
    const sumName = `matmul.split_sum${epilogue.columnSums ? ".colsum" : ""}`;
    const [main, sum] = await Promise.all([
      getPipeline(device, {
        key: name,
        label: name,
        code: () => path.kernel === "direct" ? matmulDirectWgsl(config) : matmulWgsl(config),
        constants: path.kernel === "direct"
          ? { WG_X: _DIRECT.WG_X, WG_Y: _DIRECT.WG_Y }
          : { ..._CONSTANTS },
      }),
      path.splitK > 1
        ? getPipeline(device, {
          key: sumName,
          label: sumName,
          code: () => matmulSplitSumWgsl({ columnSums: epilogue.columnSums }),
        })
        : undefined,
    ]);
    return new MatmulPlan(
      device,
      { main, sum },
      { ...shape, transA, transB },
      alpha,
      path,
      epilogue,
    );
  }

  /**
   * Records the product in `encoder` (one compute pass: one dispatch, or two
   * with split-K): reads `a` (`batch·m·k` f32) and `b` (`batch·k·n` f32),
   * writes `c` (`batch·m·n` f32); with the plan's epilogues, reads
   * `extra.bias` (`n` f32) and writes `extra.columnSums` (`batch·n` f32).
   * Throws a `RangeError` if a buffer is too small, a `TypeError` if an
   * epilogue's buffer is missing or one is given that the plan has no
   * epilogue for.
   */
  encode(
    encoder: GPUCommandEncoder,
    a: GPUBuffer,
    b: GPUBuffer,
    c: GPUBuffer,
    extra: { bias?: GPUBuffer; columnSums?: GPUBuffer } = {},
  ): void {
    const { batch, m, n, k } = this.shape;
    checkBufferSize("matmul buffer a", a, batch * m * k * 4);
    checkBufferSize("matmul buffer b", b, batch * k * n * 4);
    checkBufferSize("matmul buffer c", c, batch * m * n * 4);
    for (const key of ["bias", "columnSums"] as const) {
      if (this.epilogue[key] !== (extra[key] !== undefined)) {
        throw new TypeError(
          this.epilogue[key]
            ? `matmul: this plan computes ${key}: encode needs extra.${key}`
            : `matmul: extra.${key} given to a plan made without the ${key} option`,
        );
      }
    }
    if (extra.bias) checkBufferSize("matmul buffer bias", extra.bias, n * 4);
    if (extra.columnSums) {
      checkBufferSize("matmul buffer columnSums", extra.columnSums, batch * n * 4);
    }
    const device = this.#device;
    const out = this.#partials ?? c;
    const sums = this.#sumPartials ?? extra.columnSums;
    const bindings = [a, b, out, this.#params, extra.bias, sums].filter((x) => x !== undefined);
    const group = cachedBindGroup(device, this.#pipeline, bindings);
    const pass = encoder.beginComputePass({ label: this.#pipeline.label });
    pass.setPipeline(this.#pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(...this.#workgroups);
    if (this.#sum) {
      const sumBindings = [out, c, this.#params, sums, extra.columnSums]
        .filter((x) => x !== undefined);
      pass.setPipeline(this.#sum);
      pass.setBindGroup(0, cachedBindGroup(device, this.#sum, sumBindings));
      pass.dispatchWorkgroups(...this.#sumWorkgroups);
    }
    pass.end();
  }

  /** Frees the plan's uniform and scratch buffers; the cached pipelines stay. */
  destroy(): void {
    this.#params.destroy();
    this.#partials?.destroy();
    this.#sumPartials?.destroy();
  }
}

/** Elements the split sum writes: C's, and with column sums S's. */
function _sumCount(shape: MatmulShape, epilogue: MatmulEpilogue): number {
  const { batch, m, n } = shape;
  return batch * m * n + (epilogue.columnSums ? batch * n : 0);
}

/** Workgroups of the product's kernel: `(ceil(n / TILE_N), ceil(m / TILE_M), batch · splitK)`. */
function _workgroups(shape: MatmulShape, path: MatmulPath): [number, number, number] {
  const [tileM, tileN] = path.kernel === "tiled"
    ? [_TILE_M, _TILE_N]
    : [_DIRECT_TILE_M, _DIRECT_TILE_N];
  return [Math.ceil(shape.n / tileN), Math.ceil(shape.m / tileM), shape.batch * path.splitK];
}

/** Workgroups `(x, y)` of the split sum over `count` elements of C. */
function _sumWorkgroups(device: GPUDevice, count: number): [number, number] {
  const groups = Math.ceil(count / _SUM_WG);
  const x = Math.min(groups, device.limits.maxComputeWorkgroupsPerDimension);
  return [x, Math.ceil(groups / x)];
}

/**
 * Computes `alpha · op(A) · op(B)` on the GPU: uploads `a` and `b`, runs one
 * {@linkcode MatmulPlan} and reads C (`[batch, m, n]`) back. `kernel` and
 * `splitK` choose how ({@linkcode MatmulOptions}). Bad shapes, options or
 * array lengths throw a `RangeError` before any GPU work.
 */
export async function matmul(
  a: Float32Array,
  b: Float32Array,
  shape: MatmulShape,
  options: { alpha?: number; device?: GPUDevice } & MatmulOptions = {},
): Promise<Float32Array> {
  const alpha = options.alpha ?? 1;
  _validate(shape, alpha, a, b);
  _validateOptions(options);
  const device = options.device ?? await getDevice();
  const plan = await MatmulPlan.create(device, shape, alpha, options);
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

/** Throws a `RangeError` for an unknown kernel or a split-K that is not a positive integer. */
function _validateOptions(options: MatmulOptions): void {
  const kernel = options.kernel ?? "auto";
  if (!["auto", "tiled", "direct"].includes(kernel)) {
    throw new RangeError(
      `matmul: options.kernel must be "auto", "tiled" or "direct", got ${JSON.stringify(kernel)}`,
    );
  }
  const splitK = options.splitK ?? "auto";
  if (splitK !== "auto" && !(Number.isInteger(splitK) && splitK >= 1)) {
    throw new RangeError(
      `matmul: options.splitK must be a positive integer or "auto", got ${String(splitK)}`,
    );
  }
}

/** Throws a `RangeError` if the product exceeds the device's dispatch or buffer limits. */
function _checkLimits(
  device: GPUDevice,
  shape: MatmulShape,
  path: MatmulPath,
  epilogue: MatmulEpilogue,
): void {
  const { batch, m, n, k } = shape;
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  const [x, y, z] = _workgroups(shape, path);
  const groups = { batch: z, m: y, n: x };
  for (const [dim, count] of Object.entries(groups)) {
    if (count > maxGroups) {
      throw new RangeError(
        `matmul: shape.${dim} = ${shape[dim as "m"]} needs ${count} workgroups in one dimension` +
          (dim === "batch" && path.splitK > 1 ? ` (with split-K ${path.splitK})` : "") +
          `, more than the device's maxComputeWorkgroupsPerDimension = ${maxGroups}`,
      );
    }
  }
  const maxBytes = maxBindingBytes(device);
  const values: Record<string, number> = { a: batch * m * k, b: batch * k * n, c: batch * m * n };
  if (path.splitK > 1) values["the split-K partial products"] = batch * path.splitK * m * n;
  if (path.splitK > 1 && epilogue.columnSums) {
    values["the split-K partial column sums"] = batch * path.splitK * n;
  }
  for (const [name, count] of Object.entries(values)) {
    if (count * 4 > maxBytes) {
      throw new RangeError(
        `matmul: ${name} needs ${count * 4} bytes, more than the device's ` +
          `maxStorageBufferBindingSize = ${maxBytes}`,
      );
    }
  }
  const count = _sumCount(shape, epilogue);
  const sumGroups = Math.ceil(count / _SUM_WG);
  if (path.splitK > 1 && sumGroups > maxGroups * maxGroups) {
    throw new RangeError(
      `matmul: the split-K sum over ${count} elements needs ${sumGroups} workgroups, ` +
        `more than the device's maxComputeWorkgroupsPerDimension² = ${maxGroups * maxGroups}`,
    );
  }
}

/** Throws a `RangeError` if `buffer` cannot hold `count` f32 values. */
