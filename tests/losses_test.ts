import assert from "node:assert/strict";
import {
  CrossEntropyPlan,
  crossEntropyReference,
  type CrossEntropyShape,
  MsePlan,
  mseReference,
} from "../kernels/losses.ts";
import { createStorageBuffer, getDevice, readFloat32, uploadBuffer } from "../kernels/device.ts";
import { assertClose, randn, rng, TOL } from "./_helpers.ts";

const device = await getDevice();

/** Uploads i32 targets (their bytes, as u32). */
function uploadTargets(targets: Int32Array): GPUBuffer {
  const bits = new Uint32Array(targets.buffer, targets.byteOffset, targets.length);
  return uploadBuffer(device, bits, "test.targets");
}

/** Mean cross-entropy over the valid rows, f64 throughout (for finite differences). */
function crossEntropyF64(
  x: Float64Array,
  targets: Int32Array,
  { rows, classes }: CrossEntropyShape,
) {
  let total = 0;
  let valid = 0;
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t < 0) continue;
    valid++;
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(x[r * classes + c]);
    total += Math.log(sum) - x[r * classes + t];
  }
  return valid > 0 ? total / valid : 0;
}

/** Central finite differences of `f` at `x` (f64), compared with `grad` element-wise. */
function checkFiniteDifferences(
  label: string,
  x: Float64Array,
  grad: Float32Array,
  f: (x: Float64Array) => number,
): void {
  const h = 1e-5;
  for (let i = 0; i < x.length; i++) {
    const saved = x[i];
    x[i] = saved + h;
    const up = f(x);
    x[i] = saved - h;
    const down = f(x);
    x[i] = saved;
    const fd = (up - down) / (2 * h);
    // The reference is rounded to f32 (6e-8 relative); the difference quotient is good to ~1e-9.
    assert.ok(
      Math.abs(fd - grad[i]) <= 1e-7 + 1e-6 * Math.abs(fd),
      `${label}[${i}]: reference ${grad[i]}, finite difference ${fd}`,
    );
  }
}

Deno.test("crossEntropyReference() gradients match central finite differences of its loss", () => {
  const shape = { rows: 4, classes: 5 };
  const logits = randn(20, 1, 2);
  const targets = Int32Array.from([3, -1, 0, 4]);
  const ref = crossEntropyReference(logits, targets, shape);
  assert.equal(ref.valid, 3);
  const x = Float64Array.from(logits);
  assert.ok(Math.abs(ref.loss - crossEntropyF64(x, targets, shape)) < 1e-12);
  const sum = ref.losses.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - ref.loss) < 1e-6, `Σ losses ${sum} is the mean ${ref.loss}`);
  assert.deepEqual([...ref.dlogits.slice(5, 10)], [0, 0, 0, 0, 0], "the ignored row");
  assert.equal(ref.losses[1], 0);
  checkFiniteDifferences("dlogits", x, ref.dlogits, (x) => crossEntropyF64(x, targets, shape));
  // Every row of a softmax gradient sums to zero.
  for (let r = 0; r < 4; r++) {
    const s = ref.dlogits.slice(r * 5, r * 5 + 5).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(s) < 1e-7, `row ${r} of dlogits sums to ${s}`);
  }
  // Stable at ±1e3, and no rows to average over gives zeros, not NaN.
  const big = crossEntropyReference(Float32Array.from([1e3, -1e3, 0]), Int32Array.of(1), {
    rows: 1,
    classes: 3,
  });
  assert.ok(Math.abs(big.loss - 2000) < 1e-9, `${big.loss}`);
  const none = crossEntropyReference(logits, Int32Array.from([-1, -1, -1, -1]), shape);
  assert.equal(none.loss, 0);
  assert.equal(none.valid, 0);
  assert.ok(none.dlogits.every((d) => d === 0) && none.losses.every((d) => d === 0));
});

Deno.test("mseReference() gradients match central finite differences of its loss", () => {
  const pred = randn(7, 2);
  const target = randn(7, 3);
  const ref = mseReference(pred, target);
  const t = Float64Array.from(target);
  const mse = (p: Float64Array) => p.reduce((a, v, i) => a + (v - t[i]) ** 2, 0) / p.length;
  const p = Float64Array.from(pred);
  assert.ok(Math.abs(ref.loss - mse(p)) < 1e-12);
  const sum = ref.losses.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - ref.loss) < 1e-6, `Σ losses ${sum} is the mean ${ref.loss}`);
  checkFiniteDifferences("dpred", p, ref.dpred, mse);
});

/** Targets for `rows` rows: every fifth row −1, a few out of range (ignored on the GPU). */
function makeTargets(rows: number, classes: number, seed: number) {
  const next = rng(seed);
  const gpu = new Int32Array(rows);
  const ref = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let t = Math.floor(next() * classes);
    if (rows > 1 && r % 5 === 1) t = -1;
    if (rows > 1 && r % 11 === 3) t = r % 2 ? classes : -7; // out of range: no loss on the GPU
    gpu[r] = t;
    ref[r] = t >= 0 && t < classes ? t : -1;
  }
  return { gpu, ref };
}

/** Runs a cross-entropy plan once and returns what it wrote. */
async function runCrossEntropy(plan: CrossEntropyPlan, logits: Float32Array, targets: Int32Array) {
  const { rows, classes } = plan.shape;
  const b = {
    logits: uploadBuffer(device, logits, "test.logits"),
    targets: uploadTargets(targets),
    losses: uploadBuffer(device, randn(rows, 97, 1e3), "test.losses"), // overwritten
    dlogits: uploadBuffer(device, randn(rows * classes, 98, 1e3), "test.dlogits"),
  };
  const encoder = device.createCommandEncoder();
  plan.encode(encoder, b);
  device.queue.submit([encoder.finish()]);
  const losses = await readFloat32(device, b.losses, rows);
  const dlogits = await readFloat32(device, b.dlogits, rows * classes);
  for (const buffer of Object.values(b)) buffer.destroy();
  return { losses, dlogits };
}

Deno.test("CrossEntropyPlan matches the reference: odd rows and classes, ignored rows", async () => {
  let seed = 100;
  // Up to 256 classes an invocation owns a row; 300 and 1000 take the workgroup-per-row kernel.
  for (const rows of [1, 7, 257, 3000]) {
    for (const classes of [2, 3, 10, 130, 256, 300, 1000]) {
      const shape = { rows, classes };
      const plan = await CrossEntropyPlan.create(device, shape);
      const logits = randn(rows * classes, seed++, 3);
      const targets = makeTargets(rows, classes, seed++);
      const got = await runCrossEntropy(plan, logits, targets.gpu);
      const ref = crossEntropyReference(logits, targets.ref, shape);
      const label = `[${rows},${classes}] valid ${ref.valid}`;
      assertClose(`losses ${label}`, got.losses, ref.losses, TOL.f32Forward);
      assertClose(`dlogits ${label}`, got.dlogits, ref.dlogits, TOL.f32Forward);
      const total = got.losses.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(total - ref.loss) <= 1e-5 + 1e-4 * ref.loss, `${label}: Σ ${total}`);
      plan.destroy();
    }
  }
});

for (const classes of [130, 300]) {
  Deno.test(`CrossEntropyPlan: all rows ignored gives zeros, logits of ±1e3 stay finite (${classes} classes)`, async () => {
    const shape = { rows: 9, classes };
    const plan = await CrossEntropyPlan.create(device, shape);
    const logits = randn(9 * classes, 7, 3);
    const none = await runCrossEntropy(plan, logits, new Int32Array(9).fill(-1));
    assert.ok(none.losses.every((x) => x === 0), "losses are all 0");
    assert.ok(none.dlogits.every((x) => x === 0), "dlogits are all 0");
    // Logits of ±1e3 (and some rows whose target is the smallest logit: a loss of ~2000).
    const next = rng(8);
    const extreme = logits.map(() => (next() < 0.5 ? -1e3 : 1e3) * (0.5 + next() / 2));
    const targets = Int32Array.from({ length: 9 }, (_, r) => (r * 37) % classes);
    targets[4] = -1;
    const got = await runCrossEntropy(plan, extreme, targets);
    const ref = crossEntropyReference(extreme, targets, shape);
    assert.ok(ref.loss > 100, `the extreme case has a large loss: ${ref.loss}`);
    assertClose("losses ±1e3", got.losses, ref.losses, TOL.f32Forward);
    assertClose("dlogits ±1e3", got.dlogits, ref.dlogits, TOL.f32Forward);
    plan.destroy();
  });
}

Deno.test("CrossEntropyPlan: 100000 rows (a 2-D grid; the count pass strides), encoded twice", async () => {
  const shape = { rows: 100000, classes: 3 };
  const plan = await CrossEntropyPlan.create(device, shape);
  const logits = randn(shape.rows * 3, 11, 2);
  const first = makeTargets(shape.rows, 3, 12);
  const second = new Int32Array(shape.rows).fill(-1);
  second[99999] = 2; // one valid row, the last: its loss is not divided by anything else
  const b = (targets: Int32Array) => ({
    logits: uploadBuffer(device, logits, "test.logits"),
    targets: uploadTargets(targets),
    losses: createStorageBuffer(device, shape.rows * 4, "test.losses"),
    dlogits: createStorageBuffer(device, shape.rows * 12, "test.dlogits"),
  });
  const [b1, b2] = [b(first.gpu), b(second)];
  // Two encodes in one command buffer share the plan's count buffer: each sees its own count.
  const encoder = device.createCommandEncoder();
  plan.encode(encoder, b1);
  plan.encode(encoder, b2);
  device.queue.submit([encoder.finish()]);
  for (const [bs, targets] of [[b1, first.ref], [b2, second]] as const) {
    const ref = crossEntropyReference(logits, targets, shape);
    const label = `[100000,3] valid ${ref.valid}`;
    assertClose(
      `losses ${label}`,
      await readFloat32(device, bs.losses, shape.rows),
      ref.losses,
      TOL.f32Forward,
    );
    assertClose(
      `dlogits ${label}`,
      await readFloat32(device, bs.dlogits, shape.rows * 3),
      ref.dlogits,
      TOL.f32Forward,
    );
    for (const buffer of Object.values(bs)) buffer.destroy();
  }
  plan.destroy();
});

Deno.test("MsePlan matches the reference, up to a length that needs a 2-D grid", async () => {
  let seed = 300;
  for (const length of [1, 7, 257, 3000, 65535 * 64 + 1000]) {
    const plan = await MsePlan.create(device, { length });
    const pred = randn(length, seed++, 2);
    const target = randn(length, seed++);
    const b = {
      pred: uploadBuffer(device, pred, "test.pred"),
      target: uploadBuffer(device, target, "test.target"),
      losses: createStorageBuffer(device, length * 4, "test.losses"),
      dpred: createStorageBuffer(device, length * 4, "test.dpred"),
    };
    const encoder = device.createCommandEncoder();
    plan.encode(encoder, b);
    device.queue.submit([encoder.finish()]);
    const ref = mseReference(pred, target);
    assertClose(
      `losses [${length}]`,
      await readFloat32(device, b.losses, length),
      ref.losses,
      TOL.f32Forward,
    );
    assertClose(
      `dpred [${length}]`,
      await readFloat32(device, b.dpred, length),
      ref.dpred,
      TOL.f32Forward,
    );
    for (const buffer of Object.values(b)) buffer.destroy();
    plan.destroy();
  }
});

Deno.test("losses reject bad shapes, targets, arrays and buffers before any GPU work", async () => {
  for (const bad of [0, -2, 1.5, NaN, undefined]) {
    await assert.rejects(
      () => CrossEntropyPlan.create(device, { rows: bad as number, classes: 4 }),
      /shape\.rows must be a positive integer/,
    );
    await assert.rejects(
      () => MsePlan.create(device, { length: bad as number }),
      /shape\.length must be a positive integer/,
    );
  }
  await assert.rejects(
    () => CrossEntropyPlan.create(device, { rows: 4, classes: 1 }),
    /shape\.classes must be an integer ≥ 2, got 1/,
  );
  await assert.rejects(
    () => CrossEntropyPlan.create(device, { rows: 4_000_000, classes: 2 }),
    /shape\.rows must be at most 3839488/,
  );
  await assert.rejects(
    () => CrossEntropyPlan.create(device, { rows: 1, classes: 2_000_000 }),
    /shape\.classes must be at most/,
  );
  await assert.rejects(
    () => CrossEntropyPlan.create(undefined as unknown as GPUDevice, { rows: 1, classes: 2 }),
    TypeError,
  );
  const logits = new Float32Array(6);
  assert.throws(
    () => crossEntropyReference(logits, Int32Array.of(0, 3), { rows: 2, classes: 3 }),
    /targets\[1\] must be −1 or a class in \[0, 3\), got 3/,
  );
  assert.throws(
    () => crossEntropyReference(logits, Int32Array.of(-2, 0), { rows: 2, classes: 3 }),
    /targets\[0\] must be −1/,
  );
  assert.throws(
    () => crossEntropyReference(logits, new Float32Array(2) as never, { rows: 2, classes: 3 }),
    /targets must be an Int32Array/,
  );
  assert.throws(
    () => crossEntropyReference(new Float32Array(5), Int32Array.of(0, 0), { rows: 2, classes: 3 }),
    /logits\.length must be 6, got 5/,
  );
  assert.throws(
    () => mseReference(new Float32Array(3), new Float32Array(4)),
    /target\.length must be 3/,
  );
  assert.throws(() => mseReference(new Float32Array(0), new Float32Array(0)), /shape\.length/);

  const plan = await CrossEntropyPlan.create(device, { rows: 2, classes: 3 });
  const buffer = (bytes: number) => createStorageBuffer(device, bytes, "test.losses");
  const b = { logits: buffer(24), targets: buffer(8), losses: buffer(8), dlogits: buffer(20) };
  assert.throws(
    () => plan.encode(device.createCommandEncoder(), b),
    /buffers\.dlogits must hold at least 24 bytes, got a buffer of 20/,
  );
  assert.throws(
    () => plan.encode(device.createCommandEncoder(), { ...b, targets: buffer(4) }),
    /buffers\.targets must hold at least 8 bytes/,
  );
  assert.throws(
    () => plan.encode(device.createCommandEncoder(), { ...b, dlogits: b.logits }),
    /must be distinct/,
  );
  plan.destroy();
  const mse = await MsePlan.create(device, { length: 3 });
  const m = { pred: buffer(12), target: buffer(12), losses: buffer(12), dpred: buffer(8) };
  assert.throws(
    () => mse.encode(device.createCommandEncoder(), m),
    /buffers\.dpred must hold at least 12 bytes/,
  );
  assert.throws(
    () => mse.encode(device.createCommandEncoder(), { ...m, dpred: m.losses }),
    /must be distinct/,
  );
  // pred and target may be the same buffer: both are only read.
  mse.encode(device.createCommandEncoder(), { ...m, target: m.pred, dpred: buffer(12) });
  mse.destroy();
});
