// The `tiling` option and what only the GPU tiling has: the lane split, subgroups and its
// workgroup exchange path. The correctness grids run at both tilings in the forward, backward
// and f16 test files; these tests pin down which kernels run, and the paths a default device
// may not take.

import assert from "node:assert/strict";
import {
  type Activation,
  attention,
  attentionBackward,
  attentionBackwardReference,
  type AttentionOptions,
  AttentionPlan,
  attentionReference,
  type AttentionShape,
  getDevice,
} from "../mod.ts";
import { isSoftwareDevice, readBuffer, subgroupSizes, uploadBuffer } from "../kernels/device.ts";
import { toStorage } from "../kernels/attention.ts";
import { directSoftwareReads } from "../kernels/attention_fused.ts";
import { assertClose, f16Available, randn, TOL } from "./_helpers.ts";
import { assertGradients, backwardInputs, backwardLabel } from "./_backward_helpers.ts";

const device = await getDevice();

Deno.test("AttentionPlan honours options.tiling: auto picks by adapter, gpu and software are forced", async () => {
  const shape = { batch: 1, heads: 1, seqLen: 8, headDim: 64 };
  const expected = isSoftwareDevice(device) ? "software" : "gpu";
  const auto = await AttentionPlan.create(shape, { activation: "softmax" }, { backward: true });
  assert.equal(auto.tiling, expected);
  assert.equal(auto.options.tiling, "auto");
  auto.destroy();
  for (const tiling of ["gpu", "software"] as const) {
    const plan = await AttentionPlan.create(shape, { activation: "softmax", tiling }, {
      backward: true,
    });
    assert.equal(plan.tiling, tiling);
    assert.equal(plan.kernels.length, 3, "forward, dq and dkv");
    for (const label of plan.kernels) {
      // The GPU kernels are labelled `.gpu.p<split>k<step>`; the software ones `.r<rows>`,
      // plus `.direct<keys>` where they read straight from storage (no shader-f16: OpenGL).
      if (tiling === "gpu") assert.match(label, /\.d64\.gpu\.p\d+k\d+/);
      else if (directSoftwareReads(device)) assert.match(label, /\.d64\.r\d+\.direct32$/);
      else assert.match(label, /\.d64\.r\d+$/);
    }
    plan.destroy();
  }
  await assert.rejects(
    () => AttentionPlan.create(shape, { activation: "softmax", tiling: "fast" as "gpu" }),
    (error: Error) => error instanceof TypeError && /options\.tiling must be/.test(error.message),
  );
});

/** Forward and backward of `options` at `shape` (inputs from `seed`) against the f64 references. */
async function checkAgainstReferences(
  shape: AttentionShape,
  options: AttentionOptions,
  seed: number,
  label: string,
) {
  const [q, k, v, dOut] = backwardInputs(shape, seed);
  const name = `${label} ${backwardLabel(shape, options)}`;
  const out = await attention(q, k, v, shape, options);
  assertClose(`out ${name}`, out, attentionReference(q, k, v, shape, options), TOL.f32Forward);
  const got = await attentionBackward(q, k, v, dOut, shape, options);
  assertGradients(name, got, attentionBackwardReference(q, k, v, dOut, shape, options), {
    ...TOL.f32Backward,
  });
}

/** Forward and backward at the GPU tiling on `on`, against the references. */
async function checkGpuTiling(on: GPUDevice, expectSubgroups: boolean, label: string) {
  // D = 33: a ragged split in the backward kernels (P = 2, the last slice half empty);
  // D = 128 and 256: splits of 2 and 4 (forward), 4 and 8 (backward).
  const cases: [number, number, Activation, boolean][] = [
    [33, 97, "sigmoid", true],
    [128, 70, "softmax", false],
    [256, 37, "softmax", true],
    [256, 37, "sigmoid", false],
  ];
  let seed = 900;
  for (const [headDim, seqLen, activation, causal] of cases) {
    const shape = { batch: 1, heads: 2, seqLen, headDim };
    const options: AttentionOptions = { activation, causal, tiling: "gpu", device: on };
    const plan = await AttentionPlan.create(shape, options, { backward: true });
    for (const kernel of plan.kernels) {
      assert.equal(
        /\.sg\b/.test(kernel),
        expectSubgroups && /\.p1k/.test(kernel) === false,
        kernel,
      );
    }
    plan.destroy();
    await checkAgainstReferences(shape, options, seed++, label);
  }
}

/**
 * Runs `check` on a second device from the same adapter, requested with no
 * optional features (so without `feature`) and the shared device's
 * workgroup memory, and destroys it afterwards.
 */
async function withPlainDevice(
  feature: GPUFeatureName,
  check: (plain: GPUDevice) => Promise<void>,
): Promise<void> {
  const adapter = await navigator.gpu.requestAdapter();
  assert.ok(adapter);
  const plain = await adapter.requestDevice({
    label: `test.no-${feature}`,
    requiredLimits: {
      maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
    },
  });
  assert.equal(plain.features.has(feature), false);
  try {
    await check(plain);
  } finally {
    plain.destroy();
  }
}

Deno.test("the GPU tiling sums split rows through workgroup memory on a device without subgroups", async () => {
  if (!device.features.has("subgroups")) {
    // The shared device has no subgroups (OpenGL): every GPU-tiling test takes this path.
    await checkGpuTiling(device, false, "no subgroups (shared device)");
    return;
  }
  await withPlainDevice("subgroups", (plain) => checkGpuTiling(plain, false, "no subgroups"));
});

Deno.test("the GPU tiling sums split rows with subgroup shuffles where the device has subgroups", async () => {
  const sizes = subgroupSizes(device);
  if (!sizes || sizes.min < 8) {
    console.log(
      `  this device has no subgroups of 8 or more lanes (${JSON.stringify(sizes)}): ` +
        "the subgroup path cannot run here (OpenGL refuses the feature; Vulkan lavapipe has it)",
    );
    return;
  }
  await checkGpuTiling(device, true, "subgroups");
});

Deno.test({
  name:
    "plan.tensorBytes for f16 is a multiple of 4 at odd element counts, and sizes working buffers",
  ignore: !(await f16Available("odd-count f16 buffer test")),
  async fn() {
    const shape = { batch: 1, heads: 1, seqLen: 7, headDim: 3 }; // 21 elements, 42 bytes of f16
    for (const tiling of ["software", "gpu"] as const) {
      const options: AttentionOptions = { activation: "softmax", precision: "f16", tiling };
      const plan = await AttentionPlan.create(shape, options, { backward: true });
      assert.equal(plan.tensorBytes, 44);
      const toF16 = (x: Float32Array) => Float32Array.from(Float16Array.from(x));
      const [q, k, v, dOut] = [1, 2, 3, 4].map((s) => toF16(randn(21, 950 + s)));
      const make = () =>
        device.createBuffer({
          size: plan.tensorBytes,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        });
      const upload = (x: Float32Array) => {
        const buffer = make();
        const bytes = new Uint8Array(plan.tensorBytes);
        bytes.set(new Uint8Array((toStorage(x, "f16") as Uint16Array).buffer));
        device.queue.writeBuffer(buffer, 0, bytes);
        return buffer;
      };
      const buffers = {
        q: upload(q),
        k: upload(k),
        v: upload(v),
        dOut: upload(dOut),
        out: make(),
        lse: uploadBuffer(device, new Float32Array(7), "test.lse"),
        dq: make(),
        dk: make(),
        dv: make(),
      };
      const encoder = device.createCommandEncoder();
      plan.encodeForward(encoder, buffers);
      plan.encodeBackward(encoder, buffers);
      device.queue.submit([encoder.finish()]);
      const read = async (buffer: GPUBuffer) =>
        Float32Array.from(new Float16Array(await readBuffer(device, buffer), 0, 21));
      const label = backwardLabel(shape, options);
      assertClose(
        `out ${label}`,
        await read(buffers.out),
        attentionReference(q, k, v, shape, options),
        TOL.f16,
      );
      const ref = attentionBackwardReference(q, k, v, dOut, shape, options);
      assertGradients(
        label,
        {
          dq: await read(buffers.dq),
          dk: await read(buffers.dk),
          dv: await read(buffers.dv),
        },
        ref,
        TOL.f16,
      );
      // The convenience API uploads the same odd count (zero-padded to a whole word).
      assertClose(
        `attention() ${label}`,
        await attention(q, k, v, shape, options),
        attentionReference(q, k, v, shape, options),
        TOL.f16,
      );
      for (const buffer of Object.values(buffers)) buffer.destroy();
      plan.destroy();
    }
  },
});

/**
 * Forward and backward at the software tiling on `on`, against the
 * references, requiring the kernels to read straight from storage when
 * `direct`, else to stage their tiles.
 */
async function checkSoftwareReads(on: GPUDevice, direct: boolean, label: string) {
  // Odd lengths (a last block of keys past S, clamped reads masked), D = 33 (scalar loads, a
  // zero-padded last vec4) and D = 8 (vec4 loads); both activations, causal on and off. The
  // generator's loops are the same at every D (only their unrolled length changes); D = 64's
  // kernels, the set's slowest to compile (on Vulkan 108 s for the four, against 73 s for the
  // staged ones the grid compiles anyway), add no path. On OpenGL, the shared device's, the
  // whole test grid runs the direct kernels at every D.
  const cases: [number, number, Activation, boolean][] = [
    [33, 97, "softmax", true],
    [33, 61, "sigmoid", false],
    [33, 70, "softmax", false],
    [8, 45, "sigmoid", true],
    [8, 5, "softmax", true],
    [8, 37, "sigmoid", false],
  ];
  let seed = 1300;
  for (const [headDim, seqLen, activation, causal] of cases) {
    const shape = { batch: 2, heads: 1, seqLen, headDim };
    const options: AttentionOptions = { activation, causal, tiling: "software", device: on };
    const plan = await AttentionPlan.create(shape, options, { backward: true });
    for (const kernel of plan.kernels) assert.equal(/\.direct32$/.test(kernel), direct, kernel);
    plan.destroy();
    await checkAgainstReferences(shape, options, seed++, label);
  }
}

Deno.test("the software tiling reads keys and values straight from storage on a device without shader-f16", async () => {
  assert.equal(directSoftwareReads(device), !device.features.has("shader-f16"));
  if (!device.features.has("shader-f16")) {
    // The shared device has no shader-f16 (OpenGL): every software-tiling test takes this path.
    await checkSoftwareReads(device, true, "direct (shared device)");
    return;
  }
  await withPlainDevice("shader-f16", (plain) => checkSoftwareReads(plain, true, "direct"));
});

Deno.test("the software tiling stages keys and values in workgroup memory on a device with shader-f16", async () => {
  if (!device.features.has("shader-f16")) {
    console.log("  skipped: this device has no shader-f16 (OpenGL), so it reads directly");
    return;
  }
  await checkSoftwareReads(device, false, "staged");
});
