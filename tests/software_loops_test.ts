// Mesa's llvmpipe (the software adapter) stops a shader invocation after 65535 loop iterations
// in all. These tests pin that fact down and check that the fused attention plans refuse the
// shapes that would hit it, instead of returning silently truncated results.

import assert from "node:assert/strict";
import { AttentionPlan, getDevice } from "../mod.ts";
import {
  directSoftwareReads,
  fusedLoopIterations,
  fusedTiles,
  SOFTWARE_LOOP_LIMIT,
} from "../kernels/attention_fused.ts";
import { fusedBackwardTiles } from "../kernels/attention_fused_backward.ts";
import { createStorageBuffer, isSoftwareDevice, readFloat32 } from "../kernels/device.ts";
import { dispatchOnBuffer } from "./_helpers.ts";

const device = await getDevice();
const software = isSoftwareDevice(device);

Deno.test({
  name: "llvmpipe stops an invocation after 65535 loop iterations, counted across loops",
  ignore: !software,
  async fn() {
    const code = `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1)
fn main() {
  var a = 0.0;
  for (var i = 0u; i < 40000u; i++) { a += 1.0; }
  var b = 0.0;
  for (var i = 0u; i < 40000u; i++) { b += 1.0; }
  out[0] = a;
  out[1] = b;
}`;
    const pipeline = device.createComputePipeline({
      label: "test.loop-limit",
      layout: "auto",
      compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
    });
    const buffer = createStorageBuffer(device, 8, "test.loop-limit");
    dispatchOnBuffer(device, pipeline, buffer);
    const [a, b] = await readFloat32(device, buffer, 2);
    buffer.destroy();
    assert.equal(a, 40000, "the first loop runs in full");
    // The budget is shared: 40000 passes, one for the first loop's exit test, and what is
    // left. If b ever reaches 40000, Mesa has lifted the limit and the guard in
    // AttentionPlan (SOFTWARE_LOOP_LIMIT) can go.
    assert.equal(b, SOFTWARE_LOOP_LIMIT - 40001, "the second loop gets what the first left");
  },
});

Deno.test("fusedLoopIterations() bounds what the fused kernels loop, and grows with seqLen", () => {
  for (const activation of ["softmax", "sigmoid"] as const) {
    const forward = fusedTiles(activation, 32, 32768, true);
    // The demo's long-context run (S = 16384, D = 32) is well inside the budget.
    const demo = fusedLoopIterations("forward", activation, 32, forward, 16384);
    assert.ok(demo < SOFTWARE_LOOP_LIMIT / 2, `${activation} S=16384 D=32: ${demo}`);
    // Per tile: one tile step, the staging loop and the loops over the tile, each loop one
    // more for its final exit test; one more for the tile loop's own exit.
    const passes = activation === "softmax" ? 2 : 1;
    const perTile = 1 + (Math.ceil(forward.keys * 8 / forward.lanes) + 1) +
      passes * (forward.keys / 4 + 1);
    assert.equal(
      fusedLoopIterations("forward", activation, 32, forward, forward.keys * 10),
      10 * perTile + 1,
    );
    const dkv = fusedBackwardTiles("dkv", activation, 256, 32768, true);
    const long = fusedLoopIterations("dkv", activation, 256, dkv, 16384);
    assert.ok(long > SOFTWARE_LOOP_LIMIT, `${activation} dkv S=16384 D=256: ${long}`);
    // Direct reads stage nothing: per block only the block step and the loops over it.
    const direct = fusedTiles(activation, 32, 32768, true, true);
    assert.equal(
      fusedLoopIterations("forward", activation, 32, direct, direct.keys * 10),
      10 * (1 + passes * (direct.keys / 4 + 1)) + 1,
    );
    const directDkv = fusedBackwardTiles("dkv", activation, 64, 32768, true, true);
    assert.equal(
      fusedLoopIterations("dkv", activation, 64, directDkv, directDkv.keys * 10),
      10 * (1 + directDkv.keys / 4 + 1) + 1,
    );
  }
});

Deno.test({
  name: "AttentionPlan refuses, on the software adapter, shapes past llvmpipe's loop limit",
  ignore: !software,
  async fn() {
    const shape = { batch: 1, heads: 1, seqLen: 16384, headDim: 256 };
    // The tiles the plans use on this device (direct reads where directSoftwareReads says so).
    const direct = directSoftwareReads(device);
    const storage = device.limits.maxComputeWorkgroupStorageSize;
    const loops = (kernel: "forward" | "dkv", headDim: number, seqLen: number) =>
      fusedLoopIterations(
        kernel,
        "softmax",
        headDim,
        kernel === "forward"
          ? fusedTiles("softmax", headDim, storage, true, direct)
          : fusedBackwardTiles("dkv", "softmax", headDim, storage, true, direct),
        seqLen,
      );
    if (direct) {
      // Direct reads (no shader-f16: OpenGL) loop less per key and not at all over D: the
      // staged kernels' S = 16384 fits, and the forward binds first, at S = 131072.
      assert.ok(loops("forward", 256, 16384) <= SOFTWARE_LOOP_LIMIT);
      assert.ok(loops("dkv", 64, 131072) < loops("forward", 64, 131072));
      assert.ok(loops("forward", 64, 65536) <= SOFTWARE_LOOP_LIMIT);
      await assert.rejects(
        () =>
          AttentionPlan.create({ ...shape, seqLen: 131072, headDim: 64 }, {
            activation: "softmax",
          }),
        (error: Error) =>
          error instanceof RangeError && /shape\.seqLen 131072 is too long/.test(error.message) &&
          /65535 loop iterations/.test(error.message),
      );
      const fits = await AttentionPlan.create({ ...shape, seqLen: 65536, headDim: 64 }, {
        activation: "softmax",
      }, { backward: true });
      fits.destroy();
    } else {
      await assert.rejects(
        () => AttentionPlan.create(shape, { activation: "softmax" }),
        (error: Error) =>
          error instanceof RangeError && /shape\.seqLen 16384 is too long/.test(error.message) &&
          /65535 loop iterations/.test(error.message),
      );
      // Forward fits at S = 10000 (D = 256), the backward's dkv kernel does not.
      await assert.rejects(
        () =>
          AttentionPlan.create({ ...shape, seqLen: 10000 }, { activation: "softmax" }, {
            backward: true,
          }),
        /fused softmax backward kernel at headDim 256/,
      );
    }
    // The GPU tiling's kernels loop less per key (a compile-time step, unrolled), so the
    // shape the software tiling refuses runs there; the llvmpipe budget still binds further on.
    const gpu = await AttentionPlan.create(shape, { activation: "softmax", tiling: "gpu" });
    assert.equal(gpu.tiling, "gpu");
    gpu.destroy();
    await assert.rejects(
      () =>
        AttentionPlan.create({ ...shape, seqLen: 65536 }, { activation: "softmax", tiling: "gpu" }),
      /kernel at headDim 256 \(tiling "gpu"\) on this software adapter/,
    );
    // The unfused path is refused for its S×S buffer instead, as before.
    await assert.rejects(
      () => AttentionPlan.create(shape, { activation: "softmax", implementation: "unfused" }),
      /maxStorageBufferBindingSize/,
    );
  },
});
