/**
 * Helpers shared by the task modules (internal: not re-exported by the task
 * registry): option validation, index checks, the block layout of a task's
 * {@linkcode Rng} cycle, test-set membership and token accuracy.
 *
 * @module
 */

import { Rng } from "../rng.ts";
import type { Batch, Metric, Score, Split, Task, TaskOptions } from "./task.ts";

/** Held-out examples when the options give no `testSize`. */
export const DEFAULT_TEST_SIZE = 1000;

/** `f[i] = ln(i!)` for `i` in [0, n]. */
export function logFactorials(n: number): Float64Array {
  const f = new Float64Array(n + 1);
  for (let i = 2; i <= n; i++) f[i] = f[i - 1] + Math.log(i);
  return f;
}

/** The keys (see {@linkcode key}) of the `testSize` test sequences that `testSeq` writes. */
export function buildTestSet(
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

/** A string key of the `len` tokens at `at`, for set membership. */
export function key(tokens: Int32Array, at: number, len: number): string {
  return tokens.subarray(at, at + len).join(",");
}

/** Murmur3's 32-bit finalizer: a bijective mix of a 32-bit integer. */
export function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** The Rng state that starts block `k` (`stride` draws each) of the cycle starting at `base`. */
export function blockState(base: number, k: number, stride: number): number {
  return (base + Math.imul(k * stride, 0x9e3779b9)) >>> 0;
}

/** An Rng at the start of block `k` (`stride` draws each) of the cycle starting at `base`. */
export function blockRng(base: number, k: number, stride: number): Rng {
  return Rng.fromState(blockState(base, k, stride));
}

/** Validates a seed option (named `name` in the error) as a 32-bit unsigned integer. */
export function seedOption(task: string, seed: unknown, name = "seed"): number {
  if (typeof seed !== "number" || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`${task}: ${name} must be an integer in [0, 4294967295], got ${seed}`);
  }
  return seed >>> 0;
}

/** `value` (or `fallback` when it is null or undefined), checked to be an integer in [min, max]. */
export function intOption(
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

/** Checks that every index is an integer in [0, size); throws on the first that is not. */
export function checkIndexRange(
  task: string,
  split: Split,
  indices: ArrayLike<number>,
  size: number,
): void {
  for (let b = 0; b < indices.length; b++) {
    const i = indices[b];
    if (!Number.isInteger(i) || i < 0 || i >= size) {
      throw new RangeError(
        `${task}: ${split} index must be an integer in [0, ${size - 1}], got ${i}`,
      );
    }
  }
}

/** Checks the split and its indices; returns the batch size. */
export function checkIndices(
  task: string,
  split: Split,
  indices: ArrayLike<number>,
  trainSize: number,
  testSize: number,
): number {
  if (split !== "train" && split !== "test") {
    throw new RangeError(`${task}: split must be "train" or "test", got ${split}`);
  }
  checkIndexRange(task, split, indices, split === "train" ? trainSize : testSize);
  return indices.length;
}

/** Accuracy (first maximum wins; a row of NaNs is wrong) over the positions whose label is ≥ 0. */
export function tokenAccuracy(
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

/**
 * The validated `testSize` (default {@linkcode DEFAULT_TEST_SIZE}) and `n` of a
 * task whose examples take `stride` draws each, so that `n + testSize` blocks fit
 * in one 2³²-state Rng cycle.
 */
export function splitSizes(
  task: string,
  options: TaskOptions,
  stride: number,
): { testSize: number; n: number } {
  const capacity = Math.floor(2 ** 32 / stride);
  const testSize = intOption(
    task,
    "testSize",
    options.testSize,
    DEFAULT_TEST_SIZE,
    1,
    capacity - 1,
  );
  const n = intOption(task, "n", options.n, undefined, 1, capacity - testSize);
  return { testSize, n };
}

/** What {@linkcode tokenBatches} needs to lay out a token-sequence task. */
export interface TokenSequenceSpec {
  /** Task name, for error messages. */
  task: string;
  /** Rng state that starts the task's cycle. */
  base: number;
  /** Rng draws one example takes. */
  stride: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** Training sequences. */
  trainSize: number;
  /** Held-out sequences. */
  testSize: number;
  /** Writes one sequence drawn from `rng` at `out[at…]`. */
  draw: (rng: Rng, out: Int32Array, at: number) => void;
  /** Writes the labels of the sequence at `tokens[at…]` to `labels[at…]`. */
  labelsOf: (tokens: Int32Array, at: number, labels: Int32Array) => void;
}

/**
 * The `batch` function of a token-sequence task: test example `i` is drawn from
 * block `i` and train example `i` from block `-(i + 1)` of the cycle at `base`; a
 * train sequence equal to a test sequence is redrawn (up to 16 times, from a
 * hashed side stream). The test set is built on the first train example.
 */
export function tokenBatches(
  spec: TokenSequenceSpec,
): (split: Split, indices: ArrayLike<number>) => Batch {
  const { task, base, stride, seqLen, trainSize, testSize, draw, labelsOf } = spec;
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
  return (split: Split, indices: ArrayLike<number>): Batch => {
    const size = checkIndices(task, split, indices, trainSize, testSize);
    const tokens = new Int32Array(size * seqLen);
    const labels = new Int32Array(size * seqLen);
    for (let b = 0; b < size; b++) {
      const at = b * seqLen;
      (split === "train" ? trainSeq : testSeq)(indices[b], tokens, at);
      labelsOf(tokens, at, labels);
    }
    return { size, tokens, labels };
  };
}

/** What sets one uniform-token task apart from another (see {@linkcode uniformTokenTask}). */
export interface UniformTokenTaskSpec {
  /** Task name, for the task and its error messages. */
  name: string;
  /** Mixed into the seed, so that tasks with one seed draw different data. */
  salt: number;
  /** Default tokens per sequence. */
  seqLen: number;
  /** Default vocabulary size. */
  vocab: number;
  /** Whether the task is posed causally. */
  causal: boolean;
  /** Output classes for a sequence length and vocabulary. */
  classes(seqLen: number, vocab: number): number;
  /** Writes the labels of the sequence at `tokens[at…at+seqLen]` to `labels[at…]`. */
  labelsOf(seqLen: number, tokens: Int32Array, at: number, labels: Int32Array): void;
  /** The task's exact chance accuracy. */
  chance(seqLen: number, vocab: number): number;
}

/** Largest `seqLen` of a uniform-token task. */
export const MAX_TOKEN_SEQ_LEN = 4096;
/** Largest `vocab` of a uniform-token task. */
export const MAX_TOKEN_VOCAB = 65536;

/**
 * A task whose input is `seqLen` tokens drawn uniformly from `[0, vocab)` and
 * whose labels are one class per position, a function of the sequence, scored
 * by per-position accuracy (count and sort): the options `seqLen` in [1, 4096]
 * and `vocab` in [2, 65536], the layout of {@linkcode tokenBatches} (one
 * `int()` draw per token), and the metric.
 */
export function uniformTokenTask(
  spec: UniformTokenTaskSpec,
  options: TaskOptions & { seqLen?: number; vocab?: number },
): Task {
  const name = spec.name;
  const seed = seedOption(name, options.seed);
  const seqLen = intOption(name, "seqLen", options.seqLen, spec.seqLen, 1, MAX_TOKEN_SEQ_LEN);
  const vocab = intOption(name, "vocab", options.vocab, spec.vocab, 2, MAX_TOKEN_VOCAB);
  const stride = seqLen; // one int() draw per token
  const { testSize, n } = splitSizes(name, options, stride);
  const classes = spec.classes(seqLen, vocab);
  const batches = tokenBatches({
    task: name,
    base: mix32(mix32(seed) ^ spec.salt),
    stride,
    seqLen,
    trainSize: n,
    testSize,
    draw: (rng, out, at) => {
      for (let p = 0; p < seqLen; p++) out[at + p] = rng.int(vocab);
    },
    labelsOf: (tokens, at, labels) => spec.labelsOf(seqLen, tokens, at, labels),
  });
  const metric: Metric = {
    name: "accuracy",
    higherIsBetter: true,
    chance: spec.chance(seqLen, vocab),
  };
  return {
    name,
    seqLen,
    input: { kind: "tokens", vocab },
    output: { kind: "token-class", classes },
    causal: spec.causal,
    trainSize: n,
    testSize,
    metric,
    batch: (split: Split, indices: ArrayLike<number>): Batch => batches(split, indices),
    score: (batch: Batch, outputs: Float32Array): Score =>
      tokenAccuracy(name, batch, outputs, seqLen, classes),
  };
}
