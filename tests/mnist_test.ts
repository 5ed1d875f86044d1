import assert from "node:assert/strict";
import {
  createMnistTask,
  loadMnist,
  MNIST_COUNT,
  MNIST_DEFAULT_TEST_SIZE,
  MNIST_DIGIT_COUNTS,
  MNIST_MAX_TEST_SIZE,
  MNIST_MEAN,
  MNIST_PIXELS,
  MNIST_POOL_SIZE,
  MNIST_STD,
  patchify,
  unpatchify,
} from "../training/tasks/mnist.ts";

Deno.test("loadMnist() reads the package's 10,000 digits in [0, 1], digit by digit, once", async () => {
  const t0 = performance.now();
  const data = await loadMnist();
  const ms = performance.now() - t0;
  console.log(`loadMnist(): ${ms.toFixed(0)} ms`);
  assert.equal(data.count, 10_000);
  assert.equal(MNIST_COUNT, 10_000);
  assert.equal(data.images.length, 10_000 * 784);
  assert.equal(data.labels.length, 10_000);
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; i < data.count; i++) {
    assert.ok(data.labels[i] <= 9);
    if (i > 0) assert.ok(data.labels[i] >= data.labels[i - 1], "package order is digit by digit");
    counts[data.labels[i]]++;
  }
  assert.deepEqual(counts, [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
  assert.deepEqual(counts, [...MNIST_DIGIT_COUNTS]);
  let min = Infinity, max = -Infinity, sum = 0;
  for (const v of data.images) {
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  assert.equal(min, 0);
  assert.equal(max, 1);
  const mean = sum / data.images.length;
  assert.ok(Math.abs(mean - MNIST_MEAN) < 0.01, `mean pixel ${mean}`);
  // Every image has ink.
  for (let i = 0; i < data.count; i++) {
    let ink = 0;
    for (let j = 0; j < MNIST_PIXELS; j++) ink += data.images[i * MNIST_PIXELS + j];
    assert.ok(ink > 5, `image ${i} has ink ${ink}`);
  }
  // Cached: the second call is the same object.
  assert.equal(await loadMnist(), data);
});

Deno.test("patchify() maps pixel (r, c) to token (r/7)·4 + c/7, offset (r%7)·7 + c%7, and inverts", () => {
  const image = Float32Array.from({ length: 784 }, (_, i) => i);
  const tokens = patchify(image);
  // Spot checks: (row, col) → (token, offset).
  const cases: [number, number, number, number][] = [
    [0, 0, 0, 0],
    [0, 6, 0, 6],
    [0, 7, 1, 0],
    [1, 0, 0, 7],
    [6, 6, 0, 48],
    [7, 0, 4, 0],
    [8, 15, 6, 8],
    [13, 27, 7, 48],
    [27, 27, 15, 48],
    [21, 14, 14, 0],
  ];
  for (const [r, c, t, k] of cases) assert.equal(tokens[t * 49 + k], r * 28 + c, `(${r}, ${c})`);
  // A permutation: every pixel exactly once.
  assert.deepEqual([...tokens].sort((a, b) => a - b), [...image]);
  assert.deepEqual(unpatchify(tokens), image);
  // Offsets into larger arrays.
  const two = new Float32Array(2 * 784);
  two.set(image, 784);
  const out = patchify(two, 784, new Float32Array(3 * 784), 784);
  assert.deepEqual(out.subarray(784, 2 * 784), tokens);
  assert.deepEqual(unpatchify(out, 784), image);
});

Deno.test("createMnistTask() has the documented shapes and gathers the right images", async () => {
  const task = await createMnistTask({ n: 300, seed: 5 });
  const data = await loadMnist();
  assert.equal(task.name, "mnist");
  assert.equal(task.seqLen, 16);
  assert.deepEqual(task.input, { kind: "vectors", dim: 49 });
  assert.deepEqual(task.output, { kind: "seq-class", classes: 10 });
  assert.equal(task.causal, false);
  assert.equal(task.trainSize, 300);
  assert.equal(task.testSize, MNIST_DEFAULT_TEST_SIZE);
  assert.equal(task.trainImages.length, 300);
  assert.equal(task.testImages.length, 1000);
  assert.deepEqual(task.metric, { name: "accuracy", higherIsBetter: true, chance: 0.1 });

  for (const split of ["train", "test"] as const) {
    const images = split === "train" ? task.trainImages : task.testImages;
    const idx = [0, 7, images.length - 1, 7];
    const batch = task.batch(split, idx);
    assert.equal(batch.size, 4);
    assert.equal(batch.tokens, undefined);
    assert.equal(batch.inputs!.length, 4 * 16 * 49);
    assert.equal(batch.labels!.length, 4);
    for (let b = 0; b < idx.length; b++) {
      const g = images[idx[b]];
      assert.equal(batch.labels![b], data.labels[g]);
      const back = unpatchify(batch.inputs!, b * 784);
      assert.deepEqual(back, data.images.subarray(g * 784, (g + 1) * 784));
    }
  }
  assert.deepEqual(task.batch("train", []), {
    size: 0,
    inputs: new Float32Array(0),
    labels: new Int32Array(0),
  });
});

Deno.test("createMnistTask() normalize standardises pixels", async () => {
  const plain = await createMnistTask({ n: 10, seed: 1 });
  const norm = await createMnistTask({ n: 10, seed: 1, normalize: true });
  const a = plain.batch("test", [3]).inputs!;
  const b = norm.batch("test", [3]).inputs!;
  for (let j = 0; j < a.length; j++) {
    assert.ok(Math.abs(b[j] - (a[j] - MNIST_MEAN) / MNIST_STD) < 1e-5);
  }
});

Deno.test("createMnistTask() training set: seeded, distinct, stratified, disjoint from the test set", async () => {
  const a = await createMnistTask({ n: 1000, seed: 42 });
  const b = await createMnistTask({ n: 1000, seed: 42 });
  const c = await createMnistTask({ n: 1000, seed: 43 });
  assert.deepEqual(a.trainImages, b.trainImages);
  assert.deepEqual(a.batch("train", [0, 1, 2]), b.batch("train", [0, 1, 2]));
  assert.notDeepEqual(a.trainImages, c.trainImages);
  assert.notDeepEqual(new Set(a.trainImages), new Set(c.trainImages));

  const { labels } = await loadMnist();
  for (const task of [a, c]) {
    const train = new Set(task.trainImages);
    assert.equal(train.size, 1000, "distinct");
    for (const i of task.testImages) assert.ok(!train.has(i), `image ${i} in both splits`);
    const counts = new Array<number>(10).fill(0);
    for (const i of task.trainImages) counts[labels[i]]++;
    assert.deepEqual(counts, new Array(10).fill(100), "stratified");
    // Shuffled, not dealt in digit order.
    assert.notDeepEqual([...task.trainImages].sort((x, y) => x - y), [...task.trainImages]);
  }

  // Nested in n for one seed; n = 15 gets 5 digits twice.
  const small = await createMnistTask({ n: 15, seed: 42 });
  const big = new Set(a.trainImages);
  for (const i of small.trainImages) assert.ok(big.has(i));
  const counts = new Array<number>(10).fill(0);
  for (const i of small.trainImages) counts[labels[i]]++;
  assert.deepEqual(counts.sort(), [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);

  // The whole pool: every non-test image exactly once.
  const all = await createMnistTask({ n: MNIST_POOL_SIZE, seed: 3 });
  const seen = new Set([...all.trainImages, ...all.testImages]);
  assert.equal(seen.size, MNIST_COUNT);
});

Deno.test("createMnistTask() test set is fixed: the same for every n and seed, 100 per digit", async () => {
  const ref = await createMnistTask({ n: 1, seed: 0 });
  for (const [n, seed] of [[9000, 0], [50, 7], [4000, -123]]) {
    const t = await createMnistTask({ n, seed });
    assert.deepEqual(t.testImages, ref.testImages);
    assert.deepEqual(t.batch("test", [0, 500, 999]), ref.batch("test", [0, 500, 999]));
  }
  const { labels } = await loadMnist();
  const counts = new Array<number>(10).fill(0);
  for (const i of ref.testImages) counts[labels[i]]++;
  assert.deepEqual(counts, new Array(10).fill(100));
  for (let j = 1; j < ref.testImages.length; j++) {
    assert.ok(ref.testImages[j] > ref.testImages[j - 1], "ascending");
  }
  // Not just the first or last images of each digit.
  assert.ok(ref.testImages.some((i) => labels[i] === 0 && i > 100 && i < 900));

  // A smaller test set is contained in the default one; an odd size has chance = majority share.
  const odd = await createMnistTask({ n: 10, seed: 0, testSize: 13 });
  const full = new Set(ref.testImages);
  for (const i of odd.testImages) assert.ok(full.has(i));
  const oddCounts = new Array<number>(10).fill(0);
  for (const i of odd.testImages) oddCounts[labels[i]]++;
  assert.deepEqual(oddCounts, [2, 2, 2, 1, 1, 1, 1, 1, 1, 1]);
  assert.equal(odd.metric.chance, 2 / 13);
  assert.equal(odd.testSize, 13);
});

Deno.test("score() counts argmax hits: 1 for perfect logits, the class share for a constant guess", async () => {
  const task = await createMnistTask({ n: 10, seed: 0 });
  const idx = Array.from({ length: 200 }, (_, i) => i * 5);
  const batch = task.batch("test", idx);
  const perfect = new Float32Array(200 * 10).fill(-1);
  for (let b = 0; b < 200; b++) perfect[b * 10 + batch.labels![b]] = 3;
  assert.deepEqual(task.score(batch, perfect), { total: 200, count: 200 });

  // Constant logits favouring class 3: accuracy = share of 3s in the batch.
  const constant = new Float32Array(200 * 10);
  for (let b = 0; b < 200; b++) constant[b * 10 + 3] = 1;
  const threes = [...batch.labels!].filter((l) => l === 3).length;
  assert.deepEqual(task.score(batch, constant), { total: threes, count: 200 });

  // All-equal logits: ties go to class 0.
  const zeros = [...batch.labels!].filter((l) => l === 0).length;
  assert.deepEqual(task.score(batch, new Float32Array(2000)), { total: zeros, count: 200 });

  // Over the whole test set a constant guess scores exactly the chance level.
  const whole = task.batch("test", Array.from({ length: 1000 }, (_, i) => i));
  const guess7 = new Float32Array(10_000);
  for (let b = 0; b < 1000; b++) guess7[b * 10 + 7] = 1;
  const s = task.score(whole, guess7);
  assert.equal(s.total / s.count, task.metric.chance);

  // NaN never wins.
  const one = task.batch("test", [0]);
  const nan = new Float32Array(10).fill(NaN);
  nan[one.labels![0]] = -5;
  assert.deepEqual(task.score(one, nan), { total: 1, count: 1 });
});

Deno.test("createMnistTask(), batch() and score() reject bad arguments with RangeErrors", async () => {
  await assert.rejects(createMnistTask({ n: 9001, seed: 0 }), (e: Error) => {
    assert.ok(e instanceof RangeError);
    assert.match(e.message, /n = 9001/);
    assert.match(e.message, /9000/);
    return true;
  });
  await assert.rejects(createMnistTask({ n: 0, seed: 0 }), RangeError);
  await assert.rejects(createMnistTask({ n: 2.5, seed: 0 }), RangeError);
  await assert.rejects(createMnistTask({ n: 9500, seed: 0, testSize: 1000 }), /9000/);
  // A smaller test set leaves a larger pool.
  assert.equal((await createMnistTask({ n: 9500, seed: 0, testSize: 500 })).trainSize, 9500);
  await assert.rejects(createMnistTask({ n: 10, seed: 0, testSize: MNIST_MAX_TEST_SIZE + 1 }), (
    e: Error,
  ) => e instanceof RangeError && /testSize/.test(e.message) && /5000/.test(e.message));
  await assert.rejects(createMnistTask({ n: 10, seed: 0, testSize: 0 }), RangeError);
  await assert.rejects(createMnistTask({ n: 10, seed: NaN }), RangeError);

  const task = await createMnistTask({ n: 10, seed: 0 });
  assert.throws(() => task.batch("train", [10]), RangeError);
  assert.throws(() => task.batch("train", [-1]), RangeError);
  assert.throws(() => task.batch("test", [1.5]), RangeError);
  assert.throws(() => task.batch("valid" as "test", [0]), RangeError);
  const batch = task.batch("train", [0, 1]);
  assert.throws(() => task.score(batch, new Float32Array(19)), RangeError);
  assert.throws(() => task.score({ size: 2 }, new Float32Array(20)), RangeError);
});
