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

import { Rng } from "../rng.ts";
import type { Batch, Metric, Score, Split, Task, TaskOptions } from "./task.ts";

/** Options of {@linkcode createSortTask}. */
export interface SortOptions extends TaskOptions {
  /** Tokens per sequence, an integer in [1, 4096]. Default 10. */
  seqLen?: number;
  /** Token values `[0, vocab)`, an integer in [2, 65536]. Default 16. Also the number of classes. */
  vocab?: number;
}

const MAX_SEQ_LEN = 4096;
const MAX_VOCAB = 65536;
const DEFAULT_TEST_SIZE = 1000;
const TASK_SALT = 0x736f7274; // "sort"

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
  const name = "sort";
  const seed = seedOption(name, options.seed);
  const seqLen = intOption(name, "seqLen", options.seqLen, 10, 1, MAX_SEQ_LEN);
  const vocab = intOption(name, "vocab", options.vocab, 16, 2, MAX_VOCAB);
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

  const metric: Metric = {
    name: "accuracy",
    higherIsBetter: true,
    chance: sortChance(seqLen, vocab),
  };

  return {
    name,
    seqLen,
    input: { kind: "tokens", vocab },
    output: { kind: "token-class", classes: vocab },
    causal: false,
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
        labels.set(tokens.subarray(at, at + seqLen), at);
        labels.subarray(at, at + seqLen).sort();
      }
      return { size, tokens, labels };
    },
    score(batch: Batch, outputs: Float32Array): Score {
      return tokenAccuracy(name, batch, outputs, seqLen, vocab);
    },
  };
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
