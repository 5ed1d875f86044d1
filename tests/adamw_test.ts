import assert from "node:assert/strict";
import {
  ADAMW_STEP_BYTES,
  AdamWPlan,
  type AdamWReference,
  adamWReference,
  type AdamWStep,
  createAdamWStepBuffer,
  writeAdamWStep,
} from "../kernels/adamw.ts";
import { createStorageBuffer, getDevice, readFloat32, uploadBuffer } from "../kernels/device.ts";
import { assertClose, randn, TOL } from "./_helpers.ts";

const device = await getDevice();

const BASE: AdamWStep = {
  lr: 1e-2,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  step: 1,
  maxNorm: Infinity,
};

/** Σ g², rounded to f32 as the GPU buffer holds it (the reference gets the same value). */
function sumSq(grad: Float32Array): number {
  let s = 0;
  for (const g of grad) s += g * g;
  return Math.fround(s);
}

Deno.test("adamWReference() follows the definition: first step, decoupled decay, clipping", () => {
  const param = Float32Array.from([1, -2, 0.5, 3]);
  const grad = Float32Array.from([0.3, -4, 1e-3, 0]);
  const zeros = new Float32Array(4);
  // Step 1 from zero moments: m̂ = g and v̂ = g², so the step is lr·g/(|g| + eps) ≈ lr·sign(g).
  const first = adamWReference(param, grad, zeros, zeros, BASE, 0, sumSq(grad));
  for (let i = 0; i < 4; i++) {
    const g = grad[i];
    const want = param[i] - BASE.lr * g / (Math.abs(g) + BASE.eps);
    assert.ok(Math.abs(first.param[i] - want) < 1e-7, `param[${i}] ${first.param[i]} vs ${want}`);
    assert.ok(Math.abs(first.m[i] - 0.1 * g) <= 1e-7 * Math.abs(g));
    assert.ok(Math.abs(first.v[i] - 0.001 * g * g) <= 1e-7 * g * g);
  }
  // Decoupled weight decay: p·(1 − lr·λ), then the Adam step of the undecayed run.
  const decayed = adamWReference(param, grad, zeros, zeros, BASE, 0.1, sumSq(grad));
  for (let i = 0; i < 4; i++) {
    const want = first.param[i] - BASE.lr * 0.1 * param[i];
    assert.ok(Math.abs(decayed.param[i] - want) < 1e-6, `decayed param[${i}]`);
  }
  // Clipping to norm 1 is the same as scaling the gradient by 1/(‖g‖ + 1e-6) without clipping.
  const v = Float32Array.from([0.1, 0.2, 0.3, 0.4]);
  const m = Float32Array.from([0.1, -0.2, 0.3, 0]);
  const later = { ...BASE, step: 50 };
  const clipped = adamWReference(param, grad, m, v, { ...later, maxNorm: 1 }, 0, 16.09);
  const scale = 1 / (Math.sqrt(16.09) + 1e-6);
  const scaled = grad.map((g) => g * scale);
  const manual = adamWReference(param, scaled, m, v, later, 0, 0);
  assertClose("clipped param", clipped.param, manual.param, { atol: 1e-7, rtol: 1e-6 });
  assertClose("clipped m", clipped.m, manual.m, { atol: 1e-7, rtol: 1e-6 });
  // A norm under maxNorm, maxNorm 0 and maxNorm Infinity all leave the gradient alone.
  for (const maxNorm of [100, 0, -1, Infinity]) {
    const same = adamWReference(param, grad, m, v, { ...later, maxNorm }, 0, 16.09);
    const plain = adamWReference(param, grad, m, v, later, 0, 16.09);
    assert.deepEqual(same, plain, `maxNorm ${maxNorm}`);
  }
  // The inputs are left as they were.
  assert.deepEqual([...param], [1, -2, 0.5, 3]);
  assert.deepEqual([...zeros], [0, 0, 0, 0]);
});

/** GPU buffers of one parameter tensor and its moments, starting from `param` and zero moments. */
function tensors(param: Float32Array) {
  return {
    param: uploadBuffer(device, param, "test.param"),
    grad: createStorageBuffer(device, param.length * 4, "test.grad"),
    m: createStorageBuffer(device, param.length * 4, "test.m"),
    v: createStorageBuffer(device, param.length * 4, "test.v"),
    gradSumSq: createStorageBuffer(device, 4, "test.gradSumSq"),
  };
}

Deno.test("AdamWPlan matches the reference over several steps: clipping, weight decay, step 1 and 50", async () => {
  const length = 4099;
  const stepBuffer = createAdamWStepBuffer(device);
  assert.equal(stepBuffer.size, ADAMW_STEP_BYTES);
  let seed = 500;
  const configs = [
    { weightDecay: 0, maxNorm: Infinity, gradStd: 1 },
    { weightDecay: 0.1, maxNorm: 0, gradStd: 1 },
    { weightDecay: 0.1, maxNorm: 5, gradStd: 1 }, // ‖g‖ ≈ 64: clipped to ~0.08×
    { weightDecay: 0, maxNorm: 1e4, gradStd: 1e-3 }, // clipping on, not binding; small gradients
  ];
  for (const { weightDecay, maxNorm, gradStd } of configs) {
    const plan = await AdamWPlan.create(device, { length, weightDecay });
    const init = randn(length, seed++);
    const b = tensors(init);
    let ref: AdamWReference = {
      param: init,
      m: new Float32Array(length),
      v: new Float32Array(length),
    };
    // Steps 1–3, then a jump to 50–52 (bias corrections near 1 for β1, still 0.05 for β2).
    for (const t of [1, 2, 3, 50, 51, 52]) {
      const step = { ...BASE, step: t, maxNorm };
      const grad = randn(length, seed++, gradStd);
      const s = sumSq(grad);
      device.queue.writeBuffer(b.grad, 0, grad.buffer as ArrayBuffer);
      device.queue.writeBuffer(b.gradSumSq, 0, Float32Array.of(s));
      writeAdamWStep(device, stepBuffer, step);
      const encoder = device.createCommandEncoder();
      plan.encode(encoder, { ...b, step: stepBuffer });
      device.queue.submit([encoder.finish()]);
      ref = adamWReference(ref.param, grad, ref.m, ref.v, step, weightDecay, s);
      const label = `λ ${weightDecay} maxNorm ${maxNorm} ‖g‖ ${Math.sqrt(s).toFixed(2)} t ${t}`;
      // Each side starts every step from its own f32 state, so rounding differences carry
      // over: f32 m and v are within a few ulps (1e-7 relative) of the f64 update of the same
      // inputs, and the step lr·m̂/(sqrt(v̂) + eps) ≤ ~lr moves p by at most ~1e-2 with a few
      // ulps of relative error, far inside TOL.f32Forward after six steps.
      assertClose(
        `param ${label}`,
        await readFloat32(device, b.param, length),
        ref.param,
        TOL.f32Forward,
      );
      assertClose(`m ${label}`, await readFloat32(device, b.m, length), ref.m, TOL.f32Forward);
      assertClose(`v ${label}`, await readFloat32(device, b.v, length), ref.v, TOL.f32Forward);
    }
    for (const buffer of Object.values(b)) buffer.destroy();
    plan.destroy();
  }
  stepBuffer.destroy();
});

Deno.test("AdamWPlan with an offset updates its range of flat buffers and nothing else", async () => {
  const align = device.limits.minStorageBufferOffsetAlignment / 4;
  const [offset, length, total] = [2 * align, 300, 2 * align + 300 + 37];
  const plan = await AdamWPlan.create(device, { length, weightDecay: 0.1, offset });
  const stepBuffer = createAdamWStepBuffer(device);
  const init = randn(total, 910);
  const m = randn(total, 911, 0.1);
  const v = randn(total, 912, 0.1).map((x, i) => x * x + m[i] * m[i]);
  const grad = randn(total, 913);
  const s = sumSq(grad);
  const b = {
    param: uploadBuffer(device, init, "test.param"),
    grad: uploadBuffer(device, grad, "test.grad"),
    m: uploadBuffer(device, m, "test.m"),
    v: uploadBuffer(device, v, "test.v"),
    gradSumSq: uploadBuffer(device, Float32Array.of(s), "test.gradSumSq"),
  };
  const step = { ...BASE, step: 3, maxNorm: 1 };
  writeAdamWStep(device, stepBuffer, step);
  const encoder = device.createCommandEncoder();
  plan.encode(encoder, { ...b, step: stepBuffer });
  device.queue.submit([encoder.finish()]);
  const range = (x: Float32Array) => x.slice(offset, offset + length);
  const ref = adamWReference(range(init), range(grad), range(m), range(v), step, 0.1, s);
  const got = {
    param: await readFloat32(device, b.param, total),
    m: await readFloat32(device, b.m, total),
    v: await readFloat32(device, b.v, total),
  };
  for (const key of ["param", "m", "v"] as const) {
    assertClose(`${key} in range`, range(got[key]), ref[key], TOL.f32Forward);
    const before = { param: init, m, v }[key];
    // Outside the range every element is bit for bit what it was.
    assert.deepEqual(got[key].subarray(0, offset), before.subarray(0, offset));
    assert.deepEqual(got[key].subarray(offset + length), before.subarray(offset + length));
  }
  await assert.rejects(
    () => AdamWPlan.create(device, { length, weightDecay: 0, offset: align + 1 }),
    /shape.offset must be a non-negative multiple of/,
  );
  for (const buffer of Object.values(b)) buffer.destroy();
  stepBuffer.destroy();
  plan.destroy();
});

Deno.test("AdamWPlan: a length that needs a 2-D grid of workgroups", async () => {
  const length = 65535 * 64 + 4097;
  const plan = await AdamWPlan.create(device, { length, weightDecay: 0.01 });
  const stepBuffer = createAdamWStepBuffer(device);
  const init = randn(length, 900);
  const m = randn(length, 901, 0.1);
  // Moments as training leaves them, v ≥ m² (else m̂/sqrt(v̂) is unboundedly large and so is the
  // step, which an f32 kernel then carries with 1e-7 relative error).
  const v = randn(length, 902, 0.1).map((x, i) => x * x + m[i] * m[i]);
  const grad = randn(length, 903);
  const b = {
    param: uploadBuffer(device, init, "test.param"),
    grad: uploadBuffer(device, grad, "test.grad"),
    m: uploadBuffer(device, m, "test.m"),
    v: uploadBuffer(device, v, "test.v"),
    gradSumSq: uploadBuffer(device, Float32Array.of(sumSq(grad)), "test.gradSumSq"),
  };
  const step = { ...BASE, step: 7, maxNorm: 1 };
  writeAdamWStep(device, stepBuffer, step);
  const encoder = device.createCommandEncoder();
  plan.encode(encoder, { ...b, step: stepBuffer });
  device.queue.submit([encoder.finish()]);
  const ref = adamWReference(init, grad, m, v, step, 0.01, sumSq(grad));
  assertClose(
    `param [${length}]`,
    await readFloat32(device, b.param, length),
    ref.param,
    TOL.f32Forward,
  );
  assertClose(`m [${length}]`, await readFloat32(device, b.m, length), ref.m, TOL.f32Forward);
  assertClose(`v [${length}]`, await readFloat32(device, b.v, length), ref.v, TOL.f32Forward);
  for (const buffer of Object.values(b)) buffer.destroy();
  stepBuffer.destroy();
  plan.destroy();
});

Deno.test("AdamW rejects bad steps, shapes and buffers before any GPU work", async () => {
  const stepBuffer = createAdamWStepBuffer(device);
  const bad: [Partial<AdamWStep>, RegExp][] = [
    [{ lr: -1 }, /step\.lr must be a finite number ≥ 0, got -1/],
    [{ lr: NaN }, /step\.lr/],
    [{ lr: Infinity }, /step\.lr/],
    [{ beta1: 1 }, /step\.beta1 must be in \[0, 1\), got 1/],
    [{ beta2: -0.1 }, /step\.beta2 must be in \[0, 1\)/],
    [{ eps: 0 }, /step\.eps must be a finite number > 0/],
    [{ eps: 1e-50 }, /step\.eps .* > 0 in f32/],
    [{ step: 0 }, /step\.step must be an integer ≥ 1, got 0/],
    [{ step: 1.5 }, /step\.step must be an integer ≥ 1/],
    [{ maxNorm: NaN }, /step\.maxNorm must be a number/],
  ];
  const one = new Float32Array(1);
  for (const [change, message] of bad) {
    const step = { ...BASE, ...change };
    assert.throws(() => writeAdamWStep(device, stepBuffer, step), message);
    assert.throws(() => adamWReference(one, one, one, one, step, 0, 0), message);
  }
  assert.throws(() => adamWReference(one, one, one, one, BASE, -0.1, 0), /weightDecay/);
  assert.throws(() => adamWReference(one, one, one, one, BASE, 0, NaN), /gradSumSq/);
  assert.throws(
    () => adamWReference(one, new Float32Array(2), one, one, BASE, 0, 0),
    /grad\.length must be 1, got 2/,
  );
  const small = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  assert.throws(
    () => writeAdamWStep(device, small, BASE),
    /buffer must hold at least 48 bytes, got a buffer of 16/,
  );
  for (const length of [0, -1, 2.5, NaN]) {
    await assert.rejects(
      () => AdamWPlan.create(device, { length, weightDecay: 0 }),
      /shape\.length must be a positive integer/,
    );
  }
  for (const weightDecay of [-1, NaN, Infinity]) {
    await assert.rejects(() => AdamWPlan.create(device, { length: 4, weightDecay }), /weightDecay/);
  }
  await assert.rejects(
    () => AdamWPlan.create(device, { length: 2 ** 40, weightDecay: 0 }),
    /more than one storage binding/,
  );
  const plan = await AdamWPlan.create(device, { length: 5, weightDecay: 0 });
  const b = { ...tensors(new Float32Array(5)), step: stepBuffer };
  const encoder = device.createCommandEncoder();
  assert.throws(
    () => plan.encode(encoder, { ...b, v: createStorageBuffer(device, 16, "test.v") }),
    /buffers\.v must hold at least 20 bytes, got a buffer of 16/,
  );
  assert.throws(
    () => plan.encode(encoder, { ...b, step: small }),
    /buffers\.step must hold at least 48/,
  );
  assert.throws(() => plan.encode(encoder, { ...b, m: b.v }), /must be distinct/);
  assert.throws(() => plan.encode(encoder, { ...b, grad: b.param }), /must be distinct/);
  small.destroy();
  stepBuffer.destroy();
  plan.destroy();
});
