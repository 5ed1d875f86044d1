import assert from "node:assert/strict";
import { ColumnSumPlan, columnSumReference, SumPlan, sumReference } from "../kernels/reduce.ts";
import {
  createStorageBuffer,
  getDevice,
  maxBindingBytes,
  readFloat32,
  uploadBuffer,
} from "../kernels/device.ts";
import { randn } from "./_helpers.ts";

const device = await getDevice();
const up = (data: Float32Array) => uploadBuffer(device, data, "test.reduce");

/** Relative tolerance of a sum, against the sum of absolute values (its condition). */
const RTOL = 1e-5;

function assertSum(label: string, got: number, ref: number, absSum: number): void {
  const err = Math.abs(got - ref);
  assert.ok(
    Number.isFinite(got) && err <= 1e-30 + RTOL * absSum,
    `${label}: got ${got}, reference ${ref} (|err| ${err} > ${RTOL}·Σ|x| = ${RTOL * absSum})`,
  );
  console.log(
    `  ${label.padEnd(50)} |err|/Σ|x| ${(err / Math.max(absSum, 1e-30)).toExponential(2)}`,
  );
}

/** Runs a SumPlan over x into a sentinel-filled `out` and checks every slot of out. */
async function checkSum(
  x: Float32Array,
  options: { square?: boolean; scale?: number; outIndex?: number },
  label: string,
): Promise<void> {
  const plan = await SumPlan.create(device, { length: x.length, ...options });
  const outIndex = options.outIndex ?? 0;
  const sentinel = Float32Array.from({ length: outIndex + 3 }, (_, i) => 1000 + i);
  const bx = up(x);
  const bout = up(sentinel);
  const encoder = device.createCommandEncoder();
  plan.encode(encoder, { x: bx, out: bout });
  device.queue.submit([encoder.finish()]);
  const out = await readFloat32(device, bout, sentinel.length);
  const ref = sumReference(x, options);
  const abs = Math.abs(options.scale ?? 1) *
    sumReference(x.map(Math.abs), { square: options.square });
  assertSum(label, out[outIndex], ref, abs);
  for (let i = 0; i < out.length; i++) {
    if (i !== outIndex) assert.equal(out[i], sentinel[i], `${label}: out[${i}] was changed`);
  }
  bx.destroy();
  bout.destroy();
  plan.destroy();
}

Deno.test("sumReference(): plain, squared, scaled", () => {
  const x = Float32Array.from([1, -2, 3.5]);
  assert.equal(sumReference(x), 2.5);
  assert.equal(sumReference(x, { square: true }), 1 + 4 + 12.25);
  assert.equal(sumReference(x, { scale: 0.5 }), 1.25);
  assert.throws(() => sumReference([1] as unknown as Float32Array), TypeError);
});

Deno.test("SumPlan matches the reference at odd lengths, leaves the rest of out alone", async () => {
  let seed = 1;
  for (const length of [1, 3, 33, 130, 257, 4097, 100_003]) {
    const x = randn(length, seed++);
    await checkSum(x, {}, `sum ${length}`);
    await checkSum(x, { square: true, scale: 0.25, outIndex: 2 }, `sum x² /4 ${length} → out[2]`);
    await checkSum(x, { scale: -1 / length, outIndex: 5 }, `mean ${length} → out[5]`);
  }
});

Deno.test("SumPlan past 65536·64 elements (many workgroups, each lane striding)", async () => {
  const length = 5_000_011;
  const x = randn(length, 77, 0.5).map((v) => v + 0.1);
  await checkSum(x, { square: true, outIndex: 1 }, `sum x² ${length}`);
  await checkSum(x, { scale: 1 / length }, `mean ${length}`);
});

Deno.test("SumPlan past the device's largest storage binding: summed in segments", async () => {
  // 50M elements (200 MB) where a binding holds less; else just past the binding size.
  const binding = maxBindingBytes(device) / 4;
  const length = Math.max(50_000_000, binding + 4321);
  if (length * 4 > device.limits.maxBufferSize) {
    console.log("  the device's largest buffer is smaller than one binding: skipped");
    return;
  }
  const x = new Float32Array(length);
  for (let i = 0; i < length; i++) x[i] = ((i * 7919) % 1009) / 1009 - 0.25;
  // Mark the last element of each segment boundary's neighbourhood so a skipped segment shows.
  x[length - 1] = 1e3;
  x[Math.min(binding, length - 1) - 1] = -500;
  await checkSum(x, { outIndex: 0 }, `sum ${length}`);
  await checkSum(x, { square: true, scale: 1e-3, outIndex: 1 }, `sum x²/1000 ${length}`);
});

Deno.test("SumPlan: x and out may be one buffer (a norm of slots into the next slot)", async () => {
  const slots = Float32Array.from([4, 9, 16, 0.25, -7]);
  const buffer = up(slots);
  const plan = await SumPlan.create(device, { length: 4, outIndex: 4, scale: 2 });
  const encoder = device.createCommandEncoder();
  plan.encode(encoder, { x: buffer, out: buffer });
  device.queue.submit([encoder.finish()]);
  assert.deepEqual([...await readFloat32(device, buffer, 5)], [4, 9, 16, 0.25, 2 * 29.25]);
  buffer.destroy();
  plan.destroy();
});

Deno.test("ColumnSumPlan matches the reference: tall, wide and odd shapes", async () => {
  let seed = 40;
  const shapes = [
    [1, 1],
    [7, 3],
    [257, 33],
    [1, 130],
    [3, 130],
    [20_000, 1], // one column, many chunks
    [100_000, 16], // bias gradient: rows ≫ width
    [3000, 512],
    [512, 20_000], // position-embedding gradient: width ≫ rows
    [2, 300_001],
  ];
  for (const [rows, width] of shapes) {
    const shape = { rows, width };
    const x = randn(rows * width, seed++);
    const plan = await ColumnSumPlan.create(device, shape);
    const bx = up(x);
    const bout = up(randn(width + 2, 9, 1e3)); // overwritten, not accumulated into
    const tail = await readFloat32(device, bout, width + 2);
    const encoder = device.createCommandEncoder();
    plan.encode(encoder, { x: bx, out: bout });
    device.queue.submit([encoder.finish()]);
    const got = await readFloat32(device, bout, width + 2);
    const ref = columnSumReference(x, shape);
    const abs = columnSumReference(x.map(Math.abs), shape);
    let worst = 0;
    for (let c = 0; c < width; c++) {
      const err = Math.abs(got[c] - ref[c]);
      assert.ok(
        err <= 1e-30 + RTOL * abs[c],
        `column sum [${rows},${width}] column ${c}: got ${got[c]}, reference ${ref[c]}`,
      );
      worst = Math.max(worst, err / abs[c]);
    }
    assert.equal(got[width], tail[width], "out past width is left alone");
    console.log(
      `  column sum [${rows},${width}]`.padEnd(52) + ` |err|/Σ|x| ${worst.toExponential(2)}`,
    );
    bx.destroy();
    bout.destroy();
    plan.destroy();
  }
});

Deno.test("reductions reject bad shapes, arrays and buffers before GPU work", async () => {
  for (const bad of [0, -3, 1.5, NaN]) {
    await assert.rejects(
      () => SumPlan.create(device, { length: bad }),
      /shape\.length must be a positive integer/,
    );
    await assert.rejects(
      () => ColumnSumPlan.create(device, { rows: bad, width: 4 }),
      /shape\.rows must be a positive integer/,
    );
  }
  await assert.rejects(() => SumPlan.create(device, { length: 4, outIndex: -1 }), /outIndex/);
  await assert.rejects(() => SumPlan.create(device, { length: 4, scale: Infinity }), /scale/);
  await assert.rejects(
    () => SumPlan.create(device, { length: 4, square: 1 as unknown as boolean }),
    TypeError,
  );
  await assert.rejects(
    () => SumPlan.create(null as unknown as GPUDevice, { length: 4 }),
    TypeError,
  );
  await assert.rejects(
    () => ColumnSumPlan.create(device, { rows: 2 ** 20, width: 2 ** 10 }),
    /largest storage binding/,
  );
  assert.throws(
    () => columnSumReference(new Float32Array(5), { rows: 2, width: 3 }),
    /x\.length must be 6, got 5/,
  );
  const sum = await SumPlan.create(device, { length: 6, outIndex: 3 });
  const x = createStorageBuffer(device, 24, "test.reduce");
  const out = createStorageBuffer(device, 12, "test.reduce");
  assert.throws(
    () => sum.encode(device.createCommandEncoder(), { x, out }),
    /buffers\.out must hold at least 16 bytes, got a buffer of 12/,
  );
  const columns = await ColumnSumPlan.create(device, { rows: 2, width: 4 });
  assert.throws(
    () => columns.encode(device.createCommandEncoder(), { x: out, out }),
    /buffers\.x must hold at least 32 bytes/,
  );
  sum.destroy();
  columns.destroy();
  x.destroy();
  out.destroy();
});
