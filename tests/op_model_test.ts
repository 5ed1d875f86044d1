import assert from "node:assert/strict";
import { getDevice } from "../mod.ts";
import { directSoftwareReads, fusedTiles } from "../kernels/attention_fused.ts";
import { fusedBackwardTiles } from "../kernels/attention_fused_backward.ts";
import { isSoftwareDevice } from "../kernels/device.ts";
import { modelledTiles, opCounts } from "../bench/op_model.ts";

Deno.test("the op model counts staged tiles' writes, and none for direct reads", () => {
  const D = 64;
  const staged = fusedTiles("sigmoid", D, 32768, true, false);
  const direct = fusedTiles("sigmoid", D, 32768, true, true);
  assert.equal(staged.rowsPerLane, direct.rowsPerLane);
  const R = direct.rowsPerLane;
  // Forward: K and V read once per R rows; staging writes each once per workgroup of 16·R rows.
  assert.equal(opCounts("fused sigmoid", D, direct).workgroupFloats, (2 * D) / R);
  assert.equal(
    opCounts("fused sigmoid", D, staged).workgroupFloats,
    (2 * D) / R + (2 * D) / (staged.lanes * R),
  );
  const dq = (isDirect: boolean) => fusedBackwardTiles("dq", "softmax", D, 32768, true, isDirect);
  assert.equal(opCounts("fused sigmoid", D, dq(true), "backward").workgroupFloats, (7 * D) / R);
  assert.ok(
    opCounts("fused sigmoid", D, dq(false), "backward").workgroupFloats > (7 * D) / R,
  );
});

Deno.test("modelledTiles() gives the model the tiles the plans run", async () => {
  const device = await getDevice();
  const software = isSoftwareDevice(device);
  const forward = modelledTiles(device, "forward", 64, software);
  const backward = modelledTiles(device, "backward", 64, software);
  const direct = software && directSoftwareReads(device);
  assert.equal(Boolean(forward.direct), direct);
  assert.equal(Boolean(backward.direct), direct);
  const storage = device.limits.maxComputeWorkgroupStorageSize;
  assert.deepEqual(forward, fusedTiles("softmax", 64, storage, software, direct));
  assert.deepEqual(backward, fusedBackwardTiles("dq", "softmax", 64, storage, software, direct));
});
