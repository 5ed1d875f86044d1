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

import { Rng } from "../rng.ts";
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
const DEFAULT_TEST_SIZE = 1000;
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
  const capacity = Math.floor(2 ** 32 / stride);
  const testSize = intOption(
    name,
    "testSize",
    options.testSize,
    DEFAULT_TEST_SIZE,
    1,
    capacity - 1,
  );
  const n = intOption(name, "n", options.n, undefined, 1, capacity - testSize);
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
  const testSeq = (i: number, out: Int32Array, at: number): void =>
    draw(blockRng(base, i, stride), out, at);
  let testSet: Set<string> | undefined;
  const trainSeq = (i: number, out: Int32Array, at: number): void => {
    const start = blockState(base, -(i + 1), stride);
    draw(Rng.fromState(start), out, at);
    testSet ??= buildTestSet(testSize, seqLen, testSeq);
    for (let attempt = 1; attempt <= 16; attempt++) {
      if (!testSet.has(key(out, at, seqLen))) return;
      draw(new Rng(mix32(start ^ mix32(attempt))), out, at);
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
      const size = checkIndices(name, split, indices, n, testSize);
      const tokens = new Int32Array(size * seqLen);
      const labels = new Int32Array(size * seqLen);
      for (let b = 0; b < size; b++) {
        const at = b * seqLen;
        (split === "train" ? trainSeq : testSeq)(indices[b], tokens, at);
        labelsOf(tokens, at, labels);
      }
      return { size, tokens, labels };
    },
    score(batch: Batch, outputs: Float32Array): Score {
      return tokenAccuracy(name, batch, outputs, seqLen, vocab);
    },
  };
}

// ---- helpers (each task module keeps its own copy, so the modules stay independent) ----

function buildTestSet(
  testSize: number,
  seqLen: number,
  testSeq: (i: number, out: Int32Array, at: number) => void,
): Set<string> {
  const set = new Set<string>();
  const buf = new Int32Array(seqLen);
  for (let i = 0; i < testSize; i++) {
    testSeq(i, buf, 0);
    set.add(key(buf, 0, seqLen));
  }
  return set;
}

function key(tokens: Int32Array, at: number, len: number): string {
  return tokens.subarray(at, at + len).join(",");
}

/** Murmur3's 32-bit finalizer: a bijective mix of a 32-bit integer. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** The Rng state that starts block `k` (`stride` draws each) of the cycle starting at `base`. */
function blockState(base: number, k: number, stride: number): number {
  return (base + Math.imul(k * stride, 0x9e3779b9)) >>> 0;
}

function blockRng(base: number, k: number, stride: number): Rng {
  return Rng.fromState(blockState(base, k, stride));
}

function seedOption(task: string, seed: unknown): number {
  if (typeof seed !== "number" || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`${task}: seed must be an integer in [0, 4294967295], got ${seed}`);
  }
  return seed >>> 0;
}

function intOption(
  task: string,
  name: string,
  value: unknown,
  fallback: number | undefined,
  min: number,
  max: number,
): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${task}: ${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
  return v;
}

function checkIndices(
  task: string,
  split: Split,
  indices: ArrayLike<number>,
  trainSize: number,
  testSize: number,
): number {
  if (split !== "train" && split !== "test") {
    throw new RangeError(`${task}: split must be "train" or "test", got ${split}`);
  }
  const size = split === "train" ? trainSize : testSize;
  for (let b = 0; b < indices.length; b++) {
    const i = indices[b];
    if (!Number.isInteger(i) || i < 0 || i >= size) {
      throw new RangeError(
        `${task}: ${split} index must be an integer in [0, ${size - 1}], got ${i}`,
      );
    }
  }
  return indices.length;
}

/** Accuracy (first maximum wins; a row of NaNs is wrong) over the positions whose label is ≥ 0. */
function tokenAccuracy(
  task: string,
  batch: Batch,
  outputs: Float32Array,
  seqLen: number,
  classes: number,
): Score {
  const labels = batch.labels;
  if (!labels || labels.length !== batch.size * seqLen) {
    throw new RangeError(`${task}: score needs a batch with ${batch.size * seqLen} labels`);
  }
  if (outputs.length !== labels.length * classes) {
    throw new RangeError(
      `${task}: outputs must have size·seqLen·classes = ${labels.length * classes} logits, ` +
        `got ${outputs.length}`,
    );
  }
  let total = 0;
  let count = 0;
  for (let p = 0; p < labels.length; p++) {
    const label = labels[p];
    if (label < 0) continue;
    count++;
    let best = -Infinity;
    let arg = -1;
    for (let c = 0, o = p * classes; c < classes; c++, o++) {
      if (outputs[o] > best) {
        best = outputs[o];
        arg = c;
      }
    }
    if (arg === label) total++;
  }
  return { total, count };
}
