/**
 * An operation-count model of the attention forward kernels: what each kernel
 * does per score (one query–key pair), and the speed ratio that predicts.
 *
 * Counts come from the kernels' WGSL (kernels/attention_fused.ts and
 * kernels/attention_unfused.ts). Costs are in "FMA equivalents" and differ
 * by hardware, so the model takes them as a parameter:
 *
 * - `SOFTWARE_COSTS`: an x86 CPU running the shader as 8-wide AVX2 code
 *   (Mesa llvmpipe/lavapipe). `exp` is a polynomial of about a dozen vector
 *   instructions; a division's reciprocal throughput is about ten FMAs'.
 *   These are assumptions from the instruction sequences, not measurements.
 * - `H100_COSTS`: derived from datasheet throughputs of an H100 SXM5: 989
 *   TFLOP/s of FP16 tensor-core matmul, 67 TFLOP/s of FP32 on the CUDA
 *   cores, 3.9 TFLOP/s of special functions (the figure FlashAttention-3
 *   quotes) and 3.35 TB/s of HBM. One FMA is 2 FLOPs, so an `exp` costs
 *   989/3.9/2 ≈ 127 FMAs, a plain FP32 op 989/67/2 ≈ 7.4, a division about an
 *   `exp` (reciprocal) plus a multiply, and a global float (4 bytes) about
 *   989e12/3.35e12·4/2 ≈ 590.
 *
 * The point the model makes: both kernels spend `2·D` FMAs per score, so the
 * non-matmul work that sigmoid removes (row max, rescaling, the running sum)
 * and adds (one division) matters only where it is costly next to the FMAs —
 * small head dims, and GPUs whose matmul units far outrun their exp units.
 *
 * @module
 */

/** Per-score operation counts of one kernel. */
export interface OpCounts {
  /** Multiply-adds (QKᵀ and P·V): `2·D`, plus the accumulator rescaling amortised over the tile. */
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
}

/** Cost of each operation in FMA equivalents. */
export interface OpCosts {
  fma: number;
  exp: number;
  div: number;
  alu: number;
  globalFloat: number;
}

/** An 8-wide AVX2 CPU (software adapter); assumed weights, see the module doc. */
export const SOFTWARE_COSTS: OpCosts = { fma: 1, exp: 12, div: 10, alu: 1, globalFloat: 1 };

/** H100 SXM5 tensor cores vs CUDA cores, special functions and HBM (see the module doc). */
export const H100_COSTS: OpCosts = { fma: 1, exp: 127, div: 134, alu: 7.4, globalFloat: 590 };

/** The kernels the model covers. */
export type ModelledKernel =
  | "fused softmax"
  | "fused sigmoid"
  | "unfused softmax"
  | "unfused sigmoid";

/**
 * Per-score counts for head dim `D` and key tile `BK` (the fused kernels
 * rescale once per tile, so that work is amortised over `BK` scores).
 */
export function opCounts(kernel: ModelledKernel, D: number, BK: number): OpCounts {
  const D4 = Math.ceil(D / 4) * 4; // the kernels pad D to a multiple of 4
  switch (kernel) {
    case "fused softmax": {
      // max into the tile max, s − m, l += p, scratch store + load; per tile:
      // exp(m_old − m), l·α and D multiplies of the accumulator.
      const rescale = (D4 + 1) / BK;
      return {
        fma: 2 * D4 + rescale,
        exp: 1 + 1 / BK,
        div: 0,
        alu: 5,
        rowStats: 5 + rescale + 1 / BK,
        globalFloats: 0,
      };
    }
    case "fused sigmoid":
      // s + b, |x|, 1 + e, select; one division.
      return { fma: 2 * D4, exp: 1, div: 1, alu: 4, rowStats: 0, globalFloats: 0 };
    case "unfused softmax":
      // QKᵀ writes s; the row kernel reads it three times (max, sum, normalise),
      // computes exp twice, writes p; P·V reads p.
      return { fma: 2 * D, exp: 2, div: 0, alu: 4, rowStats: 4, globalFloats: 6 };
    case "unfused sigmoid":
      // QKᵀ writes s; σ reads and writes it; P·V reads p.
      return { fma: 2 * D, exp: 1, div: 1, alu: 4, rowStats: 0, globalFloats: 4 };
  }
}

/** Predicted cost per score, in FMA equivalents. */
export function opCost(counts: OpCounts, costs: OpCosts): number {
  return counts.fma * costs.fma + counts.exp * costs.exp + counts.div * costs.div +
    counts.alu * costs.alu + counts.globalFloats * costs.globalFloat;
}

/** Predicted speed ratio `time(baseline) / time(kernel)` (> 1: kernel is faster). */
export function predictedSpeedup(
  kernel: ModelledKernel,
  baseline: ModelledKernel,
  D: number,
  BK: number,
  costs: OpCosts,
): number {
  return opCost(opCounts(baseline, D, BK), costs) / opCost(opCounts(kernel, D, BK), costs);
}
