/**
 * Fused attention forward, GPU tiling: the kernel a GPU gets (and any adapter
 * with `tiling: "gpu"`). Built the way the fast WGSL flash attention kernels
 * are (ONNX Runtime's WebGPU `flash_attention.wgsl.template`, llama.cpp's
 * ggml-webgpu `flash_attn.wgsl`): one query row per lane, a compile-time key
 * step `KS`, the step's scores held in registers, and a bound on what a lane
 * holds.
 *
 * - A workgroup of `WG` lanes owns `WG / P` consecutive query rows of one
 *   (batch, head). Each row belongs to `P` consecutive lanes; each lane holds
 *   `W` vec4s of the row's scaled query and output accumulator (its slice of
 *   the head dim), so a lane holds at most 2·W·4 + KS floats of row state
 *   whatever D is. P = 1 up to D = 64, 2 at D = 128, 4 at D = 256.
 * - Per step, the `KS` keys and values are staged in workgroup memory. Each
 *   lane forms the partial dot products of its slice with the KS keys (KS/4
 *   vec4s in registers); a split row sums them over its P lanes with
 *   subgroup shuffles where the device has `subgroups`, else through a small
 *   exchange array in workgroup memory.
 * - softmax (FlashAttention-2's online softmax): the running max `m` rises
 *   to the step's max, the accumulator and running sum `l` are rescaled by
 *   `exp(m_old − m)` once per step, and `p = exp(s − m)` weights the values.
 *   The output is `acc / l`; the row logsumexp `m + ln l` is kept for the
 *   backward pass.
 * - sigmoid (FlashSigmoid): `p = σ(s + b)` weights the values directly: no
 *   row statistics, no rescaling.
 *
 * Storage is f32 or f16; loads convert to f32 and everything accumulates in
 * f32. Causal kernels stop at the last key the workgroup's rows can see.
 *
 * @module
 */

import type { Activation } from "./attention_options.ts";
import { getPipeline } from "./device.ts";
import {
  FUSED_PARAMS_WGSL,
  laneSliceWgsl,
  type LaneSplit,
  loaderWgsl,
  loadSliceWgsl,
  SIGMOID4_WGSL,
  sliceAccumulateWgsl,
  sliceDotsWgsl,
  splitScratchWgsl,
  splitSumWgsl,
  stageTilesWgsl,
  storerWgsl,
  storeSliceWgsl,
  SUBGROUPS_WGSL,
} from "./wgsl.ts";

/** Lanes per workgroup of the GPU kernels (the `WG` override). */
export const GPU_LANES = 64;
/** The largest key step: four vec4s of scores per lane, as ONNX Runtime's kernel keeps. */
const _MAX_STEP = 16;
/** Workgroup memory the kernels plan for: WebGPU's guaranteed minimum. */
const _BUDGET = 16384;

/** Tile configuration of a GPU-tiling kernel. */
export interface GpuTiles extends LaneSplit {
  /** Lanes per workgroup (`WG`); a workgroup owns `lanes / split` rows. */
  lanes: number;
  /** The compile-time step `KS`: rows staged and scored per step, a multiple of 4. */
  keys: number;
}

/**
 * Picks the lane split and key step of a GPU-tiling kernel: the smallest
 * power-of-two split of the head dim that leaves at most `maxWidth` vec4s
 * of each row vector per lane (16 forward, 8 in `dq` and `dkv`), and the
 * largest key step (≤ 16) whose `stagedVectors` staged head-dim tiles, plus
 * `statBytes` per staged row and, without subgroups, the exchange array of
 * `exchanged` vec4s per key quad, fit `storageBytes` (never more than 16 KiB).
 */
export function gpuTiles(
  headDim: number,
  maxWidth: number,
  stagedVectors: number,
  statBytes: number,
  exchanged: number,
  storageBytes: number,
  subgroups: boolean,
): GpuTiles {
  const D4 = Math.ceil(headDim / 4);
  let split = 1;
  while (Math.ceil(D4 / split) > maxWidth) split *= 2;
  const width = Math.ceil(D4 / split);
  const useSubgroups = subgroups && split > 1;
  const budget = Math.min(storageBytes, _BUDGET);
  const lanes = GPU_LANES;
  const bytes = (keys: number) =>
    gpuStorageBytes({ split, width, subgroups: useSubgroups, lanes, keys }, D4, stagedVectors, {
      statBytes,
      exchanged,
    });
  let keys = _MAX_STEP;
  while (keys > 4 && bytes(keys) > budget) keys -= 4;
  if (bytes(keys) > budget) {
    throw new RangeError(
      `workgroup memory of ${budget} bytes cannot hold four rows of head dim ${headDim}`,
    );
  }
  return { split, width, subgroups: useSubgroups, lanes, keys };
}

/** Workgroup memory (bytes) of a GPU-tiling kernel: staged tiles, row statistics, exchange array. */
export function gpuStorageBytes(
  tiles: GpuTiles,
  D4: number,
  stagedVectors: number,
  extra: { statBytes: number; exchanged: number },
): number {
  const staged = tiles.keys * (stagedVectors * D4 * 16 + extra.statBytes);
  const exchange = tiles.split > 1 && !tiles.subgroups
    ? tiles.lanes * extra.exchanged * (tiles.keys / 4) * 16
    : 0;
  return staged + exchange;
}

/** Tiles of the GPU forward kernel: q and the accumulator, at most 16 vec4s each per lane. */
export function gpuForwardTiles(
  headDim: number,
  storageBytes: number,
  subgroups: boolean,
): GpuTiles {
  return gpuTiles(headDim, 16, 2, 0, 1, storageBytes, subgroups);
}

/** Compile-time choices of a GPU forward kernel (each gives its own WGSL). */
export interface GpuForwardConfig {
  activation: Activation;
  headDim: number;
  precision: "f32" | "f16";
  tiles: GpuTiles;
}

/** Label of a GPU forward kernel, e.g. `attention.forward.softmax.d128.gpu.p2k16.sg`. */
export function gpuForwardLabel(config: GpuForwardConfig): string {
  const { split, keys, subgroups } = config.tiles;
  return `attention.forward.${config.activation}.d${config.headDim}.gpu.p${split}k${keys}` +
    (subgroups ? ".sg" : "") + (config.precision === "f16" ? ".f16" : "");
}

/**
 * Generates the WGSL of one GPU forward kernel. Runtime sizes come from the
 * uniform `params` (seqLen, scale, bias, causal); the head dim, lane split
 * and key step are compiled in (every loop over them unrolled, so the slices
 * and the step's scores live in registers); `WG` is an override.
 *
 * Bindings: 0 params, 1 q, 2 k, 3 v (`[B,H,S,D]`), 4 out (`[B,H,S,D]`),
 * 5 lse (`[B,H,S]` f32, softmax only).
 */
export function gpuForwardWgsl(config: GpuForwardConfig): string {
  const { activation, headDim: D, precision, tiles } = config;
  const T = precision === "f16" ? "f16" : "f32";
  const elem = D % 4 === 0 ? `vec4<${T}>` : T;
  const softmax = activation === "softmax";
  const D4 = Math.ceil(D / 4);
  const K4 = tiles.keys / 4;
  const quads = Array.from({ length: K4 }, (_, c) => c);
  const scores = quads.map((c) => `s_${c}`);
  const p = (c: number) => `p_${c}`;
  const keysOf = (c: number) =>
    `k0 + vec4<u32>(${4 * c}u, ${4 * c + 1}u, ${4 * c + 2}u, ${4 * c + 3}u)`;
  const stepSoftmax =
    `    // Online softmax: raise the running max to this step's, rescale once, weight by exp(s - m).
${
      quads.map((c) =>
        `    let sv_${c} = select(vec4<f32>(-3.0e38), s_${c}, ${keysOf(c)} < vec4<u32>(rowEnd));`
      )
        .join("\n")
    }
    var stepMax = ${quads.map((c) => `sv_${c}`).reduce((a, b) => `max(${a}, ${b})`)};
    let mNew = max(m, max(max(stepMax.x, stepMax.y), max(stepMax.z, stepMax.w)));
    let alpha = exp(m - mNew);
    m = mNew;
${
      quads.map((c) =>
        `    let ${p(c)} = select(vec4<f32>(0.0), exp(sv_${c} - m), ${
          keysOf(c)
        } < vec4<u32>(rowEnd));`
      ).join("\n")
    }
    let pSum = ${quads.map(p).join(" + ")};
    l = l * alpha + pSum.x + pSum.y + pSum.z + pSum.w;
${Array.from({ length: tiles.width }, (_, w) => `    acc[${w}] *= alpha;`).join("\n")}`;
  const stepSigmoid = `    // Sigmoid: each weight on its own, no row statistics.
${
    quads.map((c) =>
      `    let ${p(c)} = select(vec4<f32>(0.0), sigmoid4(s_${c} + b), ${
        keysOf(c)
      } < vec4<u32>(rowEnd));`
    ).join("\n")
  }`;
  return /* wgsl */ `// ${gpuForwardLabel(config)}
${precision === "f16" ? "enable f16;\n" : ""}${tiles.subgroups ? SUBGROUPS_WGSL : ""}
${FUSED_PARAMS_WGSL}

const D: u32 = ${D}u;    // head dim
const D4: u32 = ${D4}u;  // head dim in vec4s (the last one zero-padded)
const P: u32 = ${tiles.split}u;    // lanes per query row
const KS: u32 = ${tiles.keys}u;  // keys per step, scored in registers
override WG: u32 = ${GPU_LANES}u;  // lanes per workgroup; a workgroup owns WG / P query rows

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<${elem}>;   // [B,H,S,D]
@group(0) @binding(2) var<storage, read> k: array<${elem}>;   // [B,H,S,D]
@group(0) @binding(3) var<storage, read> v: array<${elem}>;   // [B,H,S,D]
@group(0) @binding(4) var<storage, read_write> out: array<${elem}>;  // [B,H,S,D]
${softmax ? "@group(0) @binding(5) var<storage, read_write> lse: array<f32>;  // [B,H,S]\n" : ""}
var<workgroup> kTile: array<vec4<f32>, KS * D4>;  // [KS, D4] this step's keys
var<workgroup> vTile: array<vec4<f32>, KS * D4>;  // [KS, D4] and values
${splitScratchWgsl(K4, tiles)}
${loaderWgsl("loadQ", "q", D)}
${loaderWgsl("loadK", "k", D)}
${loaderWgsl("loadV", "v", D)}
${storerWgsl("storeOut", "out", D, T)}
${softmax ? "" : SIGMOID4_WGSL}
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let S = params.seqLen;
  let causal = params.causal != 0u;
  let rowBase = wid.y * S;          // first row of this (batch, head)
  let row0 = wid.x * (WG / P);      // first query row of this workgroup
  let i = row0 + lid / P;           // this lane's query row
${laneSliceWgsl(tiles, D4)}
  var qi: array<vec4<f32>, ${tiles.width}>;   // this lane's slice of the scaled query row
  var acc: array<vec4<f32>, ${tiles.width}>;  // and of Σ_j p_ij v_j
  if (i < S) {
${loadSliceWgsl("qi", "loadQ", "rowBase + i", "params.scale", tiles, D4, "    ")}
  }
${
    softmax
      ? `  var m = -3.0e38;  // running row max (finite: WGSL has no portable -inf)
  var l = 0.0;      // running row sum of exp(s - m)`
      : "  let b = params.bias;"
  }
  // Row i sees keys j < rowEnd; the workgroup walks the keys any of its rows sees.
  let rowEnd = select(S, min(S, i + 1u), causal);
  let keyEnd = select(S, min(S, row0 + WG / P), causal);
  for (var k0 = 0u; k0 < keyEnd; k0 += KS) {
${stageTilesWgsl("k0", "KS", [["kTile", "loadK"], ["vTile", "loadV"]])}
    workgroupBarrier();

    // Scores of the KS keys: this lane's partial dot products, summed over the row's lanes.
${sliceDotsWgsl("s", "qi", "kTile", "0.0", K4, tiles.width)}
${splitSumWgsl(scores, tiles, "    ")}
${softmax ? stepSoftmax : stepSigmoid}
${sliceAccumulateWgsl("acc", "p", "vTile", K4, tiles.width)}
  }

  if (i < S) {
${
    softmax
      ? `    let inv = 1.0 / l;
${storeSliceWgsl("storeOut", "acc", "rowBase + i", "inv", tiles, D4, "    ")}
    if (slot == 0u) { lse[rowBase + i] = m + log(l); }`
      : storeSliceWgsl("storeOut", "acc", "rowBase + i", "", tiles, D4, "    ")
  }
  }
}
`;
}

/** Builds (or takes from the cache) the pipeline of a GPU forward kernel. */
export function gpuForwardPipeline(
  device: GPUDevice,
  config: GpuForwardConfig,
): Promise<GPUComputePipeline> {
  const label = gpuForwardLabel(config);
  return getPipeline(device, {
    key: label,
    label,
    code: () => gpuForwardWgsl(config),
    constants: { WG: config.tiles.lanes },
  });
}

/**
 * An upper bound on the loop iterations one invocation of a GPU-tiling
 * kernel runs at sequence length `seqLen`, as llvmpipe counts them (see
 * `SOFTWARE_LOOP_LIMIT`): per step, one pass of the step loop and the
 * staging loop (`keys·D4/lanes` passes and its exit test); the loops over
 * the step, the slice and the lanes are unrolled.
 */
export function gpuLoopIterations(headDim: number, tiles: GpuTiles, seqLen: number): number {
  const D4 = Math.ceil(headDim / 4);
  const perStep = 1 + Math.ceil(tiles.keys * D4 / tiles.lanes) + 1;
  return Math.ceil(seqLen / tiles.keys) * perStep + 1;
}
