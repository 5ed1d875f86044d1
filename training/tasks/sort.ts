/**
 * The sorting task: a sequence of tokens; at position `i` the model outputs the
 * `i`-th smallest input token (sorted ascending, duplicates kept). Every output
 * depends on every input, so the task is posed non-causally.
 *
 * Data layout: as in the other token tasks, test example `i` uses block `i` and
 * train example `i` block `-(i + 1)` of one {@linkcode Rng} cycle whose start is
 * a hash of the seed (blocks exactly one example's draws long), so the splits
 * use disjoint streams, examples are independent of `n` and of each other, and
 * the test set is the same for every `n`. A train sequence equal to a test
 * sequence is redrawn (up to 16 times, from a hashed side stream).
 *
 * @module
 */

import { logFactorials, uniformTokenTask } from "./common.ts";
import type { Task, TaskOptions } from "./task.ts";

/** Options of {@linkcode createSortTask}. */
export interface SortOptions extends TaskOptions {
  /** Tokens per sequence, an integer in [1, 4096]. Default 10. */
  seqLen?: number;
  /** Token values `[0, vocab)`, an integer in [2, 65536]. Default 16. Also the number of classes. */
  vocab?: number;
}

/**
 * Creates the sorting task. Input: `seqLen` tokens uniform over `[0, vocab)`.
 * Label at position `i`: the `i`-th smallest input token (0-based), so classes
 * = `vocab`. Not causal. Metric: per-position accuracy over all positions.
 *
 * Chance: the accuracy of the best constant prediction per position, computed
 * exactly: the label at position `i` is the order statistic X₍ᵢ₊₁₎ of `seqLen`
 * i.i.d. uniform tokens, P(X₍ₖ₎ ≤ v) = Σ_{m ≥ k} C(L, m)·Fᵐ(1 − F)^{L−m} with
 * F = (v + 1)/vocab, and chance = (1/L)·Σᵢ maxᵥ P(X₍ᵢ₊₁₎ = v). (A single
 * constant for all positions does worse.) For the defaults chance ≈ 0.246.
 *
 * Throws a `RangeError` naming the option for any option out of range.
 */
export function createSortTask(options: SortOptions): Task {
  return uniformTokenTask({
    name: "sort",
    salt: 0x736f7274, // "sort"
    seqLen: 10,
    vocab: 16,
    causal: false,
    classes: (_seqLen, vocab) => vocab,
    labelsOf(seqLen, tokens, at, labels) {
      labels.set(tokens.subarray(at, at + seqLen), at);
      labels.subarray(at, at + seqLen).sort();
    },
    chance: sortChance,
  }, options);
}

/**
 * The exact chance accuracy of the sorting task: (1/L)·Σᵢ maxᵥ P(X₍ᵢ₊₁₎ = v),
 * the accuracy of predicting at each position the most likely value of that
 * order statistic of `seqLen` i.i.d. uniform tokens over `[0, vocab)`.
 */
export function sortChance(seqLen: number, vocab: number): number {
  return sortModes(seqLen, vocab).chance;
}

/**
 * For each position `i`, the most likely label (the mode of the order statistic
 * X₍ᵢ₊₁₎) and its probability; `chance` is the mean of those probabilities.
 */
export function sortModes(
  seqLen: number,
  vocab: number,
): { modes: Int32Array; probabilities: Float64Array; chance: number } {
  const L = seqLen;
  const logFact = logFactorials(L);
  const modes = new Int32Array(L);
  const probabilities = new Float64Array(L);
  // cdf[k] = P(X₍ₖ₊₁₎ ≤ v) = P(at least k + 1 of the L tokens are ≤ v).
  let prev = new Float64Array(L); // v = −1: all zero
  let cur = new Float64Array(L);
  const pmf = new Float64Array(L + 1);
  for (let v = 0; v < vocab; v++) {
    const F = (v + 1) / vocab;
    if (F >= 1) {
      cur.fill(1);
    } else {
      for (let m = 0; m <= L; m++) {
        pmf[m] = Math.exp(
          logFact[L] - logFact[m] - logFact[L - m] + m * Math.log(F) + (L - m) * Math.log1p(-F),
        );
      }
      let tail = 0;
      for (let k = L - 1; k >= 0; k--) {
        tail += pmf[k + 1];
        cur[k] = tail;
      }
    }
    for (let k = 0; k < L; k++) {
      const p = cur[k] - prev[k];
      if (p > probabilities[k]) {
        probabilities[k] = p;
        modes[k] = v;
      }
    }
    [prev, cur] = [cur, prev];
  }
  let sum = 0;
  for (let k = 0; k < L; k++) sum += probabilities[k];
  return { modes, probabilities, chance: sum / L };
}
