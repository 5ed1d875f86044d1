import assert from "node:assert/strict";
import { matmul, MatmulPlan, matmulReference, type MatmulShape } from "../kernels/matmul.ts";
import { createStorageBuffer, getDevice, readFloat32, uploadBuffer } from "../kernels/device.ts";
import { assertClose, TOL, uniform } from "./_helpers.ts";

function describe(s: MatmulShape): string {
  return `B=${s.batch} M=${s.m} N=${s.n} K=${s.k}`;
}

// Sizes that are not multiples of the tile (128×64, k step 8) or of 4, more
// than one tile in each direction, and the aligned vec4 case.
const SIZES: Omit<MatmulShape, "transA" | "transB">[] = [
  { batch: 1, m: 1, n: 1, k: 1 },
  { batch: 3, m: 7, n: 33, k: 97 },
  { batch: 2, m: 64, n: 64, k: 64 },
  { batch: 2, m: 33, n: 97, k: 64 },
  { batch: 2, m: 97, n: 257, k: 33 },
  { batch: 1, m: 257, n: 7, k: 257 },
  { batch: 2, m: 132, n: 68, k: 20 },
];

async function checkGrid(transA: boolean, transB: boolean): Promise<void> {
  for (const [i, size] of SIZES.entries()) {
    const shape = { ...size, transA, transB };
    const a = uniform(shape.batch * shape.m * shape.k, 2 * i + 1);
    const b = uniform(shape.batch * shape.k * shape.n, 2 * i + 2);
    const got = await matmul(a, b, shape);
    const kind = `${transA ? "t" : "n"}${transB ? "t" : "n"}`;
    assertClose(
      `matmul ${kind} ${describe(shape)}`,
      got,
      matmulReference(a, b, shape),
      TOL.f32Forward,
    );
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
  const got = await matmul(a, b, shape, { alpha: 0.125 });
  assertClose(
    `matmul nt alpha=0.125 ${describe(shape)}`,
    got,
    matmulReference(a, b, shape, 0.125),
    TOL.f32Forward,
  );
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
});

Deno.test("MatmulPlan.create() rejects shapes beyond the device's limits", async () => {
  const device = untouchableDevice({ maxComputeWorkgroupsPerDimension: 100 });
  await assert.rejects(MatmulPlan.create(device, { batch: 101, m: 1, n: 1, k: 1 }), {
    name: "RangeError",
    message: /shape\.batch = 101 needs 101 workgroups .* maxComputeWorkgroupsPerDimension = 100/,
  });
  await assert.rejects(MatmulPlan.create(device, { batch: 1, m: 2, n: 1, k: 1 << 25 }), {
    name: "RangeError",
    message: /a needs 268435456 bytes, more than the device's maxStorageBufferBindingSize/,
  });
  await assert.rejects(MatmulPlan.create(device, { batch: 1, m: 1, n: 1, k: 0 }), {
    name: "RangeError",
    message: /shape\.k must be a positive integer/,
  });
});
