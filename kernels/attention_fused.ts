/**
 * Fused tiled attention forward: one WGSL kernel family for softmax and
 * sigmoid that never writes the S×S score matrix to global memory.
 *
 * Each workgroup owns `WG·R` consecutive query rows of one (batch, head);
 * each of its `WG` invocations owns `R` of them, keeping their scaled query
 * vectors and output accumulators in registers. Key/value tiles of `BK` rows
 * are staged in workgroup memory and shared by the whole workgroup.
 *
 * - softmax (FlashAttention-2): per key tile, the row's scores go to a
 *   workgroup scratch row, the running max `m` is raised to the tile's max,
 *   the accumulator and running sum `l` are rescaled by `exp(m_old − m)` once
 *   per tile, then `p = exp(s − m)` weights the values. The output is
 *   `acc / l` and the row logsumexp `m + ln l` is kept for the backward pass.
 * - sigmoid (FlashSigmoid): `p = σ(s + b)` weights the values directly: no
 *   row statistics, no rescaling, no second pass over the tile, no scratch.
 *
 * Causal kernels stop at the last key tile the workgroup's rows can see, so
 * fully masked tiles are never loaded.
 *
 * @module
 */

import type { Activation } from "./attention_options.ts";
import { getPipeline } from "./device.ts";
import { gpuForwardTiles } from "./attention_fused_gpu.ts";
import {
  accumulateWgsl,
  directRead,
  dotsWgsl,
  each,
  FUSED_PARAMS_WGSL,
  loaderWgsl,
  rowEndWgsl,
  type RowRead,
  SIGMOID4_WGSL,
  SOFTWARE_PARAMS_READ_WGSL,
  SOFTWARE_PARAMS_WGSL,
  stagedRead,
  stageTilesWgsl,
  storerWgsl,
} from "./wgsl.ts";

/** Compile-time choices of a fused forward kernel (each gives its own WGSL). */
export interface FusedForwardConfig {
  activation: Activation;
  headDim: number;
  precision: "f32" | "f16";
  /** Query rows each invocation owns (R). Compiled in: the rows' state is unrolled. */
  rowsPerLane: number;
  /**
   * When set, keys and values are read straight from storage in blocks of
   * this many rows (compiled in), with no workgroup memory and no barrier;
   * when absent they are staged in workgroup tiles of `BK` rows. See
   * {@linkcode FusedTiles.direct}.
   */
  directKeys?: number;
}

/** Tile sizes of a fused kernel. */
export interface FusedTiles {
  /** Invocations per workgroup (the `WG` override). */
  lanes: number;
  /** Query rows per invocation (R, compiled in). A workgroup covers `lanes · rowsPerLane` rows. */
  rowsPerLane: number;
  /** Key/value rows staged in workgroup memory per step (the `BK` override), a multiple of 4. */
  keys: number;
  /**
   * Whether softmax keeps the tile's scores in workgroup scratch (`sTile`):
   * the software tiling does; the GPU tiling keeps them in registers.
   * Absent means true.
   */
  scoreScratch?: boolean;
  /**
   * Software tiling only: read keys and values straight from storage instead
   * of staging them in workgroup memory (`keys` is then the block the loops
   * take at a time; softmax keeps its scores in a private array). Absent
   * means false.
   */
  direct?: boolean;
}

/**
 * Keys a direct-read software kernel takes per block (compiled in): a
 * softmax rescale per 32 keys, and 32·R/4 vec4s of private score scratch.
 */
export const DIRECT_KEYS = 32;

/**
 * Whether the software tiling on `device` reads keys and values straight
 * from storage rather than staging them in workgroup memory: on a software
 * adapter without `shader-f16`, which among Deno's adapters is Mesa's
 * llvmpipe reached through OpenGL.
 *
 * Why: WebGPU zero-fills workgroup memory before a shader runs. On Vulkan
 * lavapipe the driver does it; on OpenGL naga writes the fill into the
 * shader, one store per vec4 of the tiles, and llvmpipe compiles each of
 * them, under the invocation mask, into code that its coroutine splitting
 * at every barrier then has to carry. Measured cold on this project's 2-core
 * machine (`bench/compile_profile.ts --workload fused`), the demo's four
 * fused kernels at D = 64: OpenGL 528 s staged, 141 s direct; Vulkan 73 s
 * staged, 108 s direct. A CPU adapter's workgroup memory is ordinary cached
 * memory, so staging saves no reads there: warm, direct runs as fast as
 * staged on OpenGL and within a few percent on Vulkan.
 */
export function directSoftwareReads(device: GPUDevice): boolean {
  return !device.features.has("shader-f16");
}

/** Upper bound on the key tile; past it more workgroup memory buys nothing. */
const _MAX_KEYS = 64;
/** Workgroup memory the kernels plan for: WebGPU's guaranteed minimum, never more. */
export const FUSED_STORAGE_BUDGET = 16384;

/**
 * Picks the tile sizes for head dim `headDim` so that the K and V tiles (and,
 * for softmax, the score scratch) fit `storageBytes` of workgroup memory.
 *
 * With `software` false this describes the GPU tiling's forward kernel
 * (`attention_fused_gpu.ts`, see `gpuForwardTiles`) in these terms, for the
 * operation-count model: `lanes` is the rows a workgroup owns, one row per
 * lane group, and `keys` its compile-time key step.
 *
 * On a software adapter an invocation is one lane of a CPU SIMD register and
 * every read of workgroup memory is a slow per-lane load, so each invocation
 * owns R rows (16 lanes × R rows), and one read of a staged key or value
 * feeds R rows' multiply-adds. R is 8 up to D = 128 and 2 above: the unrolled
 * code grows with R·D, and so does compile time. Measured on lavapipe, B=1
 * H=4 S=1024: at D = 64, R = 1 runs at 2 GFLOP/s, R = 4 at 6, R = 8 at 13,
 * R = 16 at 17 but takes 23 s to compile; at D = 128, R = 4 at 6.5 and R = 8
 * at 10, with 30–40 s to compile (once: Mesa caches compiled shaders on disk).
 *
 * With `direct` (software only; see {@linkcode directSoftwareReads}) the
 * kernel reads keys and values straight from storage, `DIRECT_KEYS` at a
 * time, with the same R.
 */
export function fusedTiles(
  activation: Activation,
  headDim: number,
  storageBytes: number,
  software: boolean,
  direct = false,
): FusedTiles {
  if (!software) {
    const gpu = gpuForwardTiles(headDim, storageBytes, false);
    return { lanes: gpu.lanes / gpu.split, rowsPerLane: 1, keys: gpu.keys, scoreScratch: false };
  }
  const d4 = Math.ceil(headDim / 4);
  const lanes = 16;
  const rowsPerLane = d4 <= 32 ? 8 : 2;
  if (direct) return { lanes, rowsPerLane, keys: DIRECT_KEYS, direct };
  // Workgroup memory grows linearly with the key tile: bytes per key, from the storage formula.
  const bytesPerKey = fusedStorageBytes(activation, headDim, { lanes, rowsPerLane, keys: 1 });
  return { lanes, rowsPerLane, keys: stagedRows(bytesPerKey, storageBytes, headDim) };
}

/**
 * The most rows (at most 64, a multiple of 4: the inner loops take rows four
 * at a time) of `bytesPerRow` each that fit the workgroup memory the kernels
 * plan for: `storageBytes`, never more than 16 KiB.
 */
export function stagedRows(bytesPerRow: number, storageBytes: number, headDim: number): number {
  const budget = Math.min(storageBytes, FUSED_STORAGE_BUDGET);
  const rows = Math.min(_MAX_KEYS, Math.floor(budget / bytesPerRow / 4) * 4);
  if (rows < 4) {
    throw new RangeError(
      `workgroup memory of ${budget} bytes cannot hold four rows of head dim ${headDim}`,
    );
  }
  return rows;
}

/** Workgroup memory (bytes) a fused kernel with these tiles uses. */
export function fusedStorageBytes(
  activation: Activation,
  headDim: number,
  tiles: FusedTiles,
): number {
  if (tiles.direct) return 0;
  const d4 = Math.ceil(headDim / 4);
  const scores = activation === "softmax" ? tiles.keys * tiles.lanes * tiles.rowsPerLane * 4 : 0;
  return 2 * tiles.keys * d4 * 16 + scores;
}

/**
 * WGSL: for each of the R rows, `s4_r` = the scores of keys j..j+3 of the
 * staged tile (plus `init`) and `valid_r` = which of them row r may see.
 */
function _scores(init: string, D4: number, R: number, kRead: RowRead): string {
  return `${dotsWgsl("s4", "qi", kRead, init, D4, R)}
      let keys4 = vec4<u32>(j, j + 1u, j + 2u, j + 3u);
${each(R, (r) => `let valid_${r} = keys4 < vec4<u32>(rowEnd[${r}]);`, "      ")}`;
}

/**
 * Softmax over one block of keys: scores to scratch, raise the max, rescale
 * once, accumulate. The scratch is a workgroup array (`sTile`, a slot per
 * invocation) or, for direct reads, a private one (`sLocal`).
 */
function _softmaxTile(D4: number, R: number, direct: boolean): string {
  const slot = (r: number) =>
    direct ? `sLocal[(j >> 2u) * ${R}u + ${r}u]` : `sTile[((j >> 2u) * ${R}u + ${r}u) * WG + lid]`;
  const [kRead, vRead] = _reads(direct);
  return `    var tileMax = m;
    for (var j = 0u; j < jEnd; j += 4u) {
${_scores("0.0", D4, R, kRead)}
${
    each(R, (r) =>
      `{
        let sv = select(vec4<f32>(-3.0e38), s4_${r}, valid_${r});
        ${slot(r)} = sv;
        tileMax[${r}] = max(tileMax[${r}], max(max(sv.x, sv.y), max(sv.z, sv.w)));
      }`, "      ")
  }
    }
    // Rescale what was accumulated against the old max, once per tile.
${
    each(R, (r) =>
      `{
      let alpha = exp(m[${r}] - tileMax[${r}]);
      m[${r}] = tileMax[${r}];
      l[${r}] *= alpha;
${each(D4, (d) => `acc[${r}][${d}] *= alpha;`, "      ")}
    }`, "    ")
  }
    for (var j = 0u; j < jEnd; j += 4u) {
      let keys4 = vec4<u32>(j, j + 1u, j + 2u, j + 3u);
${
    each(R, (r) =>
      `let p4_${r} = select(vec4<f32>(0.0), exp(${
        slot(r)
      } - m[${r}]), keys4 < vec4<u32>(rowEnd[${r}]));
      l[${r}] += p4_${r}.x + p4_${r}.y + p4_${r}.z + p4_${r}.w;`, "      ")
  }
${accumulateWgsl("acc", "p4", vRead, D4, R)}
    }`;
}

/** Sigmoid over one block of keys: one pass, no row statistics. */
function _sigmoidTile(D4: number, R: number, direct: boolean): string {
  const [kRead, vRead] = _reads(direct);
  return `    for (var j = 0u; j < jEnd; j += 4u) {
${_scores("b", D4, R, kRead)}
${each(R, (r) => `let p4_${r} = select(vec4<f32>(0.0), sigmoid4(s4_${r}), valid_${r});`, "      ")}
${accumulateWgsl("acc", "p4", vRead, D4, R)}
    }`;
}

/** How the loops read keys and values: from the workgroup tiles, or straight from storage. */
function _reads(direct: boolean): [RowRead, RowRead] {
  return direct
    ? [directRead("loadK", "k0"), directRead("loadV", "k0")]
    : [stagedRead("kTile"), stagedRead("vTile")];
}

/**
 * Generates the WGSL of one fused forward kernel. Runtime sizes come from the
 * uniform `params` (seqLen, scale, bias), so one pipeline serves every
 * sequence length and batch; `WG` (invocations) and `BK` (staged keys) are
 * override constants; the head dim and rows per invocation are compiled in,
 * with every loop over them unrolled so that the rows' query vectors and
 * accumulators can live in registers.
 *
 * Bindings: 0 params, 1 q, 2 k, 3 v (`[B,H,S,D]`), 4 out (`[B,H,S,D]`),
 * 5 lse (`[B,H,S]` f32, softmax only).
 */
export function fusedForwardWgsl(config: FusedForwardConfig): string {
  const { activation, headDim: D, precision, rowsPerLane: R } = config;
  const T = precision === "f16" ? "f16" : "f32";
  const elem = D % 4 === 0 ? `vec4<${T}>` : T;
  const softmax = activation === "softmax";
  const D4 = Math.ceil(D / 4);
  const direct = config.directKeys !== undefined;
  const keyBlock = direct
    ? `const BK: u32 = ${config.directKeys}u;  // keys per block, read straight from storage`
    : "override BK: u32 = 32u;  // keys per staged tile, a multiple of 4";
  const tiles = direct ? "" : `var<workgroup> kTile: array<vec4<f32>, BK * D4>;  // [BK, D4]
var<workgroup> vTile: array<vec4<f32>, BK * D4>;  // [BK, D4]
${
    softmax
      ? "var<workgroup> sTile: array<vec4<f32>, BK / 4u * R * WG>;  // [BK/4, R, WG] this tile's scores\n"
      : ""
  }`;
  return /* wgsl */ `// ${fusedForwardLabel(config)}
${precision === "f16" ? "enable f16;\n" : ""}
${FUSED_PARAMS_WGSL}

const D: u32 = ${D}u;    // head dim
const D4: u32 = ${D4}u;  // head dim in vec4s (the last one zero-padded)
const R: u32 = ${R}u;    // query rows per invocation
override WG: u32 = 16u;  // invocations per workgroup; a workgroup owns WG·R query rows
${keyBlock}

${SOFTWARE_PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> q: array<${elem}>;   // [B,H,S,D]
@group(0) @binding(2) var<storage, read> k: array<${elem}>;   // [B,H,S,D]
@group(0) @binding(3) var<storage, read> v: array<${elem}>;   // [B,H,S,D]
@group(0) @binding(4) var<storage, read_write> out: array<${elem}>;  // [B,H,S,D]
${softmax ? "@group(0) @binding(5) var<storage, read_write> lse: array<f32>;  // [B,H,S]\n" : ""}
${tiles}
${loaderWgsl("loadQ", "q", D)}
${loaderWgsl("loadK", "k", D)}
${loaderWgsl("loadV", "v", D)}
${storerWgsl("storeOut", "out", D, T)}
${softmax ? "" : SIGMOID4_WGSL}
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
${SOFTWARE_PARAMS_READ_WGSL}
  let S = params.seqLen;
  let causal = params.causal != 0u;
  let rowBase = wid.y * S;        // first row of this (batch, head)
  let row0 = wid.x * WG * R;      // first query row of this workgroup
  // This invocation's rows: i[r] = row0 + r·WG + lid.
  var i: array<u32, R>;
  var qi: array<array<vec4<f32>, D4>, R>;   // scaled query rows
  var acc: array<array<vec4<f32>, D4>, R>;  // Σ_j p_ij v_j
${
    each(
      R,
      (r) =>
        `i[${r}] = row0 + ${r}u * WG + lid;
  if (i[${r}] < S) {
${each(D4, (d) => `qi[${r}][${d}] = params.scale * loadQ(rowBase + i[${r}], ${d}u);`, "    ")}
  }`,
      "  ",
    )
  }
${
    softmax
      ? `  var m: array<f32, R>;  // running row max (finite: WGSL has no portable -inf)
  var l: array<f32, R>;  // running row sum of exp(s - m)
${each(R, (r) => `m[${r}] = -3.0e38;`, "  ")}`
      : "  let b = params.bias;"
  }

  // Keys this workgroup can see: all of them, or up to its last row if causal.
  let keyEnd = select(S, min(S, row0 + WG * R), causal);
  for (var k0 = 0u; k0 < keyEnd; k0 += BK) {
${
    direct
      ? softmax
        ? "    var sLocal: array<vec4<f32>, BK / 4u * R>;  // [BK/4, R] this block's scores"
        : ""
      : `${stageTilesWgsl("k0", "BK", [["kTile", "loadK"], ["vTile", "loadV"]])}
    workgroupBarrier();`
  }

    // The loops take keys four at a time (one vec4 of scores per row). Their
    // bound jEnd is the same for the whole workgroup; row r masks the keys it
    // must not see, j ≥ rowEnd[r], to a weight of exactly 0.
    let jEnd = min(BK, keyEnd - k0);
${rowEndWgsl(R)}
${softmax ? _softmaxTile(D4, R, direct) : _sigmoidTile(D4, R, direct)}
  }

${
    each(
      R,
      (r) =>
        `if (i[${r}] < S) {
${
          softmax
            ? `    let inv = 1.0 / l[${r}];
${each(D4, (d) => `storeOut(rowBase + i[${r}], ${d}u, acc[${r}][${d}] * inv);`, "    ")}
    lse[rowBase + i[${r}]] = m[${r}] + log(l[${r}]);`
            : each(D4, (d) => `storeOut(rowBase + i[${r}], ${d}u, acc[${r}][${d}]);`, "    ")
        }
  }`,
      "  ",
    )
  }
}
`;
}

/** Label of a fused forward kernel, e.g. `attention.forward.sigmoid.d64.r8`. */
export function fusedForwardLabel(config: FusedForwardConfig): string {
  return `attention.forward.${config.activation}.d${config.headDim}` +
    `.r${config.rowsPerLane}` +
    (config.directKeys === undefined ? "" : `.direct${config.directKeys}`) +
    (config.precision === "f16" ? ".f16" : "");
}

/** Builds (or takes from the cache) the pipeline of a fused forward kernel. */
export function fusedForwardPipeline(
  device: GPUDevice,
  config: Omit<FusedForwardConfig, "rowsPerLane">,
  tiles: FusedTiles,
): Promise<GPUComputePipeline> {
  const full = {
    ...config,
    rowsPerLane: tiles.rowsPerLane,
    directKeys: tiles.direct ? tiles.keys : undefined,
  };
  const label = fusedForwardLabel(full);
  return getPipeline(device, {
    key: label,
    label,
    code: () => fusedForwardWgsl(full),
    constants: tiles.direct ? { WG: tiles.lanes } : { WG: tiles.lanes, BK: tiles.keys },
  });
}

/**
 * Mesa's llvmpipe (the software adapter, Vulkan or OpenGL) stops a shader
 * invocation after this many loop iterations in all, across every loop of
 * the shader: its guard against endless shaders. Past it a kernel silently
 * skips work, so the plans refuse shapes that would need more.
 */
export const SOFTWARE_LOOP_LIMIT = 65535;

/**
 * An upper bound on the loop iterations one invocation of a fused kernel
 * runs at sequence length `seqLen`, as llvmpipe counts them: every pass
 * through a loop, plus one for each time a loop is entered (its final exit
 * test). Per staged tile of `tiles.keys` rows: one step of the tile loop,
 * the staging loop (`keys·D4/lanes` steps), the loops over the tile four
 * rows at a time (two for softmax forward), and for the `dkv` kernel the
 * staging of lse and Δ (a loop whose every step runs two loops of four;
 * counted for both activations, as the kernel serves both).
 */
export function fusedLoopIterations(
  kernel: "forward" | "dq" | "dkv",
  activation: Activation,
  headDim: number,
  tiles: FusedTiles,
  seqLen: number,
): number {
  const d4 = Math.ceil(headDim / 4);
  const loop = (steps: number) => steps + 1;
  const passes = kernel === "forward" && activation === "softmax" ? 2 : 1;
  const statSteps = Math.ceil(tiles.keys / 4 / tiles.lanes);
  // The dkv kernel serves both activations; sigmoid skips the staging at run time, counted anyway.
  const stats = kernel === "dkv" ? loop(statSteps) + statSteps * 2 * loop(4) : 0;
  // Direct reads stage nothing: no staging loops.
  const staging = tiles.direct ? 0 : loop(Math.ceil(tiles.keys * d4 / tiles.lanes)) + stats;
  const perTile = 1 + staging + passes * loop(tiles.keys / 4);
  return Math.ceil(seqLen / tiles.keys) * perTile + 1;
}
