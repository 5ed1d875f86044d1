/** cachedBindGroup(): one bind group per pipeline and buffer set, bounded. */

import assert from "node:assert/strict";
import { cachedBindGroup, MAX_BIND_GROUPS_PER_PIPELINE } from "../kernels/bind_groups.ts";
import { getDevice } from "../kernels/device.ts";

Deno.test("cachedBindGroup() builds a bind group once per pipeline and buffer set", async () => {
  const device = await getDevice();
  const module = device.createShaderModule({
    code: `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(1) fn main() { y[0] = x[0]; }`,
  });
  const layout = "auto" as const;
  const pipeline = device.createComputePipeline({
    layout,
    compute: { module, entryPoint: "main" },
  });
  const other = device.createComputePipeline({ layout, compute: { module, entryPoint: "main" } });
  const usage = GPUBufferUsage.STORAGE;
  const [a, b, c] = [0, 1, 2].map(() => device.createBuffer({ size: 512, usage }));
  const ab = cachedBindGroup(device, pipeline, [a, b]);
  assert.equal(cachedBindGroup(device, pipeline, [a, b]), ab);
  assert.equal(cachedBindGroup(device, pipeline, [{ buffer: a }, { buffer: b }]), ab);
  assert.notEqual(cachedBindGroup(device, pipeline, [a, c]), ab);
  assert.notEqual(cachedBindGroup(device, pipeline, [b, a]), ab);
  assert.notEqual(cachedBindGroup(device, pipeline, [a, { buffer: b, size: 256 }]), ab);
  assert.notEqual(cachedBindGroup(device, pipeline, [a, { buffer: b, offset: 256 }]), ab);
  assert.notEqual(cachedBindGroup(device, other, [a, b]), ab);
  // Fresh buffers every call cannot grow the cache past its bound: it is emptied when full.
  for (let i = 0; i < MAX_BIND_GROUPS_PER_PIPELINE; i++) {
    const fresh = device.createBuffer({ size: 16, usage });
    cachedBindGroup(device, pipeline, [a, fresh]);
    fresh.destroy();
  }
  assert.notEqual(cachedBindGroup(device, pipeline, [a, b]), ab);
  for (const buffer of [a, b, c]) buffer.destroy();
});
