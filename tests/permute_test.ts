import assert from "node:assert/strict";
import { PermutePlan, permuteReference } from "../kernels/permute.ts";
import { createStorageBuffer, getDevice, readFloat32, uploadBuffer } from "../kernels/device.ts";
import { randn } from "./_helpers.ts";

const device = await getDevice();

Deno.test("permuteReference() swaps the middle axes", () => {
  // [1, 2, 3, 2]: src[0, i, j, x] = 100·i + 10·j + x.
  const src = Float32Array.from({ length: 12 }, (_, e) => {
    const x = e % 2;
    const j = Math.floor(e / 2) % 3;
    const i = Math.floor(e / 6);
    return 100 * i + 10 * j + x;
  });
  const dst = permuteReference(src, { outer: 1, a: 2, b: 3, inner: 2 });
  assert.deepEqual([...dst], [0, 1, 100, 101, 10, 11, 110, 111, 20, 21, 120, 121]);
  // Swapping back is the inverse.
  assert.deepEqual(permuteReference(dst, { outer: 1, a: 3, b: 2, inner: 2 }), src);
});

Deno.test("PermutePlan matches the reference and its a↔b plan inverts it, odd shapes", async () => {
  let seed = 1;
  const shapes = [
    [1, 1, 1, 1],
    [2, 7, 3, 33],
    [3, 1, 5, 8],
    [1, 257, 4, 1],
    [2, 130, 3, 64],
    [4, 64, 8, 16], // [batch, seq, heads, headDim]
    [3, 1000, 6, 35], // 630k elements: thousands of workgroups
  ];
  for (const [outer, a, b, inner] of shapes) {
    const shape = { outer, a, b, inner };
    const n = outer * a * b * inner;
    const src = randn(n, seed++);
    const forward = await PermutePlan.create(device, shape);
    const back = await PermutePlan.create(device, { outer, a: b, b: a, inner });
    const bsrc = uploadBuffer(device, src, "test.permute");
    const bdst = createStorageBuffer(device, n * 4, "test.permute");
    const bback = createStorageBuffer(device, n * 4, "test.permute");
    const encoder = device.createCommandEncoder();
    forward.encode(encoder, { src: bsrc, dst: bdst });
    back.encode(encoder, { src: bdst, dst: bback });
    device.queue.submit([encoder.finish()]);
    const label = `[${outer},${a},${b},${inner}]`;
    assert.deepEqual(await readFloat32(device, bdst, n), permuteReference(src, shape), label);
    assert.deepEqual(await readFloat32(device, bback, n), src, `${label} and back`);
    console.log(`  permute ${label}: exact`);
    for (const buffer of [bsrc, bdst, bback]) buffer.destroy();
    forward.destroy();
    back.destroy();
  }
});

Deno.test("PermutePlan past 65535 workgroups (2-D grid)", async () => {
  const shape = { outer: 8, a: 512, b: 16, inner: 260 }; // 17M elements > 65535·256
  const n = 8 * 512 * 16 * 260;
  const src = new Float32Array(n);
  for (let e = 0; e < n; e++) src[e] = (e * 7919) % 16_777_213; // integers, exact in f32
  const plan = await PermutePlan.create(device, shape);
  const bsrc = uploadBuffer(device, src, "test.permute");
  const bdst = createStorageBuffer(device, n * 4, "test.permute");
  const encoder = device.createCommandEncoder();
  plan.encode(encoder, { src: bsrc, dst: bdst });
  device.queue.submit([encoder.finish()]);
  const got = await readFloat32(device, bdst, n);
  const ref = permuteReference(src, shape);
  for (let e = 0; e < n; e++) {
    if (got[e] !== ref[e]) assert.fail(`element ${e}: got ${got[e]}, expected ${ref[e]}`);
  }
  bsrc.destroy();
  bdst.destroy();
  plan.destroy();
});

Deno.test("PermutePlan rejects bad shapes and buffers before GPU work", async () => {
  for (const bad of [0, -1, 2.5, NaN]) {
    await assert.rejects(
      () => PermutePlan.create(device, { outer: 1, a: 2, b: bad, inner: 3 }),
      /shape\.b must be a positive integer/,
    );
    assert.throws(
      () => permuteReference(new Float32Array(6), { outer: 1, a: 2, b: 3, inner: bad }),
      /shape\.inner must be a positive integer/,
    );
  }
  await assert.rejects(
    () => PermutePlan.create(undefined as unknown as GPUDevice, { outer: 1, a: 1, b: 1, inner: 1 }),
    TypeError,
  );
  await assert.rejects(
    () => PermutePlan.create(device, { outer: 1024, a: 1024, b: 64, inner: 64 }),
    /largest storage binding/,
  );
  assert.throws(
    () => permuteReference(new Float32Array(5), { outer: 1, a: 2, b: 3, inner: 1 }),
    /src\.length must be 6, got 5/,
  );
  const plan = await PermutePlan.create(device, { outer: 1, a: 2, b: 3, inner: 1 });
  const src = createStorageBuffer(device, 24, "test.permute");
  const dst = createStorageBuffer(device, 20, "test.permute");
  assert.throws(
    () => plan.encode(device.createCommandEncoder(), { src, dst }),
    /buffers\.dst must hold at least 24 bytes, got a buffer of 20/,
  );
  assert.throws(
    () => plan.encode(device.createCommandEncoder(), { src, dst: src }),
    /must be different buffers/,
  );
  src.destroy();
  dst.destroy();
  plan.destroy();
});
