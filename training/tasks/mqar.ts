/**
 * Multi-query associative recall (MQAR), after Zoology (Arora et al., 2023,
 * "Zoology: Measuring and Improving Recall in Efficient Language Models"):
 * a sequence of key-value pairs followed by queries of some of the keys; at
 * each query the model must output the value that was bound to that key.
 *
 * Layout of one sequence (seqLen = 2·pairs + queries):
 * `k₀ v₀ k₁ v₁ … k_{p−1} v_{p−1} q₀ q₁ … q_{q−1}`. Keys are the tokens
 * `[0, ⌊vocab/2⌋)` and are distinct within a sequence; values are the tokens
 * `[⌊vocab/2⌋, vocab)`, uniform and independent (values may repeat); the
 * queries are distinct keys of the sequence in random order. Labels are −1
 * everywhere except at the query positions, where they are the bound value's
 * token id.
 *
 * Data layout: test example `i` uses block `i` and train example `i` block
 * `-(i + 1)` of one {@linkcode Rng} cycle whose start is a hash of the seed
 * (blocks exactly one example's draws long), so the splits use disjoint
 * streams, examples are independent of `n` and of each other, and the test set
 * is the same for every `n`. A train sequence equal to a test sequence is
 * redrawn (up to 16 times, from a hashed side stream).
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import { intOption, mix32, seedOption, splitSizes, tokenAccuracy, tokenBatches } from "./common.ts";
import type { Batch, Metric, Score, Split, Task, TaskOptions } from "./task.ts";

/** Options of {@linkcode createMqarTask}. */
export interface MqarOptions extends TaskOptions {
  /**
   * Vocabulary size, an integer in [max(4, 2·pairs), 65536]. Default 32. The
   * lower ⌊vocab/2⌋ tokens are keys, the rest values; also the number of classes.
   */
  vocab?: number;
  /** Key-value pairs per sequence, an integer in [1, 32768]. Default 4. */
  pairs?: number;
  /** Queries per sequence, an integer in [1, pairs]. Default `pairs` (every key queried once). */
  queries?: number;
}

const MAX_VOCAB = 65536;
const TASK_SALT = 0x6d716172; // "mqar"

/**
 * Creates the MQAR task (see the module documentation for the layout). Causal;
 * token-class output with classes = `vocab`. Metric: accuracy at the query
 * positions; chance = 1/(number of value tokens) = 1/(vocab − ⌊vocab/2⌋), what
 * guessing a value (or always answering the same value) scores.
 *
 * Throws a `RangeError` naming the option for any option out of range.
 */
export function createMqarTask(options: MqarOptions): Task {
  const name = "mqar";
  const seed = seedOption(name, options.seed);
  const pairs = intOption(name, "pairs", options.pairs, 4, 1, MAX_VOCAB / 2);
  const vocab = intOption(name, "vocab", options.vocab, 32, Math.max(4, 2 * pairs), MAX_VOCAB);
  const queries = intOption(name, "queries", options.queries, pairs, 1, pairs);
  const numKeys = Math.floor(vocab / 2);
  const numValues = vocab - numKeys;
  const seqLen = 2 * pairs + queries;
  const stride = 2 * pairs + queries; // one int() per key, value and query
  const { testSize, n } = splitSizes(name, options, stride);
  const base = mix32(mix32(seed) ^ TASK_SALT);

  const keyPerm = new Int32Array(numKeys);
  const pairPerm = new Int32Array(pairs);
  const draw = (rng: Rng, out: Int32Array, at: number): void => {
    // Distinct keys: the first `pairs` slots of a partial Fisher–Yates shuffle.
    for (let k = 0; k < numKeys; k++) keyPerm[k] = k;
    for (let p = 0; p < pairs; p++) {
      const j = p + rng.int(numKeys - p);
      const t = keyPerm[p];
      keyPerm[p] = keyPerm[j];
      keyPerm[j] = t;
      out[at + 2 * p] = keyPerm[p];
    }
    for (let p = 0; p < pairs; p++) out[at + 2 * p + 1] = numKeys + rng.int(numValues);
    // Distinct queried pairs, in random order.
    for (let p = 0; p < pairs; p++) pairPerm[p] = p;
    for (let q = 0; q < queries; q++) {
      const j = q + rng.int(pairs - q);
      const t = pairPerm[q];
      pairPerm[q] = pairPerm[j];
      pairPerm[j] = t;
      out[at + 2 * pairs + q] = out[at + 2 * pairPerm[q]];
    }
  };

  const valueOf = new Int32Array(numKeys);
  const labelsOf = (tokens: Int32Array, at: number, labels: Int32Array): void => {
    for (let p = 0; p < pairs; p++) {
      valueOf[tokens[at + 2 * p]] = tokens[at + 2 * p + 1];
      labels[at + 2 * p] = -1;
      labels[at + 2 * p + 1] = -1;
    }
    for (let q = 2 * pairs; q < seqLen; q++) labels[at + q] = valueOf[tokens[at + q]];
  };
  const batches = tokenBatches({
    task: name,
    base,
    stride,
    seqLen,
    trainSize: n,
    testSize,
    draw,
    labelsOf,
  });

  const metric: Metric = { name: "accuracy", higherIsBetter: true, chance: 1 / numValues };

  return {
    name,
    seqLen,
    input: { kind: "tokens", vocab },
    output: { kind: "token-class", classes: vocab },
    causal: true,
    trainSize: n,
    testSize,
    metric,
    batch(split: Split, indices: ArrayLike<number>): Batch {
      return batches(split, indices);
    },
    score(batch: Batch, outputs: Float32Array): Score {
      return tokenAccuracy(name, batch, outputs, seqLen, vocab);
    },
  };
}
