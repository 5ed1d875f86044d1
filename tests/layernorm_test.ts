import assert from "node:assert/strict";
import {
  LAYERNORM_EPS,
  layerNormBackwardReference,
  LayerNormPlan,
  layerNormReference,
  type LayerNormShape,
} from "../kernels/layernorm.ts";
import { createStorageBuffer, readFloat32, uploadBuffer } from "../kernels/device.ts";
import { assertClose, randn, TOL } from "./_helpers.ts";

/** The loss Σ y·w of a layer norm computed in f64 throughout (for finite differences). */
function lossF64(
  x: Float64Array,
  gamma: Float64Array,
  beta: Float64Array,
  w: Float32Array,
  { rows, width }: LayerNormShape,
): number {
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    for (let c = 0; c < width; c++) mu += x[r * width + c];
    mu /= width;
    let v = 0;
    for (let c = 0; c < width; c++) v += (x[r * width + c] - mu) ** 2;
    const rs = 1 / Math.sqrt(v / width + LAYERNORM_EPS);
    for (let c = 0; c < width; c++) {
      loss += ((x[r * width + c] - mu) * rs * gamma[c] + beta[c]) * w[r * width + c];
    }
  }
  return loss;
}

Deno.test("layerNormBackwardReference() matches central finite differences of the f64 forward pass", () => {
  const shape = { rows: 3, width: 5 };
  const x = randn(15, 1);
  const gamma = randn(5, 2);
  const beta = randn(5, 3);
  const dy = randn(15, 4);
  const grads = layerNormBackwardReference(x, gamma, dy, shape);
  const h = 1e-5;
  const args = [Float64Array.from(x), Float64Array.from(gamma), Float64Array.from(beta)];
  for (const [which, grad] of [[0, grads.dx], [1, grads.dgamma], [2, grads.dbeta]] as const) {
    for (let i = 0; i < grad.length; i++) {
      const saved = args[which][i];
      args[which][i] = saved + h;
      const up = lossF64(args[0], args[1], args[2], dy, shape);
      args[which][i] = saved - h;
      const down = lossF64(args[0], args[1], args[2], dy, shape);
      args[which][i] = saved;
      const fd = (up - down) / (2 * h);
      assert.ok(
        Math.abs(fd - grad[i]) <= 1e-6 + 1e-5 * Math.abs(fd),
        `${["dx", "dgamma", "dbeta"][which]}[${i}]: reference ${grad[i]}, finite difference ${fd}`,
      );
    }
  }
  // Rows of a layer norm's dx sum to zero (shifting a row does not change its output).
  for (let r = 0; r < 3; r++) {
    const sum = grads.dx.slice(r * 5, r * 5 + 5).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum) < 1e-5, `row ${r} of dx sums to ${sum}`);
  }
});

for (const kernel of ["workgroup", "lane"] as const) {
  Deno.test(`LayerNormPlan (${kernel} kernels) matches the reference forward and backward, odd widths and many rows`, async () => {
    let seed = 10;
    const shapes = [[1, 1], [7, 33], [130, 64], [3, 257], [5, 1000], [66000, 8]]; // 66000 rows: a 2-D grid
    for (const [rows, width] of shapes) {
      const shape = { rows, width };
      const plan = await LayerNormPlan.create(shape, { kernel });
      assert.equal(plan.kernel, kernel);
      const { device } = plan;
      // Rows with an offset, so that the mean matters, and a spread of several units within each
      // row: in f32, x − μ loses |x|·6e-8 to rounding, so a row whose values nearly coincide
      // (which 66000 random rows of a small width would contain) is ill-conditioned for any f32
      // kernel, and so is a row of width 2, whose dx is a difference of nearly equal terms.
      const offset = (i: number) => 5 * Math.sin(Math.floor(i / width));
      const x = randn(rows * width, seed++, 0.2).map((v, i) => v + offset(i) + (i % width));
      const gamma = randn(width, seed++);
      const beta = randn(width, seed++);
      const dy = randn(rows * width, seed++);
      const up = (data: Float32Array) => uploadBuffer(device, data, "test.layernorm");
      const out = (n: number) => createStorageBuffer(device, n * 4, "test.layernorm.out");
      const b = {
        x: up(x),
        gamma: up(gamma),
        beta: up(beta),
        dy: up(dy),
        y: out(rows * width),
        mean: out(rows),
        rstd: out(rows),
        dx: out(rows * width),
        dgamma: up(randn(width, 99, 1e3)), // overwritten, not accumulated into
        dbeta: up(randn(width, 98, 1e3)),
      };
      const encoder = device.createCommandEncoder();
      plan.encodeForward(encoder, b);
      plan.encodeBackward(encoder, b);
      device.queue.submit([encoder.finish()]);
      const ref = layerNormReference(x, gamma, beta, shape);
      const grads = layerNormBackwardReference(x, gamma, dy, shape);
      const label = `[${rows},${width}]`;
      assertClose(
        `y ${label}`,
        await readFloat32(device, b.y, rows * width),
        ref.y,
        TOL.f32Forward,
      );
      assertClose(
        `mean ${label}`,
        await readFloat32(device, b.mean, rows),
        ref.mean,
        TOL.f32Forward,
      );
      assertClose(
        `rstd ${label}`,
        await readFloat32(device, b.rstd, rows),
        ref.rstd,
        TOL.f32Forward,
      );
      const dx = await readFloat32(device, b.dx, rows * width);
      assertClose(`dx ${label}`, dx, grads.dx, TOL.f32Backward);
      const dgamma = await readFloat32(device, b.dgamma, width);
      assertClose(`dgamma ${label}`, dgamma, grads.dgamma, TOL.f32Backward);
      const dbeta = await readFloat32(device, b.dbeta, width);
      assertClose(`dbeta ${label}`, dbeta, grads.dbeta, TOL.f32Backward);
      for (const buffer of Object.values(b)) buffer.destroy();
      plan.destroy();
    }
  });
}

Deno.test("LayerNormPlan picks an invocation per row for narrow rows, a workgroup per row for wide", async () => {
  assert.equal((await LayerNormPlan.create({ rows: 4, width: 128 })).kernel, "lane");
  assert.equal((await LayerNormPlan.create({ rows: 4, width: 129 })).kernel, "workgroup");
  await assert.rejects(
    () => LayerNormPlan.create({ rows: 4, width: 20000 }, { kernel: "lane" }),
    /at most 16384 features/,
  );
});

Deno.test("layer norm rejects bad shapes, eps, arrays and buffers", async () => {
  const good = new Float32Array(6);
  for (const bad of [0, -2, 1.5, NaN]) {
    assert.throws(
      () => layerNormReference(good, good, good, { rows: bad, width: 6 }),
      /shape\.rows must be a positive integer/,
    );
    await assert.rejects(
      () => LayerNormPlan.create({ rows: 1, width: bad }),
      /shape\.width must be a positive integer/,
    );
  }
  await assert.rejects(() => LayerNormPlan.create({ rows: 1, width: 6 }, { eps: 0 }), /eps/);
  assert.throws(
    () => layerNormReference(new Float32Array(5), good, good, { rows: 1, width: 6 }),
    /x\.length must be 6, got 5/,
  );
  assert.throws(
    () => layerNormBackwardReference(good, good, new Float32Array(7), { rows: 1, width: 6 }),
    /dy\.length must be 6, got 7/,
  );
  const plan = await LayerNormPlan.create({ rows: 2, width: 6 });
  const { device } = plan;
  const buffer = (bytes: number) => createStorageBuffer(device, bytes, "test.layernorm");
  const b = {
    x: buffer(48),
    gamma: buffer(24),
    beta: buffer(24),
    y: buffer(48),
    mean: buffer(8),
    rstd: buffer(4), // one row short
  };
  assert.throws(
    () => plan.encodeForward(device.createCommandEncoder(), b),
    /buffers\.rstd must hold at least 8 bytes/,
  );
  plan.destroy();
});
