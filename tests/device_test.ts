import assert from "node:assert/strict";
import { adapterReport, getDevice } from "../mod.ts";
import {
  getPipeline,
  measureSubmit,
  readFloat32,
  summarize,
  timeGpu,
  uploadBuffer,
} from "../kernels/device.ts";

Deno.test("getDevice() returns one shared device and adapterReport() describes its adapter", async () => {
  const [a, b] = await Promise.all([getDevice(), getDevice()]);
  assert.equal(a, b);
  const report = await adapterReport();
  assert.ok(report.description.length > 0);
  assert.equal(report.shaderF16, a.features.has("shader-f16"));
  assert.equal(
    report.limits.maxComputeWorkgroupStorageSize,
    a.limits.maxComputeWorkgroupStorageSize,
  );
  console.log(`  adapter: ${report.description} (software: ${report.isFallbackAdapter})`);
});

Deno.test("getPipeline() compiles once per key and names the failing shader on a WGSL error", async () => {
  const device = await getDevice();
  let builds = 0;
  const spec = {
    key: "test.double",
    label: "test.double",
    code: () => {
      builds++;
      return `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(1) fn main() { x[0] = 2.0 * x[0]; }`;
    },
  };
  const [p1, p2] = await Promise.all([getPipeline(device, spec), getPipeline(device, spec)]);
  assert.equal(p1, p2);
  assert.equal(builds, 1);
  await assert.rejects(
    () => getPipeline(device, { key: "test.bad", label: "test.bad", code: () => "fn main( {" }),
    /test\.bad/,
  );
});

Deno.test("measureSubmit() reads GPU timestamps that are positive and within the wall clock", async () => {
  const device = await getDevice();
  const data = Float32Array.from({ length: 1 << 16 }, (_, i) => i);
  const buffer = uploadBuffer(device, data, "test.timed");
  const pipeline = await getPipeline(device, {
    key: "test.scale",
    label: "test.scale",
    code: () =>
      `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < arrayLength(&x)) { x[g.x] = 0.5 * x[g.x]; }
}`,
  });
  const encode = (encoder: GPUCommandEncoder) => {
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(
      0,
      device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [{ binding: 0, resource: { buffer } }],
      }),
    );
    pass.dispatchWorkgroups(data.length / 64);
    pass.end();
  };
  const t = await measureSubmit(device, encode);
  assert.ok(t.wallMs > 0);
  if (device.features.has("timestamp-query")) {
    assert.ok(t.gpuMs !== undefined, "a timestamp reading on a device with timestamp-query");
    assert.ok(t.gpuMs > 0 && t.gpuMs <= t.wallMs, `0 < ${t.gpuMs} ≤ ${t.wallMs}`);
  } else {
    assert.equal(t.gpuMs, undefined);
  }
  const timing = await timeGpu(device, encode, { warmup: 0, reps: 5 });
  assert.equal(timing.samples.length, 5);
  assert.equal(timing.clock, device.features.has("timestamp-query") ? "timestamp" : "wall");
  // 1 + 5 runs halved every element: the kernel really ran each time.
  const out = await readFloat32(device, buffer, data.length);
  assert.equal(out[1000], 1000 / 64);
  buffer.destroy();
});

Deno.test("summarize() gives the median, min and max", () => {
  assert.deepEqual(summarize([3, 1, 2]), { msMedian: 2, msMin: 1, msMax: 3 });
  assert.deepEqual(summarize([4, 1, 2, 3]), { msMedian: 2.5, msMin: 1, msMax: 4 });
});

Deno.test("readBuffer() rejects instead of hanging when the device goes away", async () => {
  const adapter = await navigator.gpu.requestAdapter();
  const device = await adapter!.requestDevice({ label: "test.lost" });
  const buffer = uploadBuffer(device, new Float32Array([1, 2, 3, 4]), "test.lost");
  const read = readFloat32(device, buffer, 4);
  device.destroy();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error("readBuffer() hung after the device was lost")),
      10_000,
    );
  });
  try {
    await assert.rejects(() => Promise.race([read, hang]), (error: Error) => {
      assert.doesNotMatch(error.message, /hung/);
      return true;
    });
  } finally {
    clearTimeout(timer);
  }
});
