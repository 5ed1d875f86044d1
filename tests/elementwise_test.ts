import assert from "node:assert/strict";
import {
  AddPlan,
  addReference,
  BiasAddPlan,
  biasAddReference,
  unaryBackwardReference,
  type UnaryFn,
  UnaryPlan,
  unaryReference,
} from "../kernels/elementwise.ts";
import { createStorageBuffer, getDevice, readFloat32, uploadBuffer } from "../kernels/device.ts";
import { assertClose, randn, TOL } from "./_helpers.ts";

const device = await getDevice();
const up = (data: Float32Array) => uploadBuffer(device, data, "test.elementwise");
const out = (n: number) => createStorageBuffer(device, n * 4, "test.elementwise.out");

/** GELU straight from its definition (tanh form), in f64, for finite differences. */
function geluF64(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

Deno.test("unaryBackwardReference() matches central finite differences (f64), ReLU'(0) = 0", () => {
  const x = Float32Array.from([-6, -3.1, -1, -0.37, -1e-3, 0, 2e-3, 0.25, 0.8, 1.7, 4.2, 9]);
  const dy = randn(x.length, 5);
  const h = 1e-5;
  for (const fn of ["gelu", "relu"] as const) {
    const f = fn === "gelu" ? geluF64 : (v: number) => Math.max(v, 0);
    const dx = unaryBackwardReference(fn, x, dy);
    for (let i = 0; i < x.length; i++) {
      if (fn === "relu" && Math.abs(x[i]) <= h) continue; // the kink
      const fd = (f(x[i] + h) - f(x[i] - h)) / (2 * h) * dy[i];
      assert.ok(
        Math.abs(fd - dx[i]) <= 1e-6 + 1e-5 * Math.abs(fd),
        `${fn}'(${x[i]})·dy: reference ${dx[i]}, finite difference ${fd}`,
      );
    }
    // The forward reference agrees with the tanh form (it computes x·σ(2u) instead).
    const y = unaryReference(fn, x);
    for (let i = 0; i < x.length; i++) {
      assert.ok(Math.abs(y[i] - f(x[i])) <= 1e-7 + 1e-6 * Math.abs(f(x[i])), `${fn}(${x[i]})`);
    }
  }
  const zero = Float32Array.from([0, -0]);
  assert.deepEqual([...unaryBackwardReference("relu", zero, Float32Array.from([3, 3]))], [0, 0]);
});

Deno.test("BiasAddPlan and AddPlan match the references in place, odd shapes", async () => {
  let seed = 1;
  for (const [rows, width] of [[1, 1], [7, 3], [257, 33], [3, 130], [1, 1000]]) {
    const shape = { rows, width };
    const x = randn(rows * width, seed++);
    const bias = randn(width, seed++);
    const y = randn(rows * width, seed++);
    const bx = up(x);
    const bb = up(bias);
    const by = up(y);
    const biasPlan = await BiasAddPlan.create(device, shape);
    const addPlan = await AddPlan.create(device, rows * width);
    const encoder = device.createCommandEncoder();
    biasPlan.encode(encoder, { x: bx, bias: bb });
    addPlan.encode(encoder, { x: bx, y: by });
    device.queue.submit([encoder.finish()]);
    const ref = addReference(biasAddReference(x, bias, shape), y);
    assertClose(
      `bias add + add [${rows},${width}]`,
      await readFloat32(device, bx, rows * width),
      ref,
      TOL.f32Forward,
    );
    // y and bias are read only.
    assert.deepEqual(await readFloat32(device, by, rows * width), y);
    assert.deepEqual(await readFloat32(device, bb, width), bias);
    for (const b of [bx, bb, by]) b.destroy();
    biasPlan.destroy();
    addPlan.destroy();
  }
});

Deno.test("UnaryPlan matches the references forward and backward, odd lengths", async () => {
  let seed = 20;
  for (const fn of ["gelu", "relu"] as UnaryFn[]) {
    for (const length of [1, 3, 33, 130, 4097]) {
      const x = randn(length, seed++, 3);
      if (length > 3) x.set([0, -0, 1e-30, -1e-30]);
      const dy = randn(length, seed++);
      const plan = await UnaryPlan.create(device, { length, fn });
      const b = { x: up(x), dy: up(dy), y: out(length), dx: out(length) };
      const encoder = device.createCommandEncoder();
      plan.encodeForward(encoder, b);
      plan.encodeBackward(encoder, b);
      device.queue.submit([encoder.finish()]);
      const label = `${fn} ${length}`;
      assertClose(
        `${label} y`,
        await readFloat32(device, b.y, length),
        unaryReference(fn, x),
        TOL.f32Forward,
      );
      assertClose(
        `${label} dx`,
        await readFloat32(device, b.dx, length),
        unaryBackwardReference(fn, x, dy),
        TOL.f32Forward,
      );
      for (const buffer of Object.values(b)) buffer.destroy();
      plan.destroy();
    }
  }
});

Deno.test("GELU and ReLU stay finite and saturate for huge |x|", async () => {
  const x = Float32Array.from([1e4, -1e4, 30, -30, 1e20, -1e20, 3e38, -3e38, 12, -12, -9, 9]);
  const dy = Float32Array.from(x, (_, i) => (i % 3) - 1.5);
  for (const fn of ["gelu", "relu"] as UnaryFn[]) {
    const plan = await UnaryPlan.create(device, { length: x.length, fn });
    const b = { x: up(x), dy: up(dy), y: out(x.length), dx: out(x.length) };
    const encoder = device.createCommandEncoder();
    plan.encodeForward(encoder, b);
    plan.encodeBackward(encoder, b);
    device.queue.submit([encoder.finish()]);
    const y = await readFloat32(device, b.y, x.length);
    const dx = await readFloat32(device, b.dx, x.length);
    // assertClose also fails on NaN or Inf.
    assertClose(`${fn} huge y`, y, unaryReference(fn, x), TOL.f32Forward);
    assertClose(`${fn} huge dx`, dx, unaryBackwardReference(fn, x, dy), TOL.f32Forward);
    assert.equal(y[0], 1e4);
    assert.equal(Math.abs(y[1]), 0);
    for (const buffer of Object.values(b)) buffer.destroy();
    plan.destroy();
  }
});

Deno.test("element-wise kernels on a 2-D grid: 17M elements, past 65535 workgroups", async () => {
  const rows = 4099;
  const width = 4100; // 16.8M elements > 65535·256
  const n = rows * width;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = ((i * 7919) % 2003) / 500 - 2;
  const bias = randn(width, 3);
  const bx = up(x);
  const bb = up(bias);
  const bgelu = out(n);
  const biasPlan = await BiasAddPlan.create(device, { rows, width });
  const gelu = await UnaryPlan.create(device, { length: n, fn: "gelu" });
  const encoder = device.createCommandEncoder();
  biasPlan.encode(encoder, { x: bx, bias: bb });
  gelu.encodeForward(encoder, { x: bx, y: bgelu });
  device.queue.submit([encoder.finish()]);
  const ref = biasAddReference(x, bias, { rows, width });
  assertClose("bias add 17M", await readFloat32(device, bx, n), ref, TOL.f32Forward);
  assertClose(
    "gelu 17M",
    await readFloat32(device, bgelu, n),
    unaryReference("gelu", ref),
    TOL.f32Forward,
  );
  for (const b of [bx, bb, bgelu]) b.destroy();
  biasPlan.destroy();
  gelu.destroy();
});

Deno.test("element-wise plans reject bad shapes, arrays and buffers before GPU work", async () => {
  for (const bad of [0, -1, 2.5, NaN, "3"]) {
    await assert.rejects(
      () => BiasAddPlan.create(device, { rows: 2, width: bad as number }),
      /shape\.width must be a positive integer/,
    );
    await assert.rejects(
      () => AddPlan.create(device, bad as number),
      /length must be a positive integer/,
    );
    await assert.rejects(
      () => UnaryPlan.create(device, { length: bad as number, fn: "gelu" }),
      /shape\.length must be a positive integer/,
    );
  }
  await assert.rejects(
    () => UnaryPlan.create(device, { length: 4, fn: "tanh" as UnaryFn }),
    TypeError,
  );
  await assert.rejects(() => AddPlan.create(undefined as unknown as GPUDevice, 4), TypeError);
  await assert.rejects(() => AddPlan.create(device, 2 ** 30), /largest storage binding/);
  assert.throws(
    () => biasAddReference(new Float32Array(5), new Float32Array(3), { rows: 2, width: 3 }),
    /x\.length must be 6, got 5/,
  );
  assert.throws(
    () => addReference(new Float32Array(2), new Float32Array(3)),
    /y\.length must be 2/,
  );
  assert.throws(() => unaryReference("gelu", [1, 2] as unknown as Float32Array), TypeError);

  const plan = await BiasAddPlan.create(device, { rows: 2, width: 3 });
  const x = out(6);
  const short = out(2);
  assert.throws(
    () => plan.encode(device.createCommandEncoder(), { x, bias: short }),
    /buffers\.bias must hold at least 12 bytes, got a buffer of 8/,
  );
  const add = await AddPlan.create(device, 6);
  assert.throws(
    () => add.encode(device.createCommandEncoder(), { x, y: x }),
    /buffers\.x and buffers\.y must be different buffers/,
  );
  const unary = await UnaryPlan.create(device, { length: 6, fn: "relu" });
  assert.throws(
    () => unary.encodeBackward(device.createCommandEncoder(), { x, dy: out(6), dx: x }),
    /must be different buffers/,
  );
  for (const p of [plan, add, unary]) p.destroy();
  x.destroy();
  short.destroy();
});
