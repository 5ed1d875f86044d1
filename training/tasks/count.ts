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

import { Rng } from "../rng.ts";
import type { Batch, Metric, Score, Split, Task, TaskOptions } from "./task.ts";

/** Options of {@linkcode createCountTask}. */
export interface CountOptions extends TaskOptions {
  /** Tokens per sequence, an integer in [1, 4096]. Default 16. Also the number of classes. */
  seqLen?: number;
  /** Vocabulary size, an integer in [2, 65536]. Default 8. */
  vocab?: number;
}

const MAX_SEQ_LEN = 4096;
const MAX_VOCAB = 65536;
const DEFAULT_TEST_SIZE = 1000;
const TASK_SALT = 0x636f756e; // "coun"

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
  const name = "count";
  const seed = seedOption(name, options.seed);
  const seqLen = intOption(name, "seqLen", options.seqLen, 16, 1, MAX_SEQ_LEN);
  const vocab = intOption(name, "vocab", options.vocab, 8, 2, MAX_VOCAB);
  const stride = seqLen; // one int() draw per token
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

  const draw = (rng: Rng, out: Int32Array, at: number): void => {
    for (let p = 0; p < seqLen; p++) out[at + p] = rng.int(vocab);
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

  const labelsOf = (tokens: Int32Array, at: number, labels: Int32Array): void => {
    const seen = new Map<number, number>();
    for (let p = 0; p < seqLen; p++) {
      const t = tokens[at + p];
      const c = seen.get(t) ?? 0;
      labels[at + p] = c;
      seen.set(t, c + 1);
    }
  };

  const metric: Metric = {
    name: "accuracy",
    higherIsBetter: true,
    chance: countChance(seqLen, vocab),
  };

  return {
    name,
    seqLen,
    input: { kind: "tokens", vocab },
    output: { kind: "token-class", classes: seqLen },
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
      return tokenAccuracy(name, batch, outputs, seqLen, seqLen);
    },
  };
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

// ---- helpers (each task module keeps its own copy, so the modules stay independent) ----

function logFactorials(n: number): Float64Array {
  const f = new Float64Array(n + 1);
  for (let i = 2; i <= n; i++) f[i] = f[i - 1] + Math.log(i);
  return f;
}

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
