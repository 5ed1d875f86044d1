/**
 * Fused tiled attention backward (FlashAttention-2 style) for softmax and
 * sigmoid. The attention weights are recomputed from Q and K tile by tile
 * (softmax from the row logsumexp the forward pass kept), so the S×S
 * matrices P, dP and dS never reach global memory.
 *
 * With `s_ij = scale · q_i·k_j`, `p_ij` the weight and `dP_ij = dO_i·v_j`:
 *
 * - softmax: `p = exp(s − lse_i)`, `dS = p ∘ (dP − Δ_i)` with the row term
 *   `Δ_i = dO_i·O_i`;
 * - sigmoid: `p = σ(s + b)`, `dS = dP ∘ σ(1 − σ)`: no row term at all;
 * - `dV_j = Σ_i p_ij dO_i`, `dK_j = scale · Σ_i dS_ij q_i`,
 *   `dQ_i = scale · Σ_j dS_ij k_j`.
 *
 * WGSL has no float atomics, so the work is split into two kernels that each
 * own their outputs:
 *
 * 1. `dq`: each invocation owns query rows (like the forward kernel) and
 *    walks the key/value tiles; softmax first computes `Δ_i` and writes it
 *    out for the second kernel.
 * 2. `dkv`: each invocation owns key rows and walks the query tiles (q, dO,
 *    and for softmax lse and Δ), accumulating dK and dV.
 *
 * Causal kernels skip the tiles their rows cannot see: `dq` stops at the
 * workgroup's last query row, `dkv` starts at the tile of its first key.
 *
 * Each kernel serves both activations, picked by the uniform flag
 * `params.softmax` (sigmoid skips the row terms at run time): the dot
 * products and accumulations unrolled over the rows and the head dim are
 * nearly all of the code, and of the compile time, and the two activations
 * share them, so a program that runs both compiles two backward pipelines
 * per head dim rather than four.
 *
 * @module
 */

import type { Activation } from "./attention_options.ts";
import { getPipeline } from "./device.ts";
import { DIRECT_KEYS, type FusedTiles, stagedRows } from "./attention_fused.ts";
import { gpuBackwardTiles } from "./attention_fused_gpu_backward.ts";
import {
  accumulateWgsl,
  directRead,
  dotsWgsl,
  each,
  FUSED_BACKWARD_PARAMS_WGSL,
  loaderWgsl,
  rowEndWgsl,
  SOFTWARE_PARAMS_READ_WGSL,
  SOFTWARE_PARAMS_WGSL,
  stagedRead,
  stageTilesWgsl,
  storerWgsl,
} from "./wgsl.ts";

/** The two kernels of the fused backward pass. */
export type BackwardKernel = "dq" | "dkv";

/**
 * Compile-time choices of a fused backward kernel (each gives its own WGSL).
 * The activation is not one of them: each kernel serves softmax and sigmoid,
 * picked at run time by the uniform `params.softmax`, so that a program that
 * runs both compiles two backward pipelines per head dim, not four (the
 * kernels share their unrolled dot products and accumulations, which are
 * nearly all of their code and of their compile time).
 */
export interface FusedBackwardConfig {
  kernel: BackwardKernel;
  headDim: number;
  precision: "f32" | "f16";
  /** Rows each invocation owns (query rows for `dq`, key rows for `dkv`). */
  rowsPerLane: number;
  /**
   * When set, the other side's rows (keys and values for `dq`, queries and
   * their output gradients for `dkv`) are read straight from storage in
   * blocks of this many (compiled in), with no workgroup memory and no
   * barrier; when absent they are staged in workgroup tiles.
   */
  directKeys?: number;
}

/**
 * Picks the tiles of one backward kernel so that its staged tiles fit
 * `storageBytes` of workgroup memory (never more than 16 KiB).
 *
 * `dq` stages K and V tiles (like the sigmoid forward: the logsumexp makes
 * the softmax weights one pass, no score scratch). `dkv` stages Q and dO
 * tiles, plus the row lse and Δ for softmax.
 *
 * With `software` false this describes the GPU tiling's kernel
 * (`attention_fused_gpu_backward.ts`, see `gpuBackwardTiles`) in these
 * terms, for the operation-count model: `lanes` is the rows a workgroup
 * owns, one row per lane group, and `keys` its compile-time step.
 *
 * On a software adapter the kernels serve both activations, so their tiles
 * are the same for both (the `dkv` tile leaves room for softmax's lse and Δ),
 * and one pipeline per kernel and head dim serves softmax and sigmoid. Each
 * invocation owns R rows, as in the forward kernel ({@linkcode fusedTiles}): R = 8 up to D = 64, 4 up to D = 128, 1
 * above. The backward kernels keep three (`dq`: q, dO, dQ) or four (`dkv`:
 * k, v, dK, dV) vectors per row, so their unrolled code, and its compile
 * time, grows faster with R·D than the forward's. Measured on lavapipe,
 * B=1 H=4 S=1024, both kernels together: at D = 64, R = 2 runs at 4.5–4.9
 * GFLOP/s, R = 4 at 6.8–7.5, R = 8 at 12–14, R = 16 at 16.4–16.7 but
 * compiles for minutes; at D = 128, R = 2 runs at 3.9–4.9 and R = 4 at
 * 9.4–10.1, while R = 8 took over 7 minutes to compile. At D = 256 the pair
 * (with the forward kernel) compiles in about 100 s with R = 1 and 135 s
 * with R = 2.
 *
 * With `direct` (software only, see `directSoftwareReads`) nothing is staged:
 * the rows are read straight from storage, `DIRECT_KEYS` at a time.
 */
export function fusedBackwardTiles(
  kernel: BackwardKernel,
  activation: Activation,
  headDim: number,
  storageBytes: number,
  software: boolean,
  direct = false,
): FusedTiles {
  if (!software) {
    const gpu = gpuBackwardTiles(kernel, activation, headDim, storageBytes, false);
    return { lanes: gpu.lanes / gpu.split, rowsPerLane: 1, keys: gpu.keys };
  }
  const d4 = Math.ceil(headDim / 4);
  const lanes = 16;
  const rowsPerLane = d4 <= 16 ? 8 : d4 <= 32 ? 4 : 1;
  if (direct) return { lanes, rowsPerLane, keys: DIRECT_KEYS, direct };
  const tiles = { lanes, rowsPerLane, keys: 1 };
  const bytesPerRow = fusedBackwardStorageBytes(kernel, activation, headDim, tiles);
  return { lanes, rowsPerLane, keys: stagedRows(bytesPerRow, storageBytes, headDim) };
}

/**
 * Workgroup memory (bytes) a backward kernel with these tiles uses (`keys` =
 * staged rows). The same for both activations: the `dkv` kernel stages the
 * softmax row terms (lse and Δ) either way.
 */
export function fusedBackwardStorageBytes(
  kernel: BackwardKernel,
  _activation: Activation,
  headDim: number,
  tiles: FusedTiles,
): number {
  if (tiles.direct) return 0;
  const d4 = Math.ceil(headDim / 4);
  const rowStats = kernel === "dkv" ? 2 * 4 : 0; // lse and Δ
  return tiles.keys * (2 * d4 * 16 + rowStats);
}

/** Label of a fused backward kernel (both activations), e.g. `attention.backward.dkv.d64.r8`. */
export function fusedBackwardLabel(config: FusedBackwardConfig): string {
  return `attention.backward.${config.kernel}` +
    `.d${config.headDim}.r${config.rowsPerLane}` +
    (config.directKeys === undefined ? "" : `.direct${config.directKeys}`) +
    (config.precision === "f16" ? ".f16" : "");
}

/**
 * WGSL for the four score gradients `ds4_r` (and with `needP` the weights
 * `p4_r`) of each row r from its scores `s4_r`, `dp4_r` and mask `valid_r`,
 * for the activation the uniform picks (`softmax`). `lse4`/`delta4` name the
 * softmax row terms as vec4 expressions of r. One exp serves both:
 *
 * - softmax: `e = exp(s − lse)` is the weight, `dS = e ∘ (dP − Δ)`;
 * - sigmoid: `e = exp(−|s|) ≤ 1`, σ = 1/(1+e) or e/(1+e) by the sign of s,
 *   and `σ(1−σ) = e/(1+e)²` for either sign: no overflow, and exactly 0
 *   where σ saturates.
 */
function _gradients(
  R: number,
  needP: boolean,
  lse4: (r: number) => string,
  delta4: (r: number) => string,
): string {
  const zero = "vec4<f32>(0.0)";
  return each(
    R,
    (r) =>
      `let e_${r} = exp(select(-abs(s4_${r}), s4_${r} - ${lse4(r)}, softmax));
      let inv_${r} = 1.0 / (1.0 + e_${r});
${
        needP
          ? `      let p4_${r} = select(${zero}, select(select(e_${r}, vec4<f32>(1.0), s4_${r} >= ${zero}) * inv_${r}, e_${r}, softmax), valid_${r});
`
          : ""
      }      let ds4_${r} = select(${zero}, select(dp4_${r} * e_${r} * inv_${r} * inv_${r}, e_${r} * (dp4_${r} - ${
        delta4(r)
      }), softmax), valid_${r});`,
    "      ",
  );
}

/** WGSL declarations common to both kernels: params, sizes, loaders. */
function _header(config: FusedBackwardConfig, tileName: string): string {
  const { headDim: D, precision, rowsPerLane: R } = config;
  return `// ${fusedBackwardLabel(config)}
${precision === "f16" ? "enable f16;\n" : ""}
${FUSED_BACKWARD_PARAMS_WGSL}

const D: u32 = ${D}u;    // head dim
const D4: u32 = ${Math.ceil(D / 4)}u;  // head dim in vec4s (the last one zero-padded)
const R: u32 = ${R}u;    // rows per invocation
override WG: u32 = 16u;  // invocations per workgroup; a workgroup owns WG·R rows
${
    config.directKeys === undefined
      ? `override ${tileName}: u32 = 32u;  // rows per staged tile, a multiple of 4`
      : `const ${tileName}: u32 = ${config.directKeys}u;  // rows per block, read straight from storage`
  }
`;
}

/** Generates the WGSL of the `dq` kernel (see the module doc). */
function _dqWgsl(config: FusedBackwardConfig): string {
  const { headDim: D, precision, rowsPerLane: R } = config;
  const T = precision === "f16" ? "f16" : "f32";
  const elem = D % 4 === 0 ? `vec4<${T}>` : T;
  const D4 = Math.ceil(D / 4);
  const direct = config.directKeys !== undefined;
  const [kRead, vRead] = direct
    ? [directRead("loadK", "k0"), directRead("loadV", "k0")]
    : [stagedRead("kTile"), stagedRead("vTile")];
  return `${_header(config, "BK")}
${SOFTWARE_PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> q: array<${elem}>;     // [B,H,S,D]
@group(0) @binding(2) var<storage, read> k: array<${elem}>;     // [B,H,S,D]
@group(0) @binding(3) var<storage, read> v: array<${elem}>;     // [B,H,S,D]
@group(0) @binding(4) var<storage, read> dOut: array<${elem}>;  // [B,H,S,D]
@group(0) @binding(5) var<storage, read_write> dq: array<${elem}>;  // [B,H,S,D]
@group(0) @binding(6) var<storage, read> out: array<${elem}>;  // [B,H,S,D] forward output (softmax)
@group(0) @binding(7) var<storage, read> lse: array<f32>;     // [B,H,S] forward row logsumexp (softmax)
@group(0) @binding(8) var<storage, read_write> delta: array<f32>;  // [B,H,S] Δ_i = dO_i·O_i, written (softmax)

${
    direct ? "" : `var<workgroup> kTile: array<vec4<f32>, BK * D4>;  // [BK, D4]
var<workgroup> vTile: array<vec4<f32>, BK * D4>;  // [BK, D4]
`
  }
${loaderWgsl("loadQ", "q", D)}
${loaderWgsl("loadK", "k", D)}
${loaderWgsl("loadV", "v", D)}
${loaderWgsl("loadDO", "dOut", D)}
${loaderWgsl("loadO", "out", D)}
${storerWgsl("storeDQ", "dq", D, T)}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
${SOFTWARE_PARAMS_READ_WGSL}
  let S = params.seqLen;
  let causal = params.causal != 0u;
  let softmax = params.softmax != 0u;  // else sigmoid
  let b = select(params.bias, 0.0, softmax);  // added to the scores: sigmoid's bias
  let rowBase = wid.y * S;        // first row of this (batch, head)
  let row0 = wid.x * WG * R;      // first query row of this workgroup
  // This invocation's query rows: i[r] = row0 + r·WG + lid.
  var i: array<u32, R>;
  var qi: array<array<vec4<f32>, D4>, R>;   // scaled query rows
  var doi: array<array<vec4<f32>, D4>, R>;  // their output gradients
  var dqi: array<array<vec4<f32>, D4>, R>;  // Σ_j dS_ij k_j
  var lseR: array<f32, R>;    // softmax: the rows' logsumexp
  var deltaR: array<f32, R>;  // softmax: the rows' Δ_i
${
    each(
      R,
      (r) =>
        `i[${r}] = row0 + ${r}u * WG + lid;
  if (i[${r}] < S) {
    let row = rowBase + i[${r}];
${each(D4, (d) => `qi[${r}][${d}] = params.scale * loadQ(row, ${d}u);`, "    ")}
${each(D4, (d) => `doi[${r}][${d}] = loadDO(row, ${d}u);`, "    ")}
    if (softmax) {
      lseR[${r}] = lse[row];
      var dsum = 0.0;
${each(D4, (d) => `dsum += dot(doi[${r}][${d}], loadO(row, ${d}u));`, "      ")}
      deltaR[${r}] = dsum;
      delta[row] = dsum;
    }
  }`,
      "  ",
    )
  }

  let keyEnd = select(S, min(S, row0 + WG * R), causal);
  for (var k0 = 0u; k0 < keyEnd; k0 += BK) {
${
    direct ? "" : `${stageTilesWgsl("k0", "BK", [["kTile", "loadK"], ["vTile", "loadV"]])}
    workgroupBarrier();
`
  }
    let jEnd = min(BK, keyEnd - k0);
${rowEndWgsl(R)}
    for (var j = 0u; j < jEnd; j += 4u) {
${dotsWgsl("s4", "qi", kRead, "b", D4, R)}
${dotsWgsl("dp4", "doi", vRead, "0.0", D4, R)}
      let keys4 = vec4<u32>(j, j + 1u, j + 2u, j + 3u);
${each(R, (r) => `let valid_${r} = keys4 < vec4<u32>(rowEnd[${r}]);`, "      ")}
${_gradients(R, false, (r) => `vec4<f32>(lseR[${r}])`, (r) => `vec4<f32>(deltaR[${r}])`)}
${accumulateWgsl("dqi", "ds4", kRead, D4, R)}
    }
  }

${
    each(
      R,
      (r) =>
        `if (i[${r}] < S) {
${each(D4, (d) => `storeDQ(rowBase + i[${r}], ${d}u, params.scale * dqi[${r}][${d}]);`, "    ")}
  }`,
      "  ",
    )
  }
}
`;
}

/** Generates the WGSL of the `dkv` kernel (see the module doc). */
function _dkvWgsl(config: FusedBackwardConfig): string {
  const { headDim: D, precision, rowsPerLane: R } = config;
  const T = precision === "f16" ? "f16" : "f32";
  const elem = D % 4 === 0 ? `vec4<${T}>` : T;
  const D4 = Math.ceil(D / 4);
  const direct = config.directKeys !== undefined;
  const [qRead, doRead] = direct
    ? [directRead("loadQ", "q0"), directRead("loadDO", "q0")]
    : [stagedRead("qTile"), stagedRead("doTile")];
  // Softmax's row terms of queries j..j+3 (clamped to the last row, as directRead is).
  const stat4 = (stat: string) =>
    `vec4<f32>(${
      [0, 1, 2, 3].map((c) => `${stat}[rowBase + min(q0 + j${c ? ` + ${c}u` : ""}, S - 1u)]`)
        .join(", ")
    })`;
  return `${_header(config, "BQ")}
${SOFTWARE_PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> q: array<${elem}>;     // [B,H,S,D]
@group(0) @binding(2) var<storage, read> k: array<${elem}>;     // [B,H,S,D]
@group(0) @binding(3) var<storage, read> v: array<${elem}>;     // [B,H,S,D]
@group(0) @binding(4) var<storage, read> dOut: array<${elem}>;  // [B,H,S,D]
@group(0) @binding(5) var<storage, read_write> dk: array<${elem}>;  // [B,H,S,D]
@group(0) @binding(6) var<storage, read_write> dv: array<${elem}>;  // [B,H,S,D]
@group(0) @binding(7) var<storage, read> lse: array<f32>;    // [B,H,S] forward row logsumexp (softmax)
@group(0) @binding(8) var<storage, read> delta: array<f32>;  // [B,H,S] Δ_i, from the dq kernel (softmax)

${
    direct ? "" : `var<workgroup> qTile: array<vec4<f32>, BQ * D4>;   // [BQ, D4]
var<workgroup> doTile: array<vec4<f32>, BQ * D4>;  // [BQ, D4]
var<workgroup> lseTile: array<vec4<f32>, BQ / 4u>;    // [BQ] as vec4s (softmax)
var<workgroup> deltaTile: array<vec4<f32>, BQ / 4u>;  // [BQ] as vec4s (softmax)
`
  }
${loaderWgsl("loadQ", "q", D)}
${loaderWgsl("loadK", "k", D)}
${loaderWgsl("loadV", "v", D)}
${loaderWgsl("loadDO", "dOut", D)}
${storerWgsl("storeDK", "dk", D, T)}
${storerWgsl("storeDV", "dv", D, T)}

${
    direct
      ? ""
      : `// Four consecutive entries of a [B,H,S] row statistic from row \`row\` on (zeros past the end).
fn load4(stat: u32, row: u32, end: u32) -> vec4<f32> {
  var x = vec4<f32>();
  for (var c = 0u; c < 4u; c++) {
    if (row + c < end) { x[c] = select(delta[row + c], lse[row + c], stat == 0u); }
  }
  return x;
}
`
  }
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
${SOFTWARE_PARAMS_READ_WGSL}
  let S = params.seqLen;
  let causal = params.causal != 0u;
  let softmax = params.softmax != 0u;  // else sigmoid
  let b = select(params.bias, 0.0, softmax);  // added to the scores: sigmoid's bias
  let rowBase = wid.y * S;        // first row of this (batch, head)
  let col0 = wid.x * WG * R;      // first key row of this workgroup
  // This invocation's key rows: c[r] = col0 + r·WG + lid.
  var c: array<u32, R>;
  var kj: array<array<vec4<f32>, D4>, R>;   // scaled key rows
  var vj: array<array<vec4<f32>, D4>, R>;   // value rows
  var dkj: array<array<vec4<f32>, D4>, R>;  // Σ_i dS_ij q_i
  var dvj: array<array<vec4<f32>, D4>, R>;  // Σ_i p_ij dO_i
${
    each(
      R,
      (r) =>
        `c[${r}] = col0 + ${r}u * WG + lid;
  if (c[${r}] < S) {
${each(D4, (d) => `kj[${r}][${d}] = params.scale * loadK(rowBase + c[${r}], ${d}u);`, "    ")}
${each(D4, (d) => `vj[${r}][${d}] = loadV(rowBase + c[${r}], ${d}u);`, "    ")}
  }`,
      "  ",
    )
  }

  // Queries that can see this workgroup's keys: all, or from the tile of its first key if causal.
  let queryStart = select(0u, col0 / BQ * BQ, causal);
  for (var q0 = queryStart; q0 < S; q0 += BQ) {
${
    direct ? "" : `${stageTilesWgsl("q0", "BQ", [["qTile", "loadQ"], ["doTile", "loadDO"]])}
    if (softmax) {
      for (var e = lid; e < BQ / 4u; e += WG) {
        lseTile[e] = load4(0u, rowBase + q0 + 4u * e, rowBase + S);
        deltaTile[e] = load4(1u, rowBase + q0 + 4u * e, rowBase + S);
      }
    }
    workgroupBarrier();
`
  }
    // Staged query j (of q0 + j) is seen by key row r when j < jEnd and j ≥ rowStart_r
    // (0 unless causal).
    let jEnd = min(BQ, S - q0);
${
    each(R, (r) =>
      `let rowStart_${r} = select(0u, select(0u, c[${r}] - q0, c[${r}] > q0), causal);`, "    ")
  }
    for (var j = 0u; j < jEnd; j += 4u) {
${dotsWgsl("s4", "kj", qRead, "b", D4, R)}
${dotsWgsl("dp4", "vj", doRead, "0.0", D4, R)}
      let queries4 = vec4<u32>(j, j + 1u, j + 2u, j + 3u);
${
    each(
      R,
      (r) =>
        `let valid_${r} = (queries4 < vec4<u32>(jEnd)) & (queries4 >= vec4<u32>(rowStart_${r}));`,
      "      ",
    )
  }
${
    direct
      ? `      var lse4 = vec4<f32>();
      var delta4 = vec4<f32>();
      if (softmax) {
        lse4 = ${stat4("lse")};
        delta4 = ${stat4("delta")};
      }
`
      : `      let lse4 = lseTile[j / 4u];
      let delta4 = deltaTile[j / 4u];
`
  }${_gradients(R, true, () => "lse4", () => "delta4")}
${accumulateWgsl("dvj", "p4", doRead, D4, R)}
${accumulateWgsl("dkj", "ds4", qRead, D4, R)}
    }
  }

${
    each(
      R,
      (r) =>
        `if (c[${r}] < S) {
${each(D4, (d) => `storeDK(rowBase + c[${r}], ${d}u, params.scale * dkj[${r}][${d}]);`, "    ")}
${each(D4, (d) => `storeDV(rowBase + c[${r}], ${d}u, dvj[${r}][${d}]);`, "    ")}
  }`,
      "  ",
    )
  }
}
`;
}

/**
 * Generates the WGSL of one fused backward kernel. Like the forward kernel,
 * runtime sizes come from the uniform `params` (seqLen, scale, bias), `WG`
 * and the staged tile (`BK` for `dq`, `BQ` for `dkv`) are override
 * constants, and the head dim and rows per invocation are compiled in.
 *
 * The kernel serves both activations (`params.softmax`); sigmoid binds the
 * softmax row terms too and never reads them.
 *
 * Bindings (`[B,H,S,D]` tensors, `[B,H,S]` f32 row statistics):
 * - `dq`: 0 params, 1 q, 2 k, 3 v, 4 dOut, 5 dq, 6 out, 7 lse, 8 delta
 *   (written by softmax);
 * - `dkv`: 0 params, 1 q, 2 k, 3 v, 4 dOut, 5 dk, 6 dv, 7 lse, 8 delta (read).
 */
export function fusedBackwardWgsl(config: FusedBackwardConfig): string {
  return config.kernel === "dq" ? _dqWgsl(config) : _dkvWgsl(config);
}

/** Builds (or takes from the cache) the pipeline of a fused backward kernel. */
export function fusedBackwardPipeline(
  device: GPUDevice,
  config: Omit<FusedBackwardConfig, "rowsPerLane">,
  tiles: FusedTiles,
): Promise<GPUComputePipeline> {
  const full = {
    ...config,
    rowsPerLane: tiles.rowsPerLane,
    directKeys: tiles.direct ? tiles.keys : undefined,
  };
  const label = fusedBackwardLabel(full);
  const block = config.kernel === "dq" ? "BK" : "BQ";
  return getPipeline(device, {
    key: label,
    label,
    code: () => fusedBackwardWgsl(full),
    constants: tiles.direct ? { WG: tiles.lanes } : { WG: tiles.lanes, [block]: tiles.keys },
  });
}
