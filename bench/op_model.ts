/**
 * An operation-count model of the attention kernels, forward and backward:
 * what each kernel does per score (one query–key pair), and the speed ratio
 * that predicts.
 *
 * Counts come from the kernels' WGSL (kernels/attention_fused.ts,
 * kernels/attention_fused_backward.ts and kernels/attention_unfused.ts; the
 * GPU tiling's kernels, attention_fused_gpu*.ts, as `fusedTiles(…, false)`
 * describes them: one row per lane group, a step of `keys` keys, no score
 * scratch; the exchange of split rows' partial dots without subgroups is
 * not modelled). Costs are in "FMA equivalents" and differ
 * by hardware, so the model takes them as a parameter:
 *
 * - `SOFTWARE_COSTS`: an x86 CPU running the shader as 8-wide AVX2 code
 *   (Mesa llvmpipe/lavapipe). `exp` is a polynomial of about a dozen vector
 *   instructions; a division's reciprocal throughput is about ten FMAs'.
 *   A float read from workgroup memory is a per-lane scalar load, about 8
 *   instructions for 8 lanes. These are assumptions from the instruction
 *   sequences, not measurements.
 * - `GPU_COSTS`: these WGSL kernels on an NVIDIA H100-class GPU, where every
 *   FMA runs on the FP32 units (WGSL has no tensor-core matmul). Per SM and
 *   clock an H100 issues 128 FP32 FMAs but 16 special-function ops, so an
 *   `exp` costs ~8 FMAs and a division (reciprocal plus Newton steps) ~12.
 *   HBM moves 3.35 TB/s against 33.5 T FP32 FMA/s, so a global float costs
 *   ~40. Shared memory moves 128 B per clock per SM: 4 FMAs for a float that
 *   each lane reads from its own address (softmax's score scratch), 1/8 for a
 *   staged key read that the whole warp shares; the model uses 1 for both.
 *
 * The point the model makes: both kernels spend `2·D` FMAs per score, so the
 * non-matmul work that sigmoid removes (row max, rescaling, the running sum,
 * the score scratch) and adds (one division) matters only where it is costly
 * next to the FMAs: small head dims, and hardware whose FMA units far outrun
 * its exp units (tensor cores: FlashAttention-3 quotes 989 TFLOP/s of matmul
 * against 3.9 TFLOP/s of exp on an H100 SXM5, which is what FlashSigmoid's
 * reported gain rests on).
 *
 * Backward, the fused kernels recompute the weights twice (once per kernel:
 * WGSL has no float atomics, so dQ and dK/dV are formed by separate
 * kernels) and spend `7·D` FMAs per score against the unfused path's `5·D`;
 * what the unfused path spends instead is S×S round trips through global
 * memory (14 floats per score for softmax, 10 for sigmoid). Sigmoid's
 * backward removes only softmax's row term `Δ_i` (O(S·D) work, nothing per
 * score) and adds a division per score in each kernel, so on FP32 units the
 * model expects the two activations to be close, sigmoid slightly behind.
 *
 * @module
 */

import { directSoftwareReads, type FusedTiles, fusedTiles } from "../kernels/attention_fused.ts";
import { fusedBackwardTiles } from "../kernels/attention_fused_backward.ts";

/**
 * The tiles the model takes for `pass` at head dim `headDim` on `device`:
 * those of the forward kernel, or of the `dq` kernel for the backward pass
 * (both backward kernels own the same rows per invocation), in the tiling
 * `software` names (the software one with direct reads where
 * `directSoftwareReads` says so, as the plans run it).
 */
export function modelledTiles(
  device: GPUDevice,
  pass: ModelledPass,
  headDim: number,
  software: boolean,
): FusedTiles {
  const storage = device.limits.maxComputeWorkgroupStorageSize;
  const direct = software && directSoftwareReads(device);
  return pass === "forward"
    ? fusedTiles("softmax", headDim, storage, software, direct)
    : fusedBackwardTiles("dq", "softmax", headDim, storage, software, direct);
}

/** Per-score operation counts of one kernel. */
export interface OpCounts {
  /**
   * Multiply-adds: forward `2·D` (QKᵀ and P·V) plus softmax's accumulator
   * rescaling amortised over the tile; backward `7·D` fused, `5·D` unfused.
   */
  fma: number;
  /** Calls to `exp`. */
  exp: number;
  /** Divisions. */
  div: number;
  /** Other arithmetic: max, subtract, add, compare/select, abs. */
  alu: number;
  /** Row statistics (running max, running sum, rescale) part of `alu + fma`, for display. */
  rowStats: number;
  /** Global-memory floats read or written per score (the S×S scores round trips). */
  globalFloats: number;
  /** Workgroup-memory floats read or written per score (staged K/V, softmax's score scratch). */
  workgroupFloats: number;
}

/** Cost of each operation in FMA equivalents. */
export interface OpCosts {
  /** One multiply-add (the unit). */
  fma: number;
  /** One `exp`. */
  exp: number;
  /** One division. */
  div: number;
  /** One other arithmetic op. */
  alu: number;
  /** One float moved to or from global memory. */
  globalFloat: number;
  /** One float moved to or from workgroup memory. */
  workgroupFloat: number;
}

/** An 8-wide AVX2 CPU (software adapter); assumed weights, see the module doc. */
export const SOFTWARE_COSTS: OpCosts = {
  fma: 1,
  exp: 12,
  div: 10,
  alu: 1,
  globalFloat: 1,
  workgroupFloat: 8,
};

/** WGSL on an H100-class GPU: FP32 units, special functions, HBM (see the module doc). */
export const GPU_COSTS: OpCosts = {
  fma: 1,
  exp: 8,
  div: 12,
  alu: 1,
  globalFloat: 40,
  workgroupFloat: 1,
};

/** The four forward kernels the benchmarks compare, fused softmax (the baseline) first. */
export const KERNELS: readonly {
  name: ModelledKernel;
  implementation: "fused" | "unfused";
  activation: "softmax" | "sigmoid";
}[] = [
  { name: "fused softmax", implementation: "fused", activation: "softmax" },
  { name: "fused sigmoid", implementation: "fused", activation: "sigmoid" },
  { name: "unfused softmax", implementation: "unfused", activation: "softmax" },
  { name: "unfused sigmoid", implementation: "unfused", activation: "sigmoid" },
];

/** The kernels the model covers. */
export type ModelledKernel =
  | "fused softmax"
  | "fused sigmoid"
  | "unfused softmax"
  | "unfused sigmoid";

/** The pass a count is for. */
export type ModelledPass = "forward" | "backward";

/**
 * Per-score counts for head dim `D` and the fused kernels' tiles: softmax
 * rescales once per key tile (amortised over `keys` scores), and each staged
 * float read serves `rowsPerLane` rows. For the backward pass `tiles` are
 * those of the backward kernels (both own `rowsPerLane` rows per invocation).
 * With `tiles.direct` the same reads come straight from storage (on a CPU,
 * its cache, which the model prices like workgroup memory) and the tiles'
 * writes are gone.
 */
export function opCounts(
  kernel: ModelledKernel,
  D: number,
  tiles: FusedTiles,
  pass: ModelledPass = "forward",
): OpCounts {
  if (pass === "backward") return _backwardCounts(kernel, D, tiles);
  const BK = tiles.keys;
  const D4 = Math.ceil(D / 4) * 4; // the kernels pad D to a multiple of 4
  // Staged K and V: read once per R rows, written once per workgroup of lanes·R rows (not
  // at all when read directly).
  const writes = tiles.direct ? 0 : (2 * D4) / (tiles.lanes * tiles.rowsPerLane);
  const staged = (2 * D4) / tiles.rowsPerLane + writes;
  // The unfused matmul's 16×8 register block reads (16 + 8) / (16·8) tile floats per FMA.
  const matmulStaged = 2 * D * (24 / 128);
  switch (kernel) {
    case "fused softmax": {
      // pass 1: mask select, max into the tile max; pass 2: mask compare and
      // select, s − m, l += p (the scratch store and load are workgroup
      // floats); per tile: exp(m_old − m), l·α and D multiplies of the accumulator.
      const rescale = (D4 + 1) / BK;
      return {
        fma: 2 * D4 + rescale,
        exp: 1 + 1 / BK,
        div: 0,
        alu: 7,
        rowStats: 7 + rescale + 1 / BK,
        globalFloats: 0,
        // + the score's store to and load from scratch (the software tiling; the GPU tiling
        // keeps a step's scores in registers)
        workgroupFloats: staged + (tiles.scoreScratch === false ? 0 : 2),
      };
    }
    case "fused sigmoid":
      // |x|, x ≥ 0 and its select, 1 + e, the mask compare and select (b is
      // the scores' starting value, free); one division.
      return {
        fma: 2 * D4,
        exp: 1,
        div: 1,
        alu: 6,
        rowStats: 0,
        globalFloats: 0,
        workgroupFloats: staged,
      };
    case "unfused softmax":
      // QKᵀ writes s; the row kernel reads it three times (max, sum, normalise),
      // computes exp twice, writes p; P·V reads p.
      return {
        fma: 2 * D,
        exp: 2,
        div: 0,
        alu: 4,
        rowStats: 4,
        globalFloats: 6,
        workgroupFloats: matmulStaged,
      };
    case "unfused sigmoid":
      // QKᵀ writes s; σ reads and writes it; P·V reads p.
      return {
        fma: 2 * D,
        exp: 1,
        div: 1,
        alu: 4,
        rowStats: 0,
        globalFloats: 4,
        workgroupFloats: matmulStaged,
      };
  }
}

/**
 * Backward per-score counts. Fused (two kernels, see the module doc):
 * - `dq`: s and dP dots and the dQ update, `3·D` FMAs; staged K read twice
 *   (dot and update) and V once;
 * - `dkv`: s and dP dots and the dK and dV updates, `4·D` FMAs; staged Q and
 *   dO read twice each;
 * - softmax per kernel: `exp(s − lse)`, the mask compare and select,
 *   `dP − Δ` and `p·(…)`: 5 ALU; sigmoid per kernel: `|s|`, `1 + e`, one
 *   division, `dP·e·inv·inv` and the mask: 7 in `dq`, 11 in `dkv` (which
 *   also forms `p` for dV).
 * Unfused: five matmuls (QKᵀ again, Pᵀ·dO, dO·Vᵀ, dS·K, dSᵀ·Q) with the
 * forward activation in between and the dS kernel (softmax: a row reduction
 * for Δ, reading P and dP twice).
 */
function _backwardCounts(kernel: ModelledKernel, D: number, tiles: FusedTiles): OpCounts {
  const D4 = Math.ceil(D / 4) * 4;
  const R = tiles.rowsPerLane;
  // Staged reads (7·D per R rows) and the tiles' writes (two per kernel per workgroup of rows;
  // none when read directly).
  const staged = (7 * D4) / R + (tiles.direct ? 0 : (4 * D4) / (tiles.lanes * R));
  const matmulStaged = 5 * D * (24 / 128);
  switch (kernel) {
    case "fused softmax":
      return {
        fma: 7 * D4,
        exp: 2,
        div: 0,
        alu: 10,
        rowStats: 4, // the two lse subtractions and the two Δ subtractions
        globalFloats: 0,
        workgroupFloats: staged + 2 / R, // + lse and Δ per four staged queries, as vec4s
      };
    case "fused sigmoid":
      return {
        fma: 7 * D4,
        exp: 2,
        div: 2,
        alu: 18,
        rowStats: 0,
        globalFloats: 0,
        workgroupFloats: staged,
      };
    case "unfused softmax":
      // QKᵀ writes s (1); softmax reads 3, writes 1; Pᵀ·dO reads P (1); dO·Vᵀ writes dP (1);
      // dS reads P and dP twice and writes dS (5); dS·K and dSᵀ·Q read dS (2).
      return {
        fma: 5 * D,
        exp: 2,
        div: 0,
        alu: 7,
        rowStats: 4 + 2,
        globalFloats: 14,
        workgroupFloats: matmulStaged,
      };
    case "unfused sigmoid":
      // QKᵀ writes s (1); σ reads and writes (2); Pᵀ·dO (1); dO·Vᵀ (1); dS reads P, dP and
      // writes dS (3); dS·K and dSᵀ·Q (2).
      return {
        fma: 5 * D,
        exp: 1,
        div: 1,
        alu: 7,
        rowStats: 0,
        globalFloats: 10,
        workgroupFloats: matmulStaged,
      };
  }
}

/** Predicted cost per score, in FMA equivalents. */
export function opCost(counts: OpCounts, costs: OpCosts): number {
  return counts.fma * costs.fma + counts.exp * costs.exp + counts.div * costs.div +
    counts.alu * costs.alu + counts.globalFloats * costs.globalFloat +
    counts.workgroupFloats * costs.workgroupFloat;
}

/** Predicted speed ratio `time(baseline) / time(kernel)` (> 1: kernel is faster). */
export function predictedSpeedup(
  kernel: ModelledKernel,
  baseline: ModelledKernel,
  D: number,
  tiles: FusedTiles,
  costs: OpCosts,
  pass: ModelledPass = "forward",
): number {
  return opCost(opCounts(baseline, D, tiles, pass), costs) /
    opCost(opCounts(kernel, D, tiles, pass), costs);
}

/**
 * The model as a Markdown table: per head dim and kernel, the per-score
 * counts, the cost, and the speed ratios it predicts against fused softmax.
 */
export function opModelTable(
  headDims: number[],
  tilesFor: (headDim: number) => FusedTiles,
  costs: OpCosts,
  pass: ModelledPass = "forward",
): string {
  const rows = [
    "| D | kernel | FMA | exp | div | other ALU | row stats | workgroup floats | global floats | cost | predicted speed vs fused softmax |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const D of headDims) {
    const tiles = tilesFor(D);
    for (const { name: kernel } of KERNELS) {
      const c = opCounts(kernel, D, tiles, pass);
      const ratio = predictedSpeedup(kernel, "fused softmax", D, tiles, costs, pass);
      rows.push(
        `| ${D} | ${kernel} | ${c.fma.toFixed(1)} | ${c.exp.toFixed(2)} | ${c.div} | ${c.alu} | ` +
          `${c.rowStats.toFixed(2)} | ${c.workgroupFloats.toFixed(1)} | ${c.globalFloats} | ` +
          `${opCost(c, costs).toFixed(0)} | ${ratio.toFixed(2)}× |`,
      );
    }
  }
  return rows.join("\n");
}
