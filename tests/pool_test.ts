/** The middle-axis sum (mean-pooling, head sum) and its broadcast backward against their references. */

import assert from "node:assert/strict";
import {
  poolBroadcastReference,
  PoolPlan,
  type PoolShape,
  poolSumReference,
} from "../kernels/pool.ts";
import { createStorageBuffer, getDevice, readFloat32, uploadBuffer } from "../kernels/device.ts";
import { assertClose, randn, TOL } from "./_helpers.ts";

const device = await getDevice();

Deno.test("poolSumReference() and poolBroadcastReference() follow the definition", () => {
  const x = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]); // [2, 3, 2]
  const shape = { outer: 2, middle: 3, inner: 2, scale: 0.5 };
  assert.deepEqual([...poolSumReference(x, shape)], [4.5, 6, 13.5, 15]);
  assert.deepEqual(
    [...poolBroadcastReference(Float32Array.from([1, 2, 3, 4]), shape)],
    [0.5, 1, 0.5, 1, 0.5, 1, 1.5, 2, 1.5, 2, 1.5, 2],
  );
});

Deno.test("PoolPlan sums over the middle axis and broadcasts back, at odd shapes", async () => {
  const shapes: PoolShape[] = [
    { outer: 1, middle: 1, inner: 1 },
    { outer: 32, middle: 16, inner: 32, scale: 1 / 16 }, // MNIST's mean over 16 patches
    { outer: 576, middle: 2, inner: 16 }, // the attention arch's head sum
    { outer: 7, middle: 97, inner: 33, scale: 1 / 97 },
    { outer: 3, middle: 1000, inner: 5, scale: -2 },
  ];
  let seed = 40;
  for (const shape of shapes) {
    const { outer, middle, inner } = shape;
    const plan = await PoolPlan.create(device, shape);
    const x = randn(outer * middle * inner, seed++);
    const dy = randn(outer * inner, seed++);
    const bx = uploadBuffer(device, x, "test.x");
    const bdy = uploadBuffer(device, dy, "test.dy");
    const out = createStorageBuffer(device, outer * inner * 4, "test.out");
    const dx = createStorageBuffer(device, outer * middle * inner * 4, "test.dx");
    const enc = device.createCommandEncoder();
    plan.encodeSum(enc, bx, out);
    plan.encodeBroadcast(enc, bdy, dx);
    device.queue.submit([enc.finish()]);
    const label = `[${outer}, ${middle}, ${inner}] scale ${shape.scale ?? 1}`;
    assertClose(
      `sum ${label}`,
      await readFloat32(device, out, outer * inner),
      poolSumReference(x, shape),
      TOL.f32Forward,
    );
    assertClose(
      `broadcast ${label}`,
      await readFloat32(device, dx, outer * middle * inner),
      poolBroadcastReference(dy, shape),
      TOL.f32Forward,
    );
    for (const b of [bx, bdy, out, dx]) b.destroy();
    plan.destroy();
  }
});

Deno.test("PoolPlan rejects bad shapes and buffers before any GPU work", async () => {
  await assert.rejects(
    () => PoolPlan.create(device, { outer: 0, middle: 1, inner: 1 }),
    /shape.outer/,
  );
  await assert.rejects(
    () => PoolPlan.create(device, { outer: 1, middle: 1.5, inner: 1 }),
    /shape.middle/,
  );
  await assert.rejects(
    () => PoolPlan.create(device, { outer: 1, middle: 60001, inner: 1 }),
    /at most 60000/,
  );
  await assert.rejects(
    () => PoolPlan.create(device, { outer: 1, middle: 1, inner: 1, scale: NaN }),
    /scale/,
  );
  assert.throws(
    () => poolSumReference(new Float32Array(3), { outer: 1, middle: 2, inner: 2 }),
    /x.length must be 4/,
  );
  const plan = await PoolPlan.create(device, { outer: 2, middle: 3, inner: 4 });
  const small = createStorageBuffer(device, 16, "test.small");
  const big = createStorageBuffer(device, 96, "test.big");
  const enc = device.createCommandEncoder();
  assert.throws(() => plan.encodeSum(enc, small, big), /src/);
  assert.throws(() => plan.encodeBroadcast(enc, big, big), /different buffers/);
  enc.finish();
  small.destroy();
  big.destroy();
  plan.destroy();
});
