import assert from "node:assert/strict";
import {
  matmul,
  type MatmulEpilogue,
  type MatmulOptions,
  matmulPath,
  MatmulPlan,
  matmulReference,
  type MatmulShape,
} from "../kernels/matmul.ts";
import { createStorageBuffer, getDevice, readFloat32, uploadBuffer } from "../kernels/device.ts";
import { assertClose, TOL, uniform } from "./_helpers.ts";

function describe(s: MatmulShape): string {
  return `B=${s.batch} M=${s.m} N=${s.n} K=${s.k}`;
}

// Sizes that are not multiples of either kernel's tile (128×64 and 128×32, k
// step 8) or of 4, more than one tile in each direction, and the aligned vec4
// case.
const SIZES: Omit<MatmulShape, "transA" | "transB">[] = [
  { batch: 1, m: 1, n: 1, k: 1 },
  { batch: 3, m: 7, n: 33, k: 97 },
  { batch: 2, m: 64, n: 64, k: 64 },
  { batch: 2, m: 33, n: 97, k: 64 },
  { batch: 2, m: 97, n: 257, k: 33 },
  { batch: 1, m: 257, n: 7, k: 257 },
  { batch: 2, m: 132, n: 68, k: 20 },
];

/**
 * Every way a product can run: each kernel, whole and with K in 3 slices
 * (fewer where K is short: slices are multiples of 8).
 */
const PATHS: Required<MatmulOptions>[] = [
  { kernel: "tiled", splitK: 1 },
  { kernel: "direct", splitK: 1 },
  { kernel: "tiled", splitK: 3 },
  { kernel: "direct", splitK: 3 },
];

async function checkGrid(transA: boolean, transB: boolean): Promise<void> {
  for (const [i, size] of SIZES.entries()) {
    const shape = { ...size, transA, transB };
    const a = uniform(shape.batch * shape.m * shape.k, 2 * i + 1);
    const b = uniform(shape.batch * shape.k * shape.n, 2 * i + 2);
    const ref = matmulReference(a, b, shape);
    const kind = `${transA ? "t" : "n"}${transB ? "t" : "n"}`;
    for (const options of PATHS) {
      const got = await matmul(a, b, shape, options);
      const { splitK } = matmulPath(shape, options);
      assertClose(
        `matmul ${kind} ${options.kernel} split ${splitK} ${describe(shape)}`,
        got,
        ref,
        TOL.f32Forward,
      );
    }
  }
}

Deno.test("matmul() matches the reference for plain A·B", () => checkGrid(false, false));
Deno.test("matmul() matches the reference for transposed B", () => checkGrid(false, true));
Deno.test("matmul() matches the reference for transposed A", () => checkGrid(true, false));
Deno.test("matmul() matches the reference for transposed A and B", () => checkGrid(true, true));

Deno.test("matmul() scales the product by alpha", async () => {
  const shape = { batch: 2, m: 33, n: 20, k: 16, transB: true };
  const a = uniform(2 * 33 * 16, 11);
  const b = uniform(2 * 16 * 20, 12);
  for (const options of PATHS) {
    const got = await matmul(a, b, shape, { alpha: 0.125, ...options });
    const { splitK } = matmulPath(shape, options);
    assertClose(
      `matmul nt alpha=0.125 ${options.kernel} split ${splitK} ${describe(shape)}`,
      got,
      matmulReference(a, b, shape, 0.125),
      TOL.f32Forward,
    );
  }
});

Deno.test("matmulPath() picks the direct kernel and split-K for small outputs with a long K", () => {
  // The training module's weight gradients: [32, 576]ᵀ·[576, 32] is one workgroup.
  const dw = { batch: 1, m: 32, n: 32, k: 576, transA: true };
  assert.deepEqual(matmulPath(dw), { kernel: "direct", splitK: 4, kChunk: 144 });
  assert.deepEqual(matmulPath({ ...dw, n: 128 }), { kernel: "direct", splitK: 1, kChunk: 576 });
  assert.deepEqual(matmulPath({ ...dw, k: 200 }), { kernel: "direct", splitK: 1, kChunk: 200 });
  assert.deepEqual(matmulPath({ ...dw, k: 49 }), { kernel: "direct", splitK: 1, kChunk: 56 });
  // The forward products have many rows: enough workgroups without a split.
  assert.deepEqual(matmulPath({ batch: 1, m: 576, n: 32, k: 32 }), {
    kernel: "direct",
    splitK: 1,
    kChunk: 32,
  });
  // Large outputs (the unfused attention baseline's scores) take the tiled kernel.
  assert.deepEqual(matmulPath({ batch: 4, m: 1024, n: 1024, k: 64, transB: true }), {
    kernel: "tiled",
    splitK: 1,
    kChunk: 64,
  });
  // A forced split is rounded to slices of multiples of 8, none empty.
  assert.deepEqual(matmulPath(dw, { kernel: "tiled", splitK: 5 }), {
    kernel: "tiled",
    splitK: 5,
    kChunk: 120,
  });
  assert.deepEqual(matmulPath({ ...dw, k: 20 }, { splitK: 3 }), {
    kernel: "direct",
    splitK: 3,
    kChunk: 8,
  });
  assert.deepEqual(matmulPath({ ...dw, k: 17 }, { splitK: 8 }), {
    kernel: "direct",
    splitK: 3,
    kChunk: 8,
  });
});

Deno.test("matmul() splits a long K over small outputs and matches the reference", async () => {
  // Weight-gradient shapes of the training module, and odd ones with more slices than tiles.
  const shapes: MatmulShape[] = [
    { batch: 1, m: 32, n: 32, k: 576, transA: true },
    { batch: 1, m: 49, n: 32, k: 512, transA: true },
    { batch: 2, m: 7, n: 13, k: 1001, transA: true, transB: true },
    { batch: 1, m: 33, n: 5, k: 777 },
  ];
  for (const [i, shape] of shapes.entries()) {
    const a = uniform(shape.batch * shape.m * shape.k, 31 + i);
    const b = uniform(shape.batch * shape.k * shape.n, 41 + i);
    const ref = matmulReference(a, b, shape, 0.5);
    for (const kernel of ["tiled", "direct"] as const) {
      for (const splitK of ["auto", 7] as const) {
        const got = await matmul(a, b, shape, { alpha: 0.5, kernel, splitK });
        const path = matmulPath(shape, { kernel, splitK });
        assertClose(
          `matmul ${kernel} split ${path.splitK} alpha=0.5 ${describe(shape)}`,
          got,
          ref,
          TOL.f32Forward,
        );
      }
    }
  }
});

Deno.test("MatmulPlan with split-K gives the same bits every time and reuses its scratch", async () => {
  // One plan encoded for two products in one encoder (the training graph shares
  // a plan across weights), then again: each result is the reference's, bit for bit repeated.
  const device = await getDevice();
  const shape = { batch: 1, m: 32, n: 32, k: 576, transA: true };
  const plan = await MatmulPlan.create(device, shape);
  assert.equal(plan.path.splitK, 4);
  const inputs = [0, 1].map((j) => [uniform(576 * 32, 51 + j), uniform(576 * 32, 61 + j)]);
  const bufs = inputs.map((pair) => pair.map((x) => uploadBuffer(device, x, "test.split")));
  const outs = [0, 1].map(() => createStorageBuffer(device, 32 * 32 * 4, "test.split.c"));
  try {
    const runs: Float32Array[][] = [];
    for (let r = 0; r < 2; r++) {
      const encoder = device.createCommandEncoder();
      for (const j of [0, 1]) plan.encode(encoder, bufs[j][0], bufs[j][1], outs[j]);
      device.queue.submit([encoder.finish()]);
      runs.push(await Promise.all(outs.map((o) => readFloat32(device, o, 32 * 32))));
    }
    for (const j of [0, 1]) {
      assertClose(
        `matmul split 4 product ${j} ${describe(shape)}`,
        runs[0][j],
        matmulReference(inputs[j][0], inputs[j][1], shape),
        TOL.f32Forward,
      );
      assert.deepEqual(runs[1][j], runs[0][j]);
    }
  } finally {
    plan.destroy();
    [...bufs.flat(), ...outs].forEach((b) => b.destroy());
  }
});

/** Σ_k op(B[b])[k, j] in f64: the column sums a plan's `columnSums` epilogue writes. */
function columnSumsReference(b: Float32Array, shape: MatmulShape): Float32Array {
  const { batch, n, k } = shape;
  const out = new Float32Array(batch * n); // [B,N]
  for (let bi = 0; bi < batch; bi++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) {
        sum += b[bi * k * n + (shape.transB ? j * k + p : p * n + j)];
      }
      out[bi * n + j] = sum;
    }
  }
  return out;
}

Deno.test("MatmulPlan adds a bias and writes op(B)'s column sums in its dispatch, on every path", async () => {
  const device = await getDevice();
  const shapes: MatmulShape[] = [
    { batch: 1, m: 32, n: 32, k: 576, transA: true }, // a weight gradient and its bias gradient
    { batch: 2, m: 33, n: 7, k: 97, transB: true },
    { batch: 1, m: 130, n: 66, k: 40 },
    { batch: 2, m: 5, n: 13, k: 200, transA: true, transB: true },
  ];
  // As the dense layers use them: the bias in the forward product, the column
  // sums in the weight gradient's (each epilogue alone, so at binding 4).
  const epilogues: MatmulEpilogue[] = [{ bias: true }, { columnSums: true }];
  for (const [i, shape] of shapes.entries()) {
    const { batch, m, n, k } = shape;
    const a = uniform(batch * m * k, 71 + i), b = uniform(batch * k * n, 81 + i);
    const bias = uniform(n, 91 + i);
    const product = matmulReference(a, b, shape, 0.5);
    const withBias = product.map((x, e) => x + bias[e % n]);
    const sums = columnSumsReference(b, shape);
    const [aBuf, bBuf, biasBuf] = [a, b, bias].map((x) => uploadBuffer(device, x, "test.epi"));
    const cBuf = createStorageBuffer(device, batch * m * n * 4, "test.epi.c");
    const sBuf = createStorageBuffer(device, batch * n * 4, "test.epi.s");
    try {
      for (const options of PATHS) {
        for (const epilogue of epilogues) {
          const plan = await MatmulPlan.create(device, shape, 0.5, { ...options, ...epilogue });
          const encoder = device.createCommandEncoder();
          plan.encode(encoder, aBuf, bBuf, cBuf, {
            bias: epilogue.bias ? biasBuf : undefined,
            columnSums: epilogue.columnSums ? sBuf : undefined,
          });
          device.queue.submit([encoder.finish()]);
          const what = Object.keys(epilogue).join("+");
          const label = `matmul ${what} ${options.kernel} split ${plan.path.splitK} ${
            describe(shape)
          }`;
          const c = await readFloat32(device, cBuf, batch * m * n);
          assertClose(label, c, epilogue.bias ? withBias : product, TOL.f32Forward);
          if (epilogue.columnSums) {
            assertClose(
              `${label} sums`,
              await readFloat32(device, sBuf, batch * n),
              sums,
              TOL.f32Forward,
            );
          }
          plan.destroy();
        }
      }
      // An epilogue's buffer must match the plan.
      const plain = await MatmulPlan.create(device, shape);
      const withSums = await MatmulPlan.create(device, shape, 1, { columnSums: true });
      assert.throws(
        () => plain.encode(device.createCommandEncoder(), aBuf, bBuf, cBuf, { bias: biasBuf }),
        {
          name: "TypeError",
          message: /extra\.bias given to a plan made without the bias option/,
        },
      );
      assert.throws(() => withSums.encode(device.createCommandEncoder(), aBuf, bBuf, cBuf), {
        name: "TypeError",
        message: /this plan computes columnSums: encode needs extra\.columnSums/,
      });
      plain.destroy();
      withSums.destroy();
    } finally {
      [aBuf, bBuf, biasBuf, cBuf, sBuf].forEach((x) => x.destroy());
    }
  }
});

Deno.test("matmulReference() computes a small product exactly", () => {
  // [[1, 2], [3, 4]] · [[5, 6], [7, 8]] and the same with B stored transposed.
  const a = new Float32Array([1, 2, 3, 4]);
  const b = new Float32Array([5, 6, 7, 8]);
  const shape = { batch: 1, m: 2, n: 2, k: 2 };
  assert.deepEqual([...matmulReference(a, b, shape)], [19, 22, 43, 50]);
  assert.deepEqual([...matmulReference(a, b, { ...shape, transB: true })], [17, 23, 39, 53]);
  assert.deepEqual([...matmulReference(a, b, { ...shape, transA: true }, 2)], [52, 60, 76, 88]);
});

Deno.test("MatmulPlan chains products in one encoder, as unfused attention does", async () => {
  // S = Q·Kᵀ / 8 then O = S·V, both recorded into one command encoder.
  const device = await getDevice();
  const [B, S, D] = [2, 70, 24];
  const q = uniform(B * S * D, 21), k = uniform(B * S * D, 22), v = uniform(B * S * D, 23);
  const scores = await MatmulPlan.create(
    device,
    { batch: B, m: S, n: S, k: D, transB: true },
    1 / 8,
  );
  const out = await MatmulPlan.create(device, { batch: B, m: S, n: D, k: S });
  assert.equal(scores.flops, 2 * B * S * S * D);
  const bufs = [q, k, v].map((x, i) => uploadBuffer(device, x, `test.${"qkv"[i]}`));
  const sBuf = createStorageBuffer(device, B * S * S * 4, "test.s");
  const oBuf = createStorageBuffer(device, B * S * D * 4, "test.o");
  try {
    const encoder = device.createCommandEncoder({ label: "test.attention" });
    scores.encode(encoder, bufs[0], bufs[1], sBuf); // [B,S,S]
    out.encode(encoder, sBuf, bufs[2], oBuf); // [B,S,D]
    device.queue.submit([encoder.finish()]);
    const sRef = matmulReference(q, k, scores.shape, 1 / 8);
    const oRef = matmulReference(sRef, v, out.shape);
    assertClose(
      `matmul plan chain S·V B=${B} S=${S} D=${D}`,
      await readFloat32(device, oBuf, B * S * D),
      oRef,
      TOL.f32Forward,
    );
    const small = createStorageBuffer(device, 16, "test.small");
    assert.throws(() => out.encode(device.createCommandEncoder(), sBuf, bufs[2], small), {
      name: "RangeError",
      message: new RegExp(`buffer c must hold at least ${B * S * D * 4} bytes, got a buffer of 16`),
    });
    small.destroy();
  } finally {
    scores.destroy();
    out.destroy();
    [...bufs, sBuf, oBuf].forEach((buf) => buf.destroy());
  }
});

/** A stand-in device that fails the test if anything but its limits is touched. */
function untouchableDevice(limits: Partial<GPUSupportedLimits> = {}): GPUDevice {
  const allLimits = {
    maxComputeWorkgroupsPerDimension: 65535,
    maxStorageBufferBindingSize: 128 << 20,
    maxBufferSize: 256 << 20,
    ...limits,
  };
  return new Proxy({} as GPUDevice, {
    get(_, prop) {
      if (prop === "limits") return allLimits;
      if (prop === "then") return undefined; // not a thenable
      throw new Error(`the GPU device was used (${String(prop)}) before the input was checked`);
    },
  });
}

Deno.test("matmul() rejects bad input with a RangeError before GPU work", async () => {
  const device = untouchableDevice();
  const a = new Float32Array(6), b = new Float32Array(12);
  const good = { batch: 1, m: 2, n: 4, k: 3 };
  const cases: [Partial<MatmulShape>, RegExp][] = [
    [{ m: 0 }, /shape\.m must be a positive integer, got 0/],
    [{ n: 2.5 }, /shape\.n must be a positive integer, got 2\.5/],
    [{ k: NaN }, /shape\.k must be a positive integer, got NaN/],
    [{ batch: -1 }, /shape\.batch must be a positive integer, got -1/],
    [{ k: 4 }, /a must hold batch·m·k = 8 values \(\[batch, m, k\]\), got 6/],
    [{ batch: 2 }, /a must hold batch·m·k = 12 values/],
    [{ n: 5 }, /b must hold batch·k·n = 15 values \(\[batch, k, n\]\), got 12/],
    [{ n: 5, transB: true }, /b must hold batch·k·n = 15 values \(\[batch, n, k\]\), got 12/],
  ];
  for (const [change, message] of cases) {
    const shape = { ...good, ...change };
    await assert.rejects(matmul(a, b, shape, { device }), { name: "RangeError", message });
    assert.throws(() => matmulReference(a, b, shape), { name: "RangeError", message });
  }
  await assert.rejects(matmul(a, b, good, { device, alpha: Infinity }), {
    name: "RangeError",
    message: /alpha must be a finite number, got Infinity/,
  });
  const badOptions: [MatmulOptions, RegExp][] = [
    [
      { kernel: "fast" as "tiled" },
      /options\.kernel must be "auto", "tiled" or "direct", got "fast"/,
    ],
    [{ splitK: 0 }, /options\.splitK must be a positive integer or "auto", got 0/],
    [{ splitK: 1.5 }, /options\.splitK must be a positive integer or "auto", got 1\.5/],
  ];
  for (const [options, message] of badOptions) {
    await assert.rejects(matmul(a, b, good, { device, ...options }), {
      name: "RangeError",
      message,
    });
    await assert.rejects(MatmulPlan.create(device, good, 1, options), {
      name: "RangeError",
      message,
    });
  }
});

Deno.test("MatmulPlan.create() rejects shapes beyond the device's limits", async () => {
  const device = untouchableDevice({ maxComputeWorkgroupsPerDimension: 100 });
  await assert.rejects(MatmulPlan.create(device, { batch: 101, m: 1, n: 1, k: 1 }), {
    name: "RangeError",
    message: /shape\.batch = 101 needs 101 workgroups .* maxComputeWorkgroupsPerDimension = 100/,
  });
  // Split-K multiplies the batch's workgroups.
  await assert.rejects(
    MatmulPlan.create(device, { batch: 30, m: 1, n: 1, k: 64 }, 1, { splitK: 4 }),
    {
      name: "RangeError",
      message: /shape\.batch = 30 needs 120 workgroups in one dimension \(with split-K 4\)/,
    },
  );
  await assert.rejects(MatmulPlan.create(device, { batch: 1, m: 2, n: 1, k: 1 << 25 }), {
    name: "RangeError",
    message: /a needs 268435456 bytes, more than the device's maxStorageBufferBindingSize/,
  });
  await assert.rejects(MatmulPlan.create(device, { batch: 1, m: 1, n: 1, k: 0 }), {
    name: "RangeError",
    message: /shape\.k must be a positive integer/,
  });
});
