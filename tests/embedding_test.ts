import assert from "node:assert/strict";
import {
  embeddingBackwardReference,
  EmbeddingPlan,
  embeddingReference,
  type EmbeddingShape,
} from "../kernels/embedding.ts";
import { createStorageBuffer, getDevice, readFloat32, uploadBuffer } from "../kernels/device.ts";
import { assertClose, randn, rng, TOL } from "./_helpers.ts";

const device = await getDevice();

function upIds(ids: Int32Array): GPUBuffer {
  return uploadBuffer(device, new Uint32Array(ids.buffer, ids.byteOffset, ids.length), "test.ids");
}

/** Tolerance of a sum of dy rows: relative to the sum of their absolute values. */
function assertGradient(
  label: string,
  got: Float32Array,
  ids: Int32Array,
  dy: Float32Array,
  shape: EmbeddingShape,
): void {
  const ref = embeddingBackwardReference(ids, dy, shape);
  const abs = embeddingBackwardReference(ids, dy.map(Math.abs), shape);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    assert.ok(
      Number.isFinite(got[i]) && err <= 1e-6 * abs[i] + 1e-30,
      `${label}: dtable[${i}] = ${got[i]}, reference ${ref[i]} (Σ|dy| ${abs[i]})`,
    );
    worst = Math.max(worst, err);
  }
  console.log(`  ${label.padEnd(60)} max |err| ${worst.toExponential(2)}`);
}

/** Runs forward and backward; returns y and dtable (dtable prefilled with garbage). */
async function run(
  ids: Int32Array,
  table: Float32Array,
  dy: Float32Array,
  shape: EmbeddingShape,
): Promise<{ y: Float32Array; dtable: Float32Array; again: Float32Array }> {
  const plan = await EmbeddingPlan.create(device, shape);
  const { tokens, vocab, width } = shape;
  const b = {
    ids: upIds(ids),
    table: uploadBuffer(device, table, "test.table"),
    dy: uploadBuffer(device, dy, "test.dy"),
    y: createStorageBuffer(device, tokens * width * 4, "test.y"),
    dtable: uploadBuffer(device, randn(vocab * width, 5, 1e3), "test.dtable"),
  };
  const encoder = device.createCommandEncoder();
  plan.encodeForward(encoder, b);
  plan.encodeBackward(encoder, b);
  device.queue.submit([encoder.finish()]);
  const y = await readFloat32(device, b.y, tokens * width);
  const dtable = await readFloat32(device, b.dtable, vocab * width);
  const encoder2 = device.createCommandEncoder();
  plan.encodeBackward(encoder2, b);
  device.queue.submit([encoder2.finish()]);
  const again = await readFloat32(device, b.dtable, vocab * width);
  for (const buffer of Object.values(b)) buffer.destroy();
  plan.destroy();
  return { y, dtable, again };
}

Deno.test("embedding references: lookup, scatter-add, out-of-range ids", () => {
  const shape = { tokens: 4, vocab: 3, width: 2 };
  const ids = Int32Array.from([2, 0, 2, 1]);
  const table = Float32Array.from([1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...embeddingReference(ids, table, shape)], [5, 6, 1, 2, 5, 6, 3, 4]);
  const dy = Float32Array.from([1, 10, 100, 1000, 2, 20, 3, 30]);
  assert.deepEqual([...embeddingBackwardReference(ids, dy, shape)], [100, 1000, 3, 30, 3, 30]);
  assert.throws(
    () => embeddingReference(Int32Array.from([0, 3, 1, 1]), table, shape),
    /ids\[1\] = 3 is outside \[0, 3\)/,
  );
  assert.throws(
    () => embeddingBackwardReference(Int32Array.from([0, -1, 1, 1]), dy, shape),
    RangeError,
  );
});

Deno.test("EmbeddingPlan matches the references, odd shapes; the backward is deterministic", async () => {
  let seed = 1;
  const shapes = [
    [1, 1, 1],
    [7, 3, 33],
    [257, 5, 130],
    [1000, 50, 3],
    [600, 1024, 64], // most ids unused: zero rows
    [20_000, 13, 256], // many chunks, long runs per id
  ];
  for (const [tokens, vocab, width] of shapes) {
    const shape = { tokens, vocab, width };
    const next = rng(seed++);
    const ids = Int32Array.from({ length: tokens }, () => Math.floor(next() * vocab));
    const table = randn(vocab * width, seed++);
    const dy = randn(tokens * width, seed++);
    const { y, dtable, again } = await run(ids, table, dy, shape);
    const label = `[${tokens} ids, ${vocab}×${width}]`;
    assertClose(`y ${label}`, y, embeddingReference(ids, table, shape), TOL.f32Forward);
    assertGradient(`dtable ${label}`, dtable, ids, dy, shape);
    assert.deepEqual(again, dtable, `${label}: a second backward gives the same bits`);
  }
});

Deno.test("EmbeddingPlan: every token the same id (one long run striding over lanes)", async () => {
  const shape = { tokens: 40_000, vocab: 4, width: 70 };
  const ids = new Int32Array(shape.tokens).fill(2);
  const table = randn(shape.vocab * shape.width, 3);
  const dy = randn(shape.tokens * shape.width, 4);
  const { y, dtable } = await run(ids, table, dy, shape);
  assertClose("y same id", y, embeddingReference(ids, table, shape), TOL.f32Forward);
  assertGradient("dtable same id", dtable, ids, dy, shape);
});

Deno.test("EmbeddingPlan: out-of-range ids give zero rows and no gradient", async () => {
  const shape = { tokens: 300, vocab: 6, width: 5 };
  const next = rng(9);
  const ids = Int32Array.from({ length: 300 }, () => Math.floor(next() * 10) - 2); // -2 … 7
  const table = randn(30, 10);
  const dy = randn(1500, 11);
  const { y, dtable } = await run(ids, table, dy, shape);
  // The expected values: invalid tokens read as id 0 with a zero table row / zero dy row.
  const valid = (t: number) => ids[t] >= 0 && ids[t] < 6;
  const clamped = ids.map((v, t) => valid(t) ? v : 0);
  const y0 = embeddingReference(clamped, table, shape).map((v, i) =>
    valid(Math.floor(i / 5)) ? v : 0
  );
  assertClose("y with invalid ids", y, y0, TOL.f32Forward);
  const dy0 = dy.map((v, i) => valid(Math.floor(i / 5)) ? v : 0);
  assertGradient("dtable with invalid ids", dtable, clamped, dy0, shape);
});

Deno.test("EmbeddingPlan rejects bad shapes and buffers before GPU work", async () => {
  for (const bad of [0, -1, 2.5, NaN]) {
    await assert.rejects(
      () => EmbeddingPlan.create(device, { tokens: 4, vocab: bad, width: 3 }),
      /shape\.vocab must be a positive integer/,
    );
  }
  await assert.rejects(
    () => EmbeddingPlan.create({} as GPUDevice, { tokens: 4, vocab: 2, width: 3 }),
    TypeError,
  );
  await assert.rejects(
    () => EmbeddingPlan.create(device, { tokens: 1_000_000, vocab: 2, width: 32 }),
    /would loop \d+ times in one invocation/,
  );
  await assert.rejects(
    () => EmbeddingPlan.create(device, { tokens: 2 ** 20, vocab: 2, width: 64 }),
    /largest storage binding/,
  );
  assert.throws(
    () =>
      embeddingReference(new Int32Array(3), new Float32Array(6), { tokens: 4, vocab: 2, width: 3 }),
    /ids\.length must be 4, got 3/,
  );
  const plan = await EmbeddingPlan.create(device, { tokens: 4, vocab: 2, width: 3 });
  const buffer = (bytes: number) => createStorageBuffer(device, bytes, "test.embedding");
  const b = {
    ids: buffer(16),
    table: buffer(24),
    y: buffer(44),
    dy: buffer(48),
    dtable: buffer(24),
  };
  assert.throws(
    () => plan.encodeForward(device.createCommandEncoder(), b),
    /buffers\.y must hold at least 48 bytes, got a buffer of 44/,
  );
  assert.throws(
    () => plan.encodeBackward(device.createCommandEncoder(), { ...b, dtable: b.dy }),
    /must differ/,
  );
  for (const x of Object.values(b)) x.destroy();
  plan.destroy();
});
