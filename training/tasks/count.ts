/**
 * The counting task: tokens drawn uniformly from a small vocabulary; at every
 * position the model says how many times the current token has already
 * occurred before it.
 *
 * Data layout: example `i` of a split is generated from its own stretch of one
 * {@linkcode Rng} cycle. Test example `i` uses block `i` and train example `i`
 * uses block `-(i + 1)` of a cycle whose start is a hash of the seed, each
 * block exactly as many draws long as one example needs, so train and test
 * streams never overlap, example `i` does not depend on `n` or on any other
 * example, and the test set is the same for every `n`. A train sequence that
 * happens to equal a test sequence is redrawn (up to 16 times, from a hashed
 * side stream), so the splits are disjoint unless the test set covers nearly
 * the whole sequence space.
 *
 * @module
 */

import { logFactorials, uniformTokenTask } from "./common.ts";
import type { Task, TaskOptions } from "./task.ts";

/** Options of {@linkcode createCountTask}. */
export interface CountOptions extends TaskOptions {
  /** Tokens per sequence, an integer in [1, 4096]. Default 16. Also the number of classes. */
  seqLen?: number;
  /** Vocabulary size, an integer in [2, 65536]. Default 8. */
  vocab?: number;
}

/**
 * Creates the counting task. Input: `seqLen` tokens uniform over `[0, vocab)`.
 * Label at position `i`: (number of `j ≤ i` with `x_j = x_i`) − 1, so classes =
 * `seqLen`. Causal. Metric: per-position accuracy over all positions.
 *
 * Chance: the accuracy of the best constant label, computed exactly. The label
 * at position `i` is Binomial(`i`, 1/`vocab`) (the earlier occurrences), so
 * chance = maxₖ (1/seqLen)·Σᵢ P(Binomial(i, 1/vocab) = k); for the defaults
 * the best constant is 0 and chance ≈ 0.441.
 *
 * Throws a `RangeError` naming the option for any option out of range.
 *
 * @example
 * ```ts
 * import { createCountTask } from "./count.ts";
 * const task = createCountTask({ n: 100, seed: 1, seqLen: 8, vocab: 4 });
 * const b = task.batch("train", [0, 1]);
 * console.log(b.tokens!.length, b.labels!.length); // 16 16
 * ```
 */
export function createCountTask(options: CountOptions): Task {
  return uniformTokenTask({
    name: "count",
    salt: 0x636f756e, // "coun"
    seqLen: 16,
    vocab: 8,
    causal: true,
    classes: (seqLen) => seqLen,
    labelsOf(seqLen, tokens, at, labels) {
      const seen = new Map<number, number>();
      for (let p = 0; p < seqLen; p++) {
        const t = tokens[at + p];
        const c = seen.get(t) ?? 0;
        labels[at + p] = c;
        seen.set(t, c + 1);
      }
    },
    chance: countChance,
  }, options);
}

/**
 * The exact chance accuracy of the counting task: the accuracy of the best
 * constant label, maxₖ (1/seqLen)·Σ_{i<seqLen} P(Binomial(i, 1/vocab) = k).
 */
export function countChance(seqLen: number, vocab: number): number {
  const p = 1 / vocab;
  const logFact = logFactorials(seqLen);
  let best = 0;
  for (let k = 0; k < seqLen; k++) {
    let sum = 0;
    for (let i = k; i < seqLen; i++) {
      sum += Math.exp(
        logFact[i] - logFact[k] - logFact[i - k] + k * Math.log(p) + (i - k) * Math.log1p(-p),
      );
    }
    best = Math.max(best, sum / seqLen);
  }
  return best;
}
