/**
 * Fused attention backward, GPU tiling: the `dq` and `dkv` kernels a GPU
 * gets (and any adapter with `tiling: "gpu"`), laid out like the GPU
 * forward kernel (`attention_fused_gpu.ts`): one row per group of `P`
 * consecutive lanes, each lane holding a slice of `W` vec4s of the row's
 * vectors, a compile-time step `KS` of staged rows whose scores and score
 * gradients stay in registers, partial dot products summed over the row's
 * lanes by subgroup shuffles (or a workgroup exchange array without
 * `subgroups`).
 *
 * The weights are recomputed as in the software-tiling backward kernels
 * (`attention_fused_backward.ts`), with `s_ij = scale · q_i·k_j`:
 * softmax `p = exp(s − lse_i)`, `dS = p ∘ (dP − Δ_i)`, `Δ_i = dO_i·O_i`;
 * sigmoid `p = σ(s + b)`, `dS = dP ∘ σ(1 − σ)`; `dV_j = Σ_i p_ij dO_i`,
 * `dK_j = scale · Σ_i dS_ij q_i`, `dQ_i = scale · Σ_j dS_ij k_j`.
 *
 * - `dq` keeps q, dO and dQ per row (3 vectors, W ≤ 8 vec4s each: P = 2 at
 *   D = 64, 4 at 128, 8 at 256) and walks the key/value steps; softmax first
 *   forms Δ_i and writes it for `dkv`.
 * - `dkv` keeps k, v, dK and dV per key row (4 vectors, W ≤ 8) and walks the
 *   query steps (q, dO and, for softmax, lse and Δ).
 *
 * @module
 */

import type { Activation } from "./attention_options.ts";
import { getPipeline } from "./device.ts";
import { GPU_LANES, type GpuTiles, gpuTiles } from "./attention_fused_gpu.ts";
import {
  FUSED_PARAMS_WGSL,
  laneSliceWgsl,
  loaderWgsl,
  loadSliceWgsl,
  sliceAccumulateWgsl,
  sliceDotsWgsl,
  splitScratchWgsl,
  splitSumWgsl,
  stageTilesWgsl,
  storerWgsl,
  storeSliceWgsl,
  SUBGROUPS_WGSL,
} from "./wgsl.ts";

/** The two kernels of the fused backward pass. */
type Kernel = "dq" | "dkv";

/** At most this many vec4s of each vector per lane (3·8·4 = 96 floats for dq, 128 for dkv). */
const _WIDTH = 8;

/**
 * Tiles of a GPU backward kernel: both stage two `[KS, D4]` tiles (k, v for
 * `dq`; q, dO for `dkv`, plus lse and Δ per row for softmax) and exchange
 * two vec4s per quad of rows (the scores and dP).
 */
export function gpuBackwardTiles(
  kernel: Kernel,
  activation: Activation,
  headDim: number,
  storageBytes: number,
  subgroups: boolean,
): GpuTiles {
  const stats = kernel === "dkv" && activation === "softmax" ? 8 : 0;
  return gpuTiles(headDim, _WIDTH, 2, stats, 2, storageBytes, subgroups);
}

/** Compile-time choices of a GPU backward kernel. */
export interface GpuBackwardConfig {
  kernel: Kernel;
  activation: Activation;
  headDim: number;
  precision: "f32" | "f16";
  tiles: GpuTiles;
}

/** Label of a GPU backward kernel, e.g. `attention.backward.dkv.sigmoid.d64.gpu.p2k16`. */
export function gpuBackwardLabel(config: GpuBackwardConfig): string {
  const { split, keys, subgroups } = config.tiles;
  return `attention.backward.${config.kernel}.${config.activation}.d${config.headDim}` +
    `.gpu.p${split}k${keys}` + (subgroups ? ".sg" : "") +
    (config.precision === "f16" ? ".f16" : "");
}

/** WGSL for `p_c` (if `needP`) and `ds_c` of each quad c from `s_c`, `dp_c` and `valid_c`. */
function _weights(activation: Activation, K4: number, needP: boolean): string {
  const zero = "vec4<f32>(0.0)";
  const lines: string[] = [];
  for (let c = 0; c < K4; c++) {
    if (activation === "softmax") {
      lines.push(
        `    let p_${c} = select(${zero}, exp(s_${c} - lse_${c}), valid_${c});`,
        `    let ds_${c} = p_${c} * (dp_${c} - delta_${c});`,
      );
    } else {
      // σ and σ(1−σ) = e/(1+e)² from e = exp(-|x|) ≤ 1: no overflow, exactly 0 where σ saturates.
      lines.push(
        `    let e_${c} = exp(-abs(s_${c}));`,
        `    let inv_${c} = 1.0 / (1.0 + e_${c});`,
      );
      if (needP) {
        lines.push(
          `    let p_${c} = select(${zero}, select(e_${c}, vec4<f32>(1.0), s_${c} >= ${zero}) * inv_${c}, valid_${c});`,
        );
      }
      lines.push(
        `    let ds_${c} = select(${zero}, dp_${c} * e_${c} * inv_${c} * inv_${c}, valid_${c});`,
      );
    }
  }
  return lines.join("\n");
}

function _header(config: GpuBackwardConfig): string {
  const { headDim: D, precision, tiles } = config;
  return `// ${gpuBackwardLabel(config)}
${precision === "f16" ? "enable f16;\n" : ""}${tiles.subgroups ? SUBGROUPS_WGSL : ""}
${FUSED_PARAMS_WGSL}

const D: u32 = ${D}u;    // head dim
const D4: u32 = ${Math.ceil(D / 4)}u;  // head dim in vec4s (the last one zero-padded)
const P: u32 = ${tiles.split}u;    // lanes per row
const KS: u32 = ${tiles.keys}u;  // staged rows per step, scored in registers
override WG: u32 = ${GPU_LANES}u;  // lanes per workgroup; a workgroup owns WG / P rows
`;
}

function _dqWgsl(config: GpuBackwardConfig): string {
  const { activation, headDim: D, precision, tiles } = config;
  const T = precision === "f16" ? "f16" : "f32";
  const elem = D % 4 === 0 ? `vec4<${T}>` : T;
  const softmax = activation === "softmax";
  const D4 = Math.ceil(D / 4);
  const K4 = tiles.keys / 4;
  const quads = Array.from({ length: K4 }, (_, c) => c);
  const W = tiles.width;
  return `${_header(config)}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<${elem}>;     // [B,H,S,D]
@group(0) @binding(2) var<storage, read> k: array<${elem}>;     // [B,H,S,D]
@group(0) @binding(3) var<storage, read> v: array<${elem}>;     // [B,H,S,D]
@group(0) @binding(4) var<storage, read> dOut: array<${elem}>;  // [B,H,S,D]
@group(0) @binding(5) var<storage, read_write> dq: array<${elem}>;  // [B,H,S,D]
${
    softmax
      ? `@group(0) @binding(6) var<storage, read> out: array<${elem}>;  // [B,H,S,D] forward output
@group(0) @binding(7) var<storage, read> lse: array<f32>;     // [B,H,S] forward row logsumexp
@group(0) @binding(8) var<storage, read_write> delta: array<f32>;  // [B,H,S] Δ_i = dO_i·O_i, written
`
      : ""
  }
var<workgroup> kTile: array<vec4<f32>, KS * D4>;  // [KS, D4] this step's keys
var<workgroup> vTile: array<vec4<f32>, KS * D4>;  // [KS, D4] and values
${splitScratchWgsl(2 * K4, tiles)}
${loaderWgsl("loadQ", "q", D)}
${loaderWgsl("loadK", "k", D)}
${loaderWgsl("loadV", "v", D)}
${loaderWgsl("loadDO", "dOut", D)}
${softmax ? loaderWgsl("loadO", "out", D) : ""}
${storerWgsl("storeDQ", "dq", D, T)}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let S = params.seqLen;
  let causal = params.causal != 0u;
  let rowBase = wid.y * S;          // first row of this (batch, head)
  let row0 = wid.x * (WG / P);      // first query row of this workgroup
  let i = row0 + lid / P;           // this lane's query row
${laneSliceWgsl(tiles, D4)}
  var qi: array<vec4<f32>, ${W}>;   // slice of the scaled query row
  var doi: array<vec4<f32>, ${W}>;  // of its output gradient
  var dqi: array<vec4<f32>, ${W}>;  // of Σ_j dS_ij k_j
  if (i < S) {
${loadSliceWgsl("qi", "loadQ", "rowBase + i", "params.scale", tiles, D4, "    ")}
${loadSliceWgsl("doi", "loadDO", "rowBase + i", "", tiles, D4, "    ")}
  }
${
    softmax
      ? `  // Δ_i = dO_i·O_i over the row's lanes; lse_i as the forward pass kept it.
  var o: array<vec4<f32>, ${W}>;
  if (i < S) {
${loadSliceWgsl("o", "loadO", "rowBase + i", "", tiles, D4, "    ")}
  }
  var rowDelta = vec4<f32>(${
        Array.from({ length: W }, (_, w) => `dot(doi[${w}], o[${w}])`).join(" + ")
      }, 0.0, 0.0, 0.0);
${splitSumWgsl(["rowDelta"], tiles, "  ")}
  let deltaI = rowDelta.x;
  let lseI = select(0.0, lse[rowBase + min(i, S - 1u)], i < S);
  if (i < S && slot == 0u) { delta[rowBase + i] = deltaI; }
${
        quads.map((c) => `  let lse_${c} = vec4<f32>(lseI);\n  let delta_${c} = vec4<f32>(deltaI);`)
          .join("\n")
      }`
      : "  let b = params.bias;"
  }
  let rowEnd = select(S, min(S, i + 1u), causal);
  let keyEnd = select(S, min(S, row0 + WG / P), causal);
  for (var k0 = 0u; k0 < keyEnd; k0 += KS) {
${stageTilesWgsl("k0", "KS", [["kTile", "loadK"], ["vTile", "loadV"]])}
    workgroupBarrier();

${sliceDotsWgsl("s", "qi", "kTile", "0.0", K4, W)}
${sliceDotsWgsl("dp", "doi", "vTile", "0.0", K4, W)}
${splitSumWgsl([...quads.map((c) => `s_${c}`), ...quads.map((c) => `dp_${c}`)], tiles, "    ")}
${softmax ? "" : quads.map((c) => `    s_${c} += b;`).join("\n")}
${
    quads.map((c) =>
      `    let valid_${c} = k0 + vec4<u32>(${4 * c}u, ${4 * c + 1}u, ${4 * c + 2}u, ${
        4 * c + 3
      }u) < vec4<u32>(rowEnd);`
    ).join("\n")
  }
${_weights(activation, K4, false)}
${sliceAccumulateWgsl("dqi", "ds", "kTile", K4, W)}
  }

  if (i < S) {
${storeSliceWgsl("storeDQ", "dqi", "rowBase + i", "params.scale", tiles, D4, "    ")}
  }
}
`;
}

function _dkvWgsl(config: GpuBackwardConfig): string {
  const { activation, headDim: D, precision, tiles } = config;
  const T = precision === "f16" ? "f16" : "f32";
  const elem = D % 4 === 0 ? `vec4<${T}>` : T;
  const softmax = activation === "softmax";
  const D4 = Math.ceil(D / 4);
  const K4 = tiles.keys / 4;
  const quads = Array.from({ length: K4 }, (_, c) => c);
  const W = tiles.width;
  return `${_header(config)}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<${elem}>;     // [B,H,S,D]
@group(0) @binding(2) var<storage, read> k: array<${elem}>;     // [B,H,S,D]
@group(0) @binding(3) var<storage, read> v: array<${elem}>;     // [B,H,S,D]
@group(0) @binding(4) var<storage, read> dOut: array<${elem}>;  // [B,H,S,D]
@group(0) @binding(5) var<storage, read_write> dk: array<${elem}>;  // [B,H,S,D]
@group(0) @binding(6) var<storage, read_write> dv: array<${elem}>;  // [B,H,S,D]
${
    softmax
      ? `@group(0) @binding(7) var<storage, read> lse: array<f32>;    // [B,H,S] forward row logsumexp
@group(0) @binding(8) var<storage, read> delta: array<f32>;  // [B,H,S] Δ_i, from the dq kernel
`
      : ""
  }
var<workgroup> qTile: array<vec4<f32>, KS * D4>;   // [KS, D4] this step's queries
var<workgroup> doTile: array<vec4<f32>, KS * D4>;  // [KS, D4] and their output gradients
${
    softmax
      ? `var<workgroup> lseTile: array<f32, KS>;    // [KS] their lse
var<workgroup> deltaTile: array<f32, KS>;  // [KS] and Δ
`
      : ""
  }${splitScratchWgsl(2 * K4, tiles)}
${loaderWgsl("loadQ", "q", D)}
${loaderWgsl("loadK", "k", D)}
${loaderWgsl("loadV", "v", D)}
${loaderWgsl("loadDO", "dOut", D)}
${storerWgsl("storeDK", "dk", D, T)}
${storerWgsl("storeDV", "dv", D, T)}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let S = params.seqLen;
  let causal = params.causal != 0u;
  let rowBase = wid.y * S;          // first row of this (batch, head)
  let col0 = wid.x * (WG / P);      // first key row of this workgroup
  let j = col0 + lid / P;           // this lane's key row
${laneSliceWgsl(tiles, D4)}
  var kj: array<vec4<f32>, ${W}>;   // slice of the scaled key row
  var vj: array<vec4<f32>, ${W}>;   // of the value row
  var dkj: array<vec4<f32>, ${W}>;  // of Σ_i dS_ij q_i
  var dvj: array<vec4<f32>, ${W}>;  // of Σ_i p_ij dO_i
  if (j < S) {
${loadSliceWgsl("kj", "loadK", "rowBase + j", "params.scale", tiles, D4, "    ")}
${loadSliceWgsl("vj", "loadV", "rowBase + j", "", tiles, D4, "    ")}
  }
${softmax ? "" : "  let b = params.bias;"}
  // Queries that see key j: i < S, and i ≥ j if causal. The workgroup starts at the step
  // of its first key.
  let rowStart = select(0u, j, causal);
  let queryStart = select(0u, col0 / KS * KS, causal);
  for (var q0 = queryStart; q0 < S; q0 += KS) {
${stageTilesWgsl("q0", "KS", [["qTile", "loadQ"], ["doTile", "loadDO"]])}
${
    softmax
      ? `    if (lid < KS) {
      let row = min(q0 + lid, S - 1u);
      lseTile[lid] = lse[rowBase + row];
      deltaTile[lid] = delta[rowBase + row];
    }
`
      : ""
  }    workgroupBarrier();

${sliceDotsWgsl("s", "kj", "qTile", "0.0", K4, W)}
${sliceDotsWgsl("dp", "vj", "doTile", "0.0", K4, W)}
${splitSumWgsl([...quads.map((c) => `s_${c}`), ...quads.map((c) => `dp_${c}`)], tiles, "    ")}
${softmax ? "" : quads.map((c) => `    s_${c} += b;`).join("\n")}
${
    quads.map((c) => {
      const rows = `q0 + vec4<u32>(${4 * c}u, ${4 * c + 1}u, ${4 * c + 2}u, ${4 * c + 3}u)`;
      return `    let valid_${c} = (${rows} < vec4<u32>(S)) & (${rows} >= vec4<u32>(rowStart));`;
    }).join("\n")
  }
${
    softmax
      ? quads.map((c) => {
        const at = (t: string, n: number) => `${t}[${4 * c + n}u]`;
        const v4 = (t: string) => `vec4<f32>(${[0, 1, 2, 3].map((n) => at(t, n)).join(", ")})`;
        return `    let lse_${c} = ${v4("lseTile")};\n    let delta_${c} = ${v4("deltaTile")};`;
      }).join("\n")
      : ""
  }
${_weights(activation, K4, true)}
${sliceAccumulateWgsl("dvj", "p", "doTile", K4, W)}
${sliceAccumulateWgsl("dkj", "ds", "qTile", K4, W)}
  }

  if (j < S) {
${storeSliceWgsl("storeDK", "dkj", "rowBase + j", "params.scale", tiles, D4, "    ")}
${storeSliceWgsl("storeDV", "dvj", "rowBase + j", "", tiles, D4, "    ")}
  }
}
`;
}

/**
 * Generates the WGSL of one GPU backward kernel. Bindings as in the software
 * tiling (`fusedBackwardWgsl`):
 * - `dq`: 0 params, 1 q, 2 k, 3 v, 4 dOut, 5 dq; softmax adds 6 out, 7 lse,
 *   8 delta (written);
 * - `dkv`: 0 params, 1 q, 2 k, 3 v, 4 dOut, 5 dk, 6 dv; softmax adds 7 lse,
 *   8 delta (read).
 */
export function gpuBackwardWgsl(config: GpuBackwardConfig): string {
  return config.kernel === "dq" ? _dqWgsl(config) : _dkvWgsl(config);
}

/** Builds (or takes from the cache) the pipeline of a GPU backward kernel. */
export function gpuBackwardPipeline(
  device: GPUDevice,
  config: GpuBackwardConfig,
): Promise<GPUComputePipeline> {
  const label = gpuBackwardLabel(config);
  return getPipeline(device, {
    key: label,
    label,
    code: () => gpuBackwardWgsl(config),
    constants: { WG: config.tiles.lanes },
  });
}
