/** Tests of the synthetic training tasks (CPU only): mqar, count, sort and teacher. */

import assert from "node:assert/strict";
import { Rng } from "../training/rng.ts";
import type { Batch, Task } from "../training/tasks/task.ts";
import { createMqarTask, type MqarOptions } from "../training/tasks/mqar.ts";
import { countChance, createCountTask } from "../training/tasks/count.ts";
import { createSortTask, sortChance, sortModes } from "../training/tasks/sort.ts";
import {
  type AttentionHeadParams,
  createTeacherTask,
  gatingMatrix,
  headVoronoiLoss,
  parameterErrors,
  teacherAttentionWeights,
  type TeacherConfig,
  teacherForward,
  teacherHeads,
  voronoiPower,
} from "../training/tasks/teacher.ts";
import { logLogSlope } from "../training/study/stats.ts";

// ---------------------------------------------------------------- helpers

function assertNear(actual: number, expected: number, tol: number, what = ""): void {
  assert.ok(
    Math.abs(actual - expected) <= tol,
    `${what} expected ${expected} ± ${tol}, got ${actual}`,
  );
}

function range(n: number, from = 0): number[] {
  return Array.from({ length: n }, (_, i) => from + i);
}

/** Every field of `b`, as plain arrays, for deep comparisons. */
function plain(b: Batch): Record<string, unknown> {
  return {
    size: b.size,
    tokens: b.tokens && Array.from(b.tokens),
    inputs: b.inputs && Array.from(b.inputs),
    labels: b.labels && Array.from(b.labels),
    targets: b.targets && Array.from(b.targets),
  };
}

/** The concatenation of single-example batches. */
function concat(batches: Batch[]): Record<string, unknown> {
  const join = (k: "tokens" | "inputs" | "labels" | "targets") =>
    batches[0][k] ? batches.flatMap((b) => Array.from(b[k]!)) : undefined;
  return {
    size: batches.length,
    tokens: join("tokens"),
    inputs: join("inputs"),
    labels: join("labels"),
    targets: join("targets"),
  };
}

/** Sequences (token rows) of a batch as strings. */
function rows(task: Task, b: Batch): string[] {
  const L = task.seqLen;
  return range(b.size).map((i) => Array.from(b.tokens!.subarray(i * L, (i + 1) * L)).join(","));
}

/** One-hot logits for `classOf(position)` at every position of `b`. */
function oneHot(b: Batch, seqLen: number, classes: number, classOf: (p: number) => number) {
  const out = new Float32Array(b.size * seqLen * classes);
  for (let p = 0; p < b.size * seqLen; p++) out[p * classes + classOf(p)] = 1;
  return out;
}

function rate(s: { total: number; count: number }): number {
  return s.total / s.count;
}

function throwsRange(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof RangeError, `expected a RangeError, got ${e}`);
    for (const f of fragments) {
      assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks "${f}"`);
    }
    return true;
  });
}

const tokenTasks: { label: string; make: (o: { n: number; seed: number }) => Task }[] = [
  { label: "mqar", make: (o) => createMqarTask(o) },
  { label: "count", make: (o) => createCountTask(o) },
  { label: "sort", make: (o) => createSortTask(o) },
];
const allTasks = [
  ...tokenTasks,
  {
    label: "teacher",
    make: (o: { n: number; seed: number }): Task => createTeacherTask({ ...o, testSize: 50 }),
  },
];

// ---------------------------------------------------------------- determinism (all tasks)

for (const { label, make } of allTasks) {
  Deno.test(`${label}: batches are pure functions of the options`, () => {
    const a = make({ n: 40, seed: 7 });
    const b = make({ n: 40, seed: 7 });
    for (const split of ["train", "test"] as const) {
      const idx = [3, 0, 17, 3, 39 % a.testSize];
      assert.deepEqual(plain(a.batch(split, idx)), plain(b.batch(split, idx)));
      // A batch is the concatenation of single-example batches, in any order.
      assert.deepEqual(plain(a.batch(split, idx)), concat(idx.map((i) => b.batch(split, [i]))));
    }
    // Example i does not depend on n; the test set is the same for every n.
    const big = make({ n: 1000, seed: 7 });
    assert.deepEqual(plain(big.batch("train", range(40))), plain(a.batch("train", range(40))));
    assert.deepEqual(plain(big.batch("test", range(20))), plain(a.batch("test", range(20))));
    // Another seed gives other data.
    const other = make({ n: 40, seed: 8 });
    assert.notDeepEqual(plain(other.batch("train", range(5))), plain(a.batch("train", range(5))));
    assert.notDeepEqual(plain(other.batch("test", range(5))), plain(a.batch("test", range(5))));
    // Train and test differ.
    assert.notDeepEqual(plain(a.batch("train", range(5))), plain(a.batch("test", range(5))));
    // Empty batch.
    assert.equal(a.batch("train", []).size, 0);
  });

  Deno.test(`${label}: shapes of a batch`, () => {
    const t = make({ n: 10, seed: 1 });
    const b = t.batch("train", [0, 1, 2]);
    assert.equal(b.size, 3);
    if (t.input.kind === "tokens") {
      assert.equal(b.tokens!.length, 3 * t.seqLen);
      for (const x of b.tokens!) assert.ok(x >= 0 && x < t.input.vocab);
    } else {
      assert.equal(b.inputs!.length, 3 * t.seqLen * t.input.dim);
    }
    if (t.output.kind === "token-class") {
      assert.equal(b.labels!.length, 3 * t.seqLen);
      for (const y of b.labels!) assert.ok(y >= -1 && y < t.output.classes);
    } else if (t.output.kind === "regression") {
      assert.equal(b.targets!.length, 3 * t.seqLen * t.output.dim);
    }
  });

  Deno.test(`${label}: index and split validation`, () => {
    const t = make({ n: 10, seed: 1 });
    throwsRange(() => t.batch("train", [10]), "train index", "[0, 9]", "10");
    throwsRange(() => t.batch("train", [-1]), "train index");
    throwsRange(() => t.batch("train", [1.5]), "train index", "1.5");
    throwsRange(() => t.batch("test", [t.testSize]), "test index", String(t.testSize));
    throwsRange(() => t.batch("valid" as "train", [0]), "split", "valid");
  });
}

// ---------------------------------------------------------------- token tasks: disjointness

for (const { label, make } of tokenTasks) {
  Deno.test(`${label}: train sequences avoid the test set`, () => {
    const t = make({ n: 3000, seed: 3 });
    const test = new Set(rows(t, t.batch("test", range(t.testSize))));
    const train = rows(t, t.batch("train", range(t.trainSize)));
    assert.equal(train.filter((r) => test.has(r)).length, 0);
  });
}

Deno.test("count: a tiny sequence space still keeps train out of the test set", () => {
  // 2⁸ = 256 sequences, 60 of them (at most) in the test set.
  const t = createCountTask({ n: 500, seed: 5, vocab: 2, seqLen: 8, testSize: 60 });
  const test = new Set(rows(t, t.batch("test", range(60))));
  const train = rows(t, t.batch("train", range(500)));
  assert.equal(train.filter((r) => test.has(r)).length, 0);
  assert.ok(new Set(train).size > 150, "train still covers most of the rest of the space");
});

// ---------------------------------------------------------------- mqar

Deno.test("mqar: layout and labels match a brute-force recall", () => {
  for (
    const o of [
      { n: 200, seed: 1 },
      { n: 200, seed: 2, vocab: 10, pairs: 5, queries: 2 },
      { n: 200, seed: 3, vocab: 9, pairs: 1 },
    ] satisfies MqarOptions[]
  ) {
    const t = createMqarTask(o);
    const vocab = o.vocab ?? 32;
    const pairs = o.pairs ?? 4;
    const queries = o.queries ?? pairs;
    const numKeys = Math.floor(vocab / 2);
    assert.equal(t.seqLen, 2 * pairs + queries);
    assert.deepEqual(t.input, { kind: "tokens", vocab });
    assert.deepEqual(t.output, { kind: "token-class", classes: vocab });
    assert.equal(t.causal, true);
    assert.equal(t.metric.chance, 1 / (vocab - numKeys));
    for (const split of ["train", "test"] as const) {
      const b = t.batch(split, range(100));
      for (let s = 0; s < 100; s++) {
        const x = Array.from(b.tokens!.subarray(s * t.seqLen, (s + 1) * t.seqLen));
        const y = Array.from(b.labels!.subarray(s * t.seqLen, (s + 1) * t.seqLen));
        const keys = range(pairs).map((p) => x[2 * p]);
        const values = range(pairs).map((p) => x[2 * p + 1]);
        assert.equal(new Set(keys).size, pairs, "keys are distinct");
        for (const k of keys) assert.ok(k >= 0 && k < numKeys);
        for (const v of values) assert.ok(v >= numKeys && v < vocab);
        const qs = x.slice(2 * pairs);
        assert.equal(new Set(qs).size, queries, "queries are distinct");
        for (let p = 0; p < 2 * pairs; p++) assert.equal(y[p], -1);
        for (let q = 0; q < queries; q++) {
          let bound = -2;
          for (let p = 0; p < 2 * pairs; p += 2) if (x[p] === qs[q]) bound = x[p + 1];
          assert.equal(y[2 * pairs + q], bound, "label = the value bound to the queried key");
        }
      }
    }
  }
});

Deno.test("mqar: perfect predictions score 1, a constant value scores about chance", () => {
  const t = createMqarTask({ n: 10, seed: 4 });
  const b = t.batch("test", range(t.testSize));
  const perfect = oneHot(b, t.seqLen, 32, (p) => Math.max(b.labels![p], 0));
  assert.deepEqual(t.score(b, perfect), { total: 4 * t.testSize, count: 4 * t.testSize });
  const constant = oneHot(b, t.seqLen, 32, () => 16);
  const acc = rate(t.score(b, constant));
  assert.ok(Math.abs(acc - t.metric.chance) < 0.015, `constant accuracy ${acc}`);
  // Pooling batches gives the same totals.
  const halves = [range(500), range(500, 500)].map((idx) => {
    const hb = t.batch("test", idx);
    return t.score(hb, oneHot(hb, t.seqLen, 32, () => 16));
  });
  assert.equal(halves[0].total + halves[1].total, t.score(b, constant).total);
  throwsRange(() => t.score(b, new Float32Array(5)), "outputs");
});

// ---------------------------------------------------------------- count

Deno.test("count: labels match a brute-force count", () => {
  const t = createCountTask({ n: 50, seed: 2, vocab: 3, seqLen: 12 });
  assert.deepEqual(t.output, { kind: "token-class", classes: 12 });
  assert.equal(t.causal, true);
  for (const split of ["train", "test"] as const) {
    const b = t.batch(split, range(50));
    for (let s = 0; s < 50; s++) {
      for (let i = 0; i < 12; i++) {
        let c = 0;
        for (let j = 0; j <= i; j++) if (b.tokens![s * 12 + j] === b.tokens![s * 12 + i]) c++;
        assert.equal(b.labels![s * 12 + i], c - 1);
      }
    }
  }
});

Deno.test("count: chance is the exact majority-label accuracy", () => {
  // Enumerate all 3⁴ sequences of length 4.
  const freq = new Array(4).fill(0);
  for (let code = 0; code < 81; code++) {
    const x = [0, 1, 2, 3].map((i) => Math.floor(code / 3 ** i) % 3);
    x.forEach((v, i) => freq[x.slice(0, i).filter((u) => u === v).length]++);
  }
  assert.ok(Math.abs(countChance(4, 3) - Math.max(...freq) / (81 * 4)) < 1e-12);
  // Default task: constant label 0 scores about chance; perfect scores 1.
  const t = createCountTask({ n: 10, seed: 9, testSize: 2000 });
  assert.ok(Math.abs(t.metric.chance - 0.441) < 1e-3);
  const b = t.batch("test", range(2000));
  const acc = rate(t.score(b, oneHot(b, 16, 16, () => 0)));
  assert.ok(Math.abs(acc - t.metric.chance) < 0.01, `constant accuracy ${acc}`);
  assert.equal(rate(t.score(b, oneHot(b, 16, 16, (p) => b.labels![p]))), 1);
});

// ---------------------------------------------------------------- sort

Deno.test("sort: labels are the sorted tokens", () => {
  const t = createSortTask({ n: 50, seed: 2, vocab: 40, seqLen: 13 });
  assert.deepEqual(t.output, { kind: "token-class", classes: 40 });
  assert.equal(t.causal, false);
  for (const split of ["train", "test"] as const) {
    const b = t.batch(split, range(50));
    for (let s = 0; s < 50; s++) {
      const x = Array.from(b.tokens!.subarray(s * 13, (s + 1) * 13));
      const sorted = [...x].sort((u, v) => u - v);
      assert.deepEqual(Array.from(b.labels!.subarray(s * 13, (s + 1) * 13)), sorted);
    }
  }
});

Deno.test("sort: chance is the exact best per-position constant accuracy", () => {
  // Enumerate all 3³ sequences of length 3 over 3 values.
  const counts = [0, 1, 2].map(() => [0, 0, 0]);
  for (let code = 0; code < 27; code++) {
    const x = [0, 1, 2].map((i) => Math.floor(code / 3 ** i) % 3).sort();
    x.forEach((v, i) => counts[i][v]++);
  }
  const exact = counts.reduce((s, c) => s + Math.max(...c), 0) / (27 * 3);
  assert.ok(Math.abs(sortChance(3, 3) - exact) < 1e-12);
  // Default task: per-position modes score about chance; perfect scores 1.
  const t = createSortTask({ n: 10, seed: 9, testSize: 2000 });
  const { modes } = sortModes(10, 16);
  const b = t.batch("test", range(2000));
  const acc = rate(t.score(b, oneHot(b, 10, 16, (p) => modes[p % 10])));
  assert.ok(Math.abs(acc - t.metric.chance) < 0.01, `mode accuracy ${acc} vs ${t.metric.chance}`);
  assert.equal(rate(t.score(b, oneHot(b, 10, 16, (p) => b.labels![p]))), 1);
});

// ---------------------------------------------------------------- teacher: the layer

function randomHead(rng: Rng, dim: number, r: number, outDim: number): AttentionHeadParams {
  return {
    wq: rng.normals(dim * r, 1 / Math.sqrt(dim)),
    wk: rng.normals(dim * r, 1 / Math.sqrt(dim)),
    wv: rng.normals(dim * outDim, 1 / Math.sqrt(dim)),
  };
}

/** `rows×cols` matrix from a row-major array. */
function mat(a: ArrayLike<number>, rows: number, cols: number): number[][] {
  return range(rows).map((i) => range(cols).map((j) => a[i * cols + j]));
}
function matmul(a: number[][], b: number[][]): number[][] {
  return a.map((row) => b[0].map((_, j) => row.reduce((s, x, k) => s + x * b[k][j], 0)));
}
function transpose(a: number[][]): number[][] {
  return a[0].map((_, j) => a.map((row) => row[j]));
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, what);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  assert.ok(max <= tol, `${what}: max error ${max} > ${tol}`);
}

Deno.test("teacherForward: one linear softmax head is softmax(X Wq (X Wk)ᵀ/√r) X Wv", () => {
  const rng = new Rng(11);
  const [L, dim, r, outDim] = [6, 4, 3, 5];
  const head = randomHead(rng, dim, r, outDim);
  const x = rng.normals(L * dim);
  const X = mat(x, L, dim);
  const S = matmul(matmul(X, mat(head.wq, dim, r)), transpose(matmul(X, mat(head.wk, dim, r))))
    .map((row) => row.map((s) => s / Math.sqrt(r)));
  const W = S.map((row) => {
    const e = row.map(Math.exp);
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / z);
  });
  const Y = matmul(W, matmul(X, mat(head.wv, dim, outDim)));
  const config: TeacherConfig = { seqLen: L, dim, outDim, activation: "softmax", expert: "linear" };
  close(teacherForward(x, [head], config), Y.flat(), 1e-12, "forward");
  const w = teacherAttentionWeights(x, head, config);
  close(w, W.flat(), 1e-12, "weights");
  for (let i = 0; i < L; i++) {
    const sum = w.subarray(i * L, (i + 1) * L).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-12, `softmax row ${i} sums to ${sum}`);
  }
});

Deno.test("teacherForward: sigmoid uses bias −ln(seqLen); heads are summed; relu and gelu experts", () => {
  const rng = new Rng(12);
  const [L, dim, r, outDim] = [5, 3, 2, 2];
  const heads = [randomHead(rng, dim, r, outDim), randomHead(rng, dim, r, outDim)];
  const x = rng.normals(L * dim);
  const gelu = (u: number) =>
    0.5 * u * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (u + 0.044715 * u ** 3)));
  const experts = { linear: (u: number) => u, relu: (u: number) => Math.max(u, 0), gelu };
  for (const expert of ["linear", "relu", "gelu"] as const) {
    // Naive, element by element.
    const y = new Array(L * outDim).fill(0);
    for (const h of heads) {
      for (let i = 0; i < L; i++) {
        for (let j = 0; j < L; j++) {
          let s = 0;
          for (let c = 0; c < r; c++) {
            let q = 0;
            let k = 0;
            for (let u = 0; u < dim; u++) {
              q += x[i * dim + u] * h.wq[u * r + c];
              k += x[j * dim + u] * h.wk[u * r + c];
            }
            s += q * k;
          }
          const w = 1 / (1 + Math.exp(-(s / Math.sqrt(r) - Math.log(L))));
          for (let o = 0; o < outDim; o++) {
            let v = 0;
            for (let u = 0; u < dim; u++) v += x[j * dim + u] * h.wv[u * outDim + o];
            y[i * outDim + o] += w * experts[expert](v);
          }
        }
      }
    }
    const config: TeacherConfig = { seqLen: L, dim, outDim, activation: "sigmoid", expert };
    close(teacherForward(x, heads, config), y, 1e-12, expert);
  }
  // Zero scores: every sigmoid weight is σ(−ln L) = 1/(1 + L); softmax is uniform.
  const flat: AttentionHeadParams = { ...heads[0], wq: new Float32Array(dim * r) };
  const sig = teacherAttentionWeights(x, flat, { seqLen: L, dim, activation: "sigmoid" });
  close(sig, new Array(L * L).fill(1 / (1 + L)), 1e-15, "sigmoid bias");
  const soft = teacherAttentionWeights(x, flat, { seqLen: L, dim, activation: "softmax" });
  close(soft, new Array(L * L).fill(1 / L), 1e-15, "uniform softmax");
  assert.ok(Math.abs(gelu(1) - 0.8411919906082768) < 1e-12);
});

// ---------------------------------------------------------------- teacher: the task

Deno.test("teacher: test targets are the noiseless teacher, train targets carry the noise", () => {
  const t = createTeacherTask({
    n: 200,
    seed: 5,
    testSize: 200,
    teacherHeads: 2,
    teacherActivation: "sigmoid",
    expert: "gelu",
    noise: 0.3,
    rank: 4,
  });
  assert.deepEqual(t.input, { kind: "vectors", dim: 8 });
  assert.deepEqual(t.output, { kind: "regression", dim: 8 });
  assert.equal(t.causal, false);
  assert.equal(t.heads.length, 2);
  assert.equal(t.heads[0].wq.length, 8 * 4);
  assert.deepEqual(
    teacherHeads({ n: 1, seed: 5, teacherHeads: 2, rank: 4 }).map((h) => Array.from(h.wv)),
    t.heads.map((h) => Array.from(h.wv)),
  );
  const L = 16;
  const per = L * 8;
  for (const split of ["test", "train"] as const) {
    const b = t.batch(split, range(200));
    let sq = 0;
    let sum = 0;
    for (let s = 0; s < 200; s++) {
      const y = teacherForward(b.inputs!.subarray(s * per, (s + 1) * per), t.heads, t.config);
      for (let p = 0; p < per; p++) {
        const d = b.targets![s * per + p] - y[p];
        sq += d * d;
        sum += d;
      }
    }
    const std = Math.sqrt(sq / (200 * per));
    if (split === "test") assert.ok(std < 1e-6, `test targets deviate by ${std}`);
    else {
      assert.ok(Math.abs(std - 0.3) < 0.01, `train noise std ${std}`);
      assert.ok(Math.abs(sum / (200 * per)) < 0.01);
    }
  }
  // Input rows are standard normal.
  const x = t.batch("train", range(200)).inputs!;
  const mean = x.reduce((a, b) => a + b, 0) / x.length;
  const variance = x.reduce((a, b) => a + b * b, 0) / x.length;
  assert.ok(Math.abs(mean) < 0.02 && Math.abs(variance - 1) < 0.03, `${mean} ${variance}`);
});

Deno.test("teacher: score is the mean squared error per position; chance is predicting 0", () => {
  const t = createTeacherTask({ n: 10, seed: 6, testSize: 300, outDim: 3, dim: 5 });
  const b = t.batch("test", range(300));
  assert.deepEqual(t.score(b, b.targets!), { total: 0, count: 300 * 16 });
  const zero = t.score(b, new Float32Array(b.targets!.length));
  let direct = 0;
  for (const y of b.targets!) direct += y * y;
  assert.ok(Math.abs(zero.total - direct) < 1e-9 * direct);
  assert.ok(Math.abs(rate(zero) - t.metric.chance) < 1e-9 * t.metric.chance);
  assert.equal(t.metric.name, "function error");
  assert.equal(t.metric.higherIsBetter, false);
  // Hand-made: one position off by (1, 2, 2) → total 9.
  const off = Float32Array.from(b.targets!);
  off[0] += 1;
  off[1] += 2;
  off[2] += 2;
  assert.ok(Math.abs(t.score(b, off).total - 9) < 1e-4);
  // Scores are O(1): chance sits between 0.1 and 10 for every teacher kind.
  for (const teacherActivation of ["softmax", "sigmoid"] as const) {
    for (const expert of ["linear", "relu", "gelu"] as const) {
      const c = createTeacherTask({ n: 1, seed: 1, testSize: 50, teacherActivation, expert })
        .metric.chance;
      assert.ok(c > 0.1 && c < 10, `${teacherActivation}/${expert} chance ${c}`);
    }
  }
  throwsRange(() => t.score(b, new Float32Array(3)), "outputs");
});

Deno.test("teacher: teacherSeed changes the teacher, not the inputs", () => {
  const a = createTeacherTask({ n: 5, seed: 1, testSize: 5 });
  const b = createTeacherTask({ n: 5, seed: 1, testSize: 5, teacherSeed: 99 });
  assert.deepEqual(a.batch("train", [0]).inputs, b.batch("train", [0]).inputs);
  assert.notDeepEqual(a.batch("train", [0]).targets, b.batch("train", [0]).targets);
  assert.notDeepEqual(a.heads[0].wq, b.heads[0].wq);
});

Deno.test("teacher: owns its parameter metrics, read from an attention-arch model's parameters", async () => {
  const task = createTeacherTask({
    n: 5,
    seed: 1,
    testSize: 5,
    dim: 4,
    teacherHeads: 2,
    expert: "relu",
  });
  assert.deepEqual(task.model, { arch: "attention", expert: "relu" });
  // A student whose [dim, heads·headDim] matrices hold the teacher's heads side by side.
  const [d, H, D] = [4, 2, 4];
  const packed = (key: "wq" | "wk" | "wv") => {
    const out = new Float32Array(d * H * D);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < d; i++) {
        out.set(task.heads[h][key].subarray(i * D, i * D + D), i * H * D + h * D);
      }
    }
    return out;
  };
  const view = (arch: "attention" | "transformer", swap = false) => ({
    config: { arch, width: d, heads: H, headDim: D },
    read: (name: string) => {
      const m = packed(name as "wq" | "wk" | "wv");
      if (swap && name === "wv") m.reverse();
      return Promise.resolve(m);
    },
  });
  const same = await task.parameterErrors!(view("attention"));
  assert.ok(
    same && same.gating < 1e-6 && same.value < 1e-6 && same.voronoi < 1e-6,
    JSON.stringify(same),
  );
  const other = await task.parameterErrors!(view("attention", true));
  assert.ok(other && other.value > 0.1, JSON.stringify(other));
  assert.equal(await task.parameterErrors!(view("transformer")), undefined);
});

// ---------------------------------------------------------------- parameterErrors

function scaleHead(h: AttentionHeadParams, value: number): AttentionHeadParams {
  return { ...h, wv: h.wv.map((v) => v * value) };
}

Deno.test("parameterErrors: zero for the teacher, invariant to permutations and the Q/K gauge", () => {
  const rng = new Rng(21);
  const [dim, r, outDim] = [5, 3, 4];
  const teacher = range(3).map(() => randomHead(rng, dim, r, outDim));
  const dims = { dim, outDim };
  assert.deepEqual(parameterErrors(teacher, teacher, dims), {
    gating: 0,
    value: 0,
    voronoi: 0,
    voronoiParts: { mass: 0, single: 0, multi: 0 },
  });

  // Gauge: W_Q → W_Q M, W_K → W_K M⁻ᵀ with M = [[2, 1, 0], [0, 1, 0], [0, 0.5, 4]].
  const M = [[2, 1, 0], [0, 1, 0], [0, 0.5, 4]];
  const MinvT = transpose([[0.5, -0.5, 0], [0, 1, 0], [0, -0.125, 0.25]]);
  const gauged = teacher.map((h) => ({
    wq: Float32Array.from(matmul(mat(h.wq, dim, r), M).flat()),
    wk: Float32Array.from(matmul(mat(h.wk, dim, r), MinvT).flat()),
    wv: h.wv,
  }));
  const g = parameterErrors(teacher, gauged, dims);
  assert.ok(g.gating < 1e-6 && g.value === 0 && g.voronoi < 1e-6, JSON.stringify(g));
  close(gatingMatrix(gauged[1], dim), gatingMatrix(teacher[1], dim), 1e-6, "gauge");

  // A perturbed student: errors > 0, and the same for any order of its heads.
  const student = teacher.map((h) => ({
    wq: h.wq.map((v) => v + 0.05 * rng.normal()),
    wk: h.wk.map((v) => v + 0.05 * rng.normal()),
    wv: h.wv.map((v) => v + 0.05 * rng.normal()),
  }));
  const e = parameterErrors(teacher, student, dims);
  assert.ok(e.gating > 0.01 && e.value > 0.01 && e.voronoi > 0.01, JSON.stringify(e));
  assert.ok(e.gating < 0.5 && e.value < 0.5, JSON.stringify(e));
  for (const perm of [[1, 0, 2], [2, 1, 0], [1, 2, 0]]) {
    const p = parameterErrors(teacher, perm.map((i) => student[i]), dims);
    assert.ok(Math.abs(p.gating - e.gating) < 1e-12, "gating");
    assert.ok(Math.abs(p.value - e.value) < 1e-12, "value");
    assert.ok(Math.abs(p.voronoi - e.voronoi) < 1e-12, "voronoi");
  }
  // Only the values wrong / only the gate wrong.
  const v = parameterErrors(teacher, teacher.map((h) => scaleHead(h, 1.5)), dims);
  assert.ok(v.gating === 0 && Math.abs(v.value - 0.5) < 1e-6, JSON.stringify(v));
  // Only the mass terms: |1.5 − 1| for each of the 3 cells.
  assert.ok(Math.abs(v.voronoi - 1.5) < 1e-6, "only the value-mass term");
  assert.ok(v.voronoiParts!.single < 1e-6 && v.voronoiParts!.multi === 0);
  // Negated gate, one head (with several heads a cross-matching can be cheaper): ‖−2A‖/‖A‖ = 2.
  const neg = { ...teacher[0], wq: teacher[0].wq.map((x) => -x) };
  const a = parameterErrors([teacher[0]], [neg], dims);
  assert.ok(Math.abs(a.gating - 2) < 1e-6 && a.value === 0, JSON.stringify(a));
  assert.ok(Math.abs(a.voronoi - 2) < 1e-6, JSON.stringify(a));
  // A student of another rank with the same A (zero-padded W_Q, W_K, rescaled for 1/√r).
  const padded = teacher.map((h) => {
    const c = Math.sqrt(Math.sqrt((r + 1) / r));
    const pad = (w: Float32Array) =>
      Float32Array.from(mat(w, dim, r).flatMap((row) => [...row.map((x) => x * c), 0]));
    return { wq: pad(h.wq), wk: pad(h.wk), wv: h.wv };
  });
  const pr = parameterErrors(teacher, padded, dims);
  assert.ok(pr.gating < 1e-6 && pr.voronoi < 1e-6, JSON.stringify(pr));
});

Deno.test("parameterErrors: over- and under-specified students go through Voronoi cells", () => {
  const rng = new Rng(22);
  const [dim, r, outDim] = [4, 4, 3];
  const dims = { dim, outDim };
  const teacher = range(2).map(() => randomHead(rng, dim, r, outDim));
  // Split teacher head 0 into two heads with the same gate and values 0.3·V and 0.7·V:
  // the same layer for linear experts, so all three errors are 0.
  const split = [scaleHead(teacher[0], 0.3), teacher[1], scaleHead(teacher[0], 0.7)];
  const s = parameterErrors(teacher, split, dims);
  assert.ok(s.gating < 1e-12 && s.value < 1e-6 && s.voronoi < 1e-6, JSON.stringify(s));
  // A dead extra head (W_V = 0) costs nothing in the Voronoi loss.
  const dead = [...teacher, { ...randomHead(rng, dim, r, outDim), wv: new Float32Array(12) }];
  const d = parameterErrors(teacher, dead, dims);
  assert.ok(d.voronoi < 1e-12 && d.value < 1e-12, JSON.stringify(d));
  // Permuting an over-specified student changes nothing.
  const sp = parameterErrors(teacher, [split[2], split[0], split[1]], dims);
  assert.deepEqual(sp, s);
  // Under-specified: one head can fill only one cell; the empty one costs its mass, 1.
  const u = parameterErrors(teacher, [teacher[1]], dims);
  assert.ok(Math.abs(u.voronoi - 1) < 1e-12, JSON.stringify(u));
  assert.ok(u.gating > 0.3 && u.value > 0.3);
});

/** A head with W_Q = q·I, W_K = I (so A = q·I/√dim) and the given W_V, dim = r = outDim = 2. */
function head2(q: number, wv: number[]): AttentionHeadParams {
  return {
    wq: Float32Array.from([q, 0, 0, q]),
    wk: Float32Array.from([1, 0, 0, 1]),
    wv: Float32Array.from(wv),
  };
}

Deno.test("headVoronoiLoss: hand-computed values; powers differ by cell size and expert type", () => {
  const dims = { dim: 2, outDim: 2 };
  // Teacher: A* = I/√2 (‖A*‖ = 1), V* = I.
  const teacher = [head2(1, [1, 0, 0, 1])];
  // Over-specified: head 0 = (A*, 0.5·V*), head 1 = (1.2·A*, 0.7·V*): one cell of 2 heads,
  // masses 0.5 + 0.7, a₁ = 0.2, u = 0. Linear experts (r̄(2) = 4):
  // mass |1.2 − 1| = 0.2, multi 0.7·0.2⁴ = 0.00112.
  const split = [head2(1, [0.5, 0, 0, 0.5]), head2(1.2, [0.7, 0, 0, 0.7])];
  const a1 = Math.fround(1.2) - 1; // the heads are f32
  const m1 = Math.fround(0.7);
  const lin = headVoronoiLoss(teacher, split, dims);
  assert.deepEqual(lin.cells, [[0, 1]]);
  assertNear(lin.mass, 0.2, 1e-7);
  assert.equal(lin.single, 0);
  assertNear(lin.multi, m1 * a1 ** 4, 1e-12);
  assertNear(lin.value, 0.2 + 0.7 * 0.2 ** 4, 1e-7);
  // ReLU/GELU experts (strongly identifiable): power 2 in the same cell: 0.7·0.2² = 0.028.
  for (const expert of ["relu", "gelu"] as const) {
    assertNear(headVoronoiLoss(teacher, split, { ...dims, expert }).multi, m1 * a1 ** 2, 1e-12);
  }
  // Rotating head 0's values by 90°: u₀ = ‖R − I‖/√2 = √2, so 0.5·(√2)⁴ = 2 joins the multi term.
  const rotated = [head2(1, [0, 0.5, -0.5, 0]), split[1]];
  assertNear(headVoronoiLoss(teacher, rotated, dims).value, 0.2 + 2 + m1 * a1 ** 4, 1e-7);
  // The same gate error alone in a cell of one head keeps first powers: |0.7 − 1| + 0.7·0.2.
  const one = headVoronoiLoss(teacher, [split[1]], dims);
  assert.deepEqual([one.multi, one.cells], [0, [[0]]]);
  assertNear(one.value, 0.3 + 0.7 * 0.2, 1e-7);
  // Zero at the truth and at its exact splits, for every expert type.
  for (const expert of ["linear", "relu", "gelu"] as const) {
    assert.equal(headVoronoiLoss(teacher, teacher, { ...dims, expert }).value, 0);
    const exact = [head2(1, [0.25, 0, 0, 0.25]), head2(1, [0.75, 0, 0, 0.75])];
    assertNear(headVoronoiLoss(teacher, exact, { ...dims, expert }).value, 0, 1e-15); // rounding
  }
  // Powers: 1 for one head; linear r̄(m) = 2m; 2 for non-linear experts.
  assert.deepEqual([1, 2, 3, 4].map((m) => voronoiPower("linear", m)), [1, 4, 6, 8]);
  assert.deepEqual([1, 2, 3].map((m) => voronoiPower("relu", m)), [1, 2, 2]);
  assert.equal(voronoiPower("gelu", 5), 2);
  throwsRange(() => voronoiPower("linear", 0), "cellSize");
  throwsRange(
    () => headVoronoiLoss(teacher, split, { ...dims, expert: "tanh" as "relu" }),
    "expert",
  );
});

Deno.test("headVoronoiLoss: bit-identical under any order of the student heads", () => {
  const rng = new Rng(31);
  const [dim, r, outDim] = [4, 3, 3];
  const dims = { dim, outDim, expert: "gelu" as const };
  const teacher = range(2).map(() => randomHead(rng, dim, r, outDim));
  const jitter = (h: AttentionHeadParams, s: number) => ({
    wq: h.wq.map((x) => x + 0.03 * rng.normal()),
    wk: h.wk,
    wv: h.wv.map((x) => s * x + 0.03 * rng.normal()),
  });
  const student = [
    jitter(teacher[0], 0.2),
    jitter(teacher[1], 1),
    jitter(teacher[0], 0.5),
    jitter(teacher[0], 0.3),
  ];
  const base = headVoronoiLoss(teacher, student, dims);
  assert.deepEqual(base.cells, [[0, 2, 3], [1]]);
  assert.ok(base.multi > 0 && base.single > 0);
  for (const perm of [[3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]]) {
    const p = headVoronoiLoss(teacher, perm.map((i) => student[i]), dims);
    assert.equal(p.value, base.value, `order ${perm}`);
    assert.deepEqual([p.mass, p.single, p.multi], [base.mass, base.single, base.multi]);
  }
});

Deno.test("headVoronoiLoss: the rate it must show on a synthetic sequence of over-specified fits", () => {
  // Fits whose single-head cell is off by ε = n^(−1/2) and whose split cell (2 heads) is off
  // by δ = n^(−1/(2r)), the slower rate of split atoms: with the cell powers r, every term
  // scales as n^(−1/2), and so must the loss (log-log slope −1/2). A loss with first
  // powers everywhere would show δ's slope, −1/(2r), instead.
  const rng = new Rng(32);
  const [dim, r, outDim] = [4, 4, 3];
  const teacher = range(2).map(() => randomHead(rng, dim, r, outDim));
  const directions = range(3).map(() => rng.normals(dim * r, 0.02));
  const off = (h: AttentionHeadParams, e: Float32Array, size: number, mass: number) => ({
    wq: h.wq.map((x, p) => x + size * e[p]),
    wk: h.wk,
    wv: h.wv.map((x) => mass * x),
  });
  const ns = [1e4, 1e5, 1e6, 1e7, 1e8];
  for (const [expert, power] of [["linear", 4], ["relu", 2]] as const) {
    const losses = ns.map((n) => {
      const delta = n ** (-1 / (2 * power));
      const eps = n ** -0.5;
      const fit = [
        off(teacher[0], directions[0], delta, 0.4),
        off(teacher[1], directions[2], eps, 1),
        off(teacher[0], directions[1], delta, 0.6),
      ];
      const loss = headVoronoiLoss(teacher, fit, { dim, outDim, expert });
      assert.deepEqual(loss.cells, [[0, 2], [1]]);
      return loss.value;
    });
    const slope = logLogSlope(ns, losses).slope;
    assertNear(slope, -0.5, 2e-3, `${expert} slope`);
  }
});

Deno.test("parameterErrors: shape validation", () => {
  const rng = new Rng(23);
  const h = randomHead(rng, 4, 2, 3);
  throwsRange(() => parameterErrors([], [h], { dim: 4, outDim: 3 }), "teacher");
  throwsRange(() => parameterErrors([h], [], { dim: 4, outDim: 3 }), "student");
  throwsRange(() => parameterErrors([h], [h], { dim: 4, outDim: 2 }), "wv", "8");
  throwsRange(() => parameterErrors([h], [h], { dim: 3, outDim: 4 }), "wq");
});

// ---------------------------------------------------------------- option validation

Deno.test("validation: every bad option is a RangeError naming it, its value and the range", () => {
  const base = { n: 10, seed: 1 };
  for (const make of [createMqarTask, createCountTask, createSortTask, createTeacherTask]) {
    throwsRange(() => make({ ...base, n: 0 }), "n must be an integer in [1, ", "got 0");
    throwsRange(() => make({ ...base, n: 2.5 }), "n must be", "2.5");
    throwsRange(() => make({ ...base, n: NaN }), "n must be", "NaN");
    throwsRange(() => make({ ...base, n: "10" as unknown as number }), "n must be");
    throwsRange(() => make({ ...base, n: 1e12 }), "n must be");
    throwsRange(() => make({ ...base, seed: -1 }), "seed must be", "[0, 4294967295]", "-1");
    throwsRange(() => make({ ...base, seed: 0.5 }), "seed must be", "0.5");
    throwsRange(() => make({ ...base, seed: 2 ** 32 }), "seed must be");
    throwsRange(() => make({ ...base, testSize: 0 }), "testSize must be", "got 0");
    throwsRange(() => make({ ...base, testSize: 1.5 }), "testSize must be", "1.5");
  }
  // mqar
  throwsRange(() => createMqarTask({ ...base, pairs: 0 }), "pairs must be", "[1, 32768]", "0");
  throwsRange(() => createMqarTask({ ...base, pairs: 4, vocab: 7 }), "vocab", "[8, 65536]", "7");
  throwsRange(() => createMqarTask({ ...base, pairs: 20 }), "vocab", "[40, 65536]", "undefined");
  throwsRange(() => createMqarTask({ ...base, pairs: 1, vocab: 3 }), "vocab", "[4, 65536]");
  throwsRange(() => createMqarTask({ ...base, vocab: 70000 }), "vocab", "70000");
  throwsRange(() => createMqarTask({ ...base, queries: 5 }), "queries", "[1, 4]", "5");
  throwsRange(() => createMqarTask({ ...base, queries: 0 }), "queries", "0");
  // count
  throwsRange(() => createCountTask({ ...base, seqLen: 0 }), "seqLen", "[1, 4096]", "0");
  throwsRange(() => createCountTask({ ...base, seqLen: 5000 }), "seqLen", "5000");
  throwsRange(() => createCountTask({ ...base, vocab: 1 }), "vocab", "[2, 65536]", "1");
  // sort
  throwsRange(() => createSortTask({ ...base, seqLen: 4097 }), "seqLen", "[1, 4096]", "4097");
  throwsRange(() => createSortTask({ ...base, vocab: 1.5 }), "vocab", "1.5");
  // teacher
  const T = createTeacherTask;
  throwsRange(() => T({ ...base, seqLen: 0 }), "seqLen", "[1, 1024]", "0");
  throwsRange(() => T({ ...base, dim: 2000 }), "dim", "[1, 1024]", "2000");
  throwsRange(() => T({ ...base, outDim: 0 }), "outDim", "0");
  throwsRange(() => T({ ...base, rank: 0 }), "rank", "0");
  throwsRange(() => T({ ...base, teacherHeads: 17 }), "teacherHeads", "[1, 16]", "17");
  throwsRange(
    () => T({ ...base, teacherActivation: "relu" as "softmax" }),
    "teacherActivation",
    "relu",
  );
  throwsRange(() => T({ ...base, expert: "tanh" as "relu" }), "expert", "tanh");
  throwsRange(() => T({ ...base, noise: -0.1 }), "noise", "[0, 1000]", "-0.1");
  throwsRange(() => T({ ...base, noise: NaN }), "noise", "NaN");
  throwsRange(() => T({ ...base, scoreStd: 0 }), "scoreStd", "(0, 100]", "0");
  throwsRange(() => T({ ...base, teacherSeed: -3 }), "teacherSeed", "-3");
  // n's upper limit leaves room for the test set in the random cycle.
  const t = createCountTask({ ...base, seqLen: 4096, testSize: 10 });
  throwsRange(() => createCountTask({ ...base, seqLen: 4096, testSize: 10, n: 2 ** 20 - 9 }), "n");
  assert.equal(t.trainSize, 10);
  createCountTask({ ...base, seqLen: 4096, testSize: 10, n: 2 ** 20 - 10 });
});
