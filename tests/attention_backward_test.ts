import assert from "node:assert/strict";
import {
  type Activation,
  attentionBackward,
  attentionBackwardReference,
  type AttentionOptions,
  AttentionPlan,
  getDevice,
} from "../mod.ts";
import { attentionReferenceWithLse } from "../kernels/attention_reference.ts";
import { createStorageBuffer, readFloat32, uploadBuffer } from "../kernels/device.ts";
import { assertClose, implementationLabel, randn, TOL, variants } from "./_helpers.ts";
import {
  assertGradients,
  backwardInputs,
  backwardLabel,
  checkBackwardCase,
} from "./_backward_helpers.ts";

const ACTIVATIONS: Activation[] = ["softmax", "sigmoid"];
/** Fused at the software and the GPU tiling, and unfused. */
const VARIANTS = variants();

Deno.test("attentionBackward() handles head dims that end in a partial vec4", async () => {
  let seed = 300;
  // Remainders 2 and 3 here; 1 (D = 1, 33) is in the grid. 35 has a partial vec4 after full ones.
  for (const headDim of [2, 3, 35]) {
    for (const variant of VARIANTS) {
      // As in the forward test, the GPU tiling takes D = 2 and 35 (with the grid's 1 and 33).
      if (variant.tiling === "gpu" && headDim === 3) continue;
      for (const activation of ACTIVATIONS) {
        await checkBackwardCase({ batch: 2, heads: 1, seqLen: 37, headDim }, {
          activation,
          causal: true,
          ...variant,
        }, seed++);
      }
    }
  }
});

Deno.test("attentionBackward() handles extreme scores: finite, matches the reference, saturated sigmoid gradients exactly 0", async () => {
  // |s| reaches ~1e3 across several key tiles: softmax weights underflow to exactly 0 and
  // sigmoid saturates. Key 5 scores ≥ 2000 with every query (σ = 1 exactly) and key 6
  // ≤ -2000 (σ = 0 exactly); σ(1−σ) is then exactly 0, and so are their dK (and key 6's dV).
  const S = 64, D = 64;
  const shape = { batch: 1, heads: 1, seqLen: S, headDim: D };
  const q = randn(S * D, 7, 5.5);
  const k = randn(S * D, 8, 5.5);
  for (let i = 0; i < S; i++) q[i * D] = 10 + Math.abs(q[i * D]);
  for (const [j, sign] of [[5, 1], [6, -1]]) {
    k.fill(0, j * D, (j + 1) * D);
    k[j * D] = 200 * sign;
  }
  const v = randn(S * D, 9);
  const dOut = randn(S * D, 10);
  for (const variant of VARIANTS) {
    for (const activation of ACTIVATIONS) {
      for (const causal of [false, true]) {
        const options: AttentionOptions = { activation, causal, ...variant, scale: 1 };
        const implementation = implementationLabel(options);
        const got = await attentionBackward(q, k, v, dOut, shape, options);
        const ref = attentionBackwardReference(q, k, v, dOut, shape, options);
        assertGradients(`extreme ${backwardLabel(shape, options)}`, got, ref, TOL.f32Backward);
        if (activation !== "sigmoid") continue;
        for (let d = 0; d < D; d++) {
          const where = `${implementation}${causal ? " causal" : ""} d=${d}`;
          // (=== rather than assert.equal, which tells -0 from 0)
          assert.ok(got.dk[5 * D + d] === 0, `dk of the always-1 key, ${where}`);
          assert.ok(got.dk[6 * D + d] === 0, `dk of the always-0 key, ${where}`);
          assert.ok(got.dv[6 * D + d] === 0, `dv of the always-0 key, ${where}`);
        }
      }
    }
  }
});

Deno.test("fused and unfused backward agree with each other at f32 tolerance", async () => {
  const shape = { batch: 2, heads: 2, seqLen: 130, headDim: 33 };
  const [q, k, v, dOut] = backwardInputs(shape, 90);
  for (const activation of ACTIVATIONS) {
    const unfused = await attentionBackward(q, k, v, dOut, shape, {
      activation,
      causal: true,
      implementation: "unfused",
    });
    for (const { tiling } of variants(true)) {
      const fused = await attentionBackward(q, k, v, dOut, shape, {
        activation,
        causal: true,
        tiling,
      });
      assertGradients(`fused ${tiling} vs unfused ${activation}`, fused, unfused, TOL.f32Backward);
    }
  }
});

Deno.test("AttentionPlan.encodeBackward() writes the gradients into caller-owned buffers", async () => {
  const device = await getDevice();
  const shape = { batch: 2, heads: 2, seqLen: 97, headDim: 33 };
  const rows = 2 * 2 * 97;
  for (const variant of VARIANTS) {
    for (const activation of ACTIVATIONS) {
      const options: AttentionOptions = { activation, causal: true, ...variant };
      const implementation = implementationLabel(options);
      const [q, k, v, dOut] = backwardInputs(shape, activation === "softmax" ? 60 : 61);
      const plan = await AttentionPlan.create(shape, options, { backward: true });
      const tensor = () => createStorageBuffer(device, plan.tensorBytes, "test.tensor");
      const buffers = {
        q: uploadBuffer(device, q, "test.q"),
        k: uploadBuffer(device, k, "test.k"),
        v: uploadBuffer(device, v, "test.v"),
        dOut: uploadBuffer(device, dOut, "test.dOut"),
        out: tensor(),
        lse: createStorageBuffer(device, rows * 4, "test.lse"),
        // Gradients are overwritten, not accumulated into: start from garbage.
        dq: uploadBuffer(device, randn(q.length, 1, 1e3), "test.dq"),
        dk: uploadBuffer(device, randn(q.length, 2, 1e3), "test.dk"),
        dv: uploadBuffer(device, randn(q.length, 3, 1e3), "test.dv"),
      };
      const ref = attentionBackwardReference(q, k, v, dOut, shape, options);
      // Twice through the same plan and buffers: cached bind groups, same answer.
      for (const round of [1, 2]) {
        const encoder = device.createCommandEncoder();
        plan.encodeForward(encoder, buffers);
        plan.encodeBackward(encoder, buffers);
        device.queue.submit([encoder.finish()]);
        const got = {
          dq: await readFloat32(device, buffers.dq, q.length),
          dk: await readFloat32(device, buffers.dk, q.length),
          dv: await readFloat32(device, buffers.dv, q.length),
        };
        assertGradients(
          `plan round ${round} ${backwardLabel(shape, options)}`,
          got,
          ref,
          TOL.f32Backward,
        );
      }
      if (activation === "softmax") {
        const lse = await readFloat32(device, buffers.lse, rows);
        const fwd = attentionReferenceWithLse(q, k, v, shape, options);
        assertClose(`lse kept for backward ${implementation}`, lse, fwd.lse, TOL.f32Forward);
      }
      for (const buffer of Object.values(buffers)) buffer.destroy();
      plan.destroy();
    }
  }
});
