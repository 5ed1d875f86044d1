import assert from "node:assert/strict";
import { dispatchOnBuffer, encodeOnBuffer } from "./_helpers.ts";
import { adapterReport, getDevice } from "../mod.ts";
import {
  _workerLane,
  compilePipelines,
  type CompileProgress,
  defaultCompileWorkers,
  getPipeline,
  isSoftwareDevice,
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
  const encode = (encoder: GPUCommandEncoder) =>
    encodeOnBuffer(device, encoder, pipeline, buffer, data.length / 64);
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

/** WGSL writing `V` (an override constant) into x[0]: one distinct pipeline per value of V. */
const WRITE_V = `override V: f32 = 0.0;
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(1) fn main() { x[0] = V; }`;

/** Runs a WRITE_V pipeline on a one-float buffer and returns x[0]. */
async function runWriteV(device: GPUDevice, pipeline: GPUComputePipeline): Promise<number> {
  const x = uploadBuffer(device, new Float32Array([-1]), "test.write-v");
  dispatchOnBuffer(device, pipeline, x);
  const [value] = await readFloat32(device, x, 1);
  x.destroy();
  return value;
}

Deno.test("compilePipelines() runs every new pipeline once, largest first, with compile workers too", async () => {
  const device = await getDevice();
  const tag = crypto.randomUUID().slice(0, 8); // new pipelines, whatever ran before
  const labels = [1, 2, 3, 4, 5].map((v) => `test.compile.${tag}.v${v}`);
  const pipelines = await Promise.all(labels.map((label, i) =>
    getPipeline(device, {
      key: label,
      label,
      // Padding makes each WGSL longer than the one before: the largest must come first.
      code: () => WRITE_V + "\n//" + "-".repeat(100 * i),
      constants: { V: i + 1 },
    })
  ));
  const seen: CompileProgress[] = [];
  const count = await compilePipelines(device, (p) => seen.push(p), { workers: 1 });
  assert.equal(count, seen.length);
  assert.deepEqual(seen.map((p) => p.done), seen.map((_, i) => i + 1));
  assert.ok(seen.every((p) => p.total === count && (p.lane === 0 || p.lane === 1)), `${seen}`);
  const ours = seen.filter((p) => labels.includes(p.label)).map((p) => p.label);
  assert.deepEqual([...ours].sort(), [...labels].sort(), "each new pipeline reported once");
  const mainThread = seen.filter((p) => p.lane === 0 && labels.includes(p.label)).map((p) =>
    p.label
  );
  assert.deepEqual(
    mainThread,
    [...mainThread].sort().reverse(),
    "this thread takes the largest first",
  );
  assert.equal(await compilePipelines(device, () => assert.fail("nothing is left")), 0);
  for (const [i, pipeline] of pipelines.entries()) {
    assert.equal(await runWriteV(device, pipeline), i + 1);
  }
});

Deno.test("a compile worker compiles the builds it claims, and says why when one fails", async () => {
  const device = await getDevice();
  const tag = crypto.randomUUID().slice(0, 8);
  const builds = [7, 8].map((v) => ({
    label: `test.worker.${tag}.v${v}`,
    code: WRITE_V,
    constants: { V: v },
  }));
  const next = new Int32Array(new SharedArrayBuffer(4));
  const done: number[] = [];
  const ok = await _workerLane(device, builds, next, (i, ms) => {
    assert.ok(ms >= 0);
    done.push(i);
  });
  assert.equal(ok.failure, undefined);
  assert.deepEqual(ok.compiled, [0, 1]);
  assert.deepEqual(done, [0, 1]);
  assert.equal(next[0], 3, "it claimed both builds, then saw the end once");

  const bad = [{ label: `test.worker.${tag}.bad`, code: "fn main( {" }, builds[0]];
  const failed = await _workerLane(device, bad, new Int32Array(new SharedArrayBuffer(4)), () => {
    assert.fail("the bad build comes first: nothing is compiled");
  });
  assert.deepEqual(failed.compiled, []);
  assert.match(failed.failure ?? "", new RegExp(`test\\.worker\\.${tag}\\.bad`));
});

Deno.test("defaultCompileWorkers() uses the spare cores on a software adapter only", async () => {
  const device = await getDevice();
  const cacheOff = /^(1|true|y|yes)$/i.test(Deno.env.get("MESA_SHADER_CACHE_DISABLE") ?? "");
  const expected = isSoftwareDevice(device) && !cacheOff
    ? Math.min(3, navigator.hardwareConcurrency - 1)
    : 0;
  assert.equal(defaultCompileWorkers(device), expected);
});
