import assert from "node:assert/strict";
import {
  type Activation,
  attention,
  type AttentionOptions,
  AttentionPlan,
  attentionReference,
  type AttentionShape,
  getDevice,
} from "../mod.ts";
import { attentionReferenceWithLse } from "../kernels/attention_reference.ts";
import { createStorageBuffer, readFloat32, uploadBuffer } from "../kernels/device.ts";
import { assertClose, gridCases, implementationLabel, randn, TOL, variants } from "./_helpers.ts";

const ACTIVATIONS: Activation[] = ["softmax", "sigmoid"];
/** Fused at the software and the GPU tiling, and unfused. */
const VARIANTS = variants();

function inputs(shape: AttentionShape, seed: number, std = 1) {
  const n = shape.batch * shape.heads * shape.seqLen * shape.headDim;
  return [randn(n, seed, std), randn(n, seed + 1, std), randn(n, seed + 2, std)] as const;
}

async function checkCase(shape: AttentionShape, options: AttentionOptions, seed: number) {
  const [q, k, v] = inputs(shape, seed);
  const got = await attention(q, k, v, shape, options);
  const ref = attentionReference(q, k, v, shape, options);
  const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
  const extra = options.scale !== undefined
    ? ` scale=${options.scale.toPrecision(3)} b=${options.sigmoidBias}`
    : "";
  const label =
    `${implementationLabel(options)} ${options.activation}${options.causal ? " causal" : ""}` +
    ` [${B},${H},${S},${D}]${extra}`;
  assertClose(label, got, ref, TOL.f32Forward);
}

for (const { implementation, tiling } of VARIANTS) {
  for (const activation of ACTIVATIONS) {
    const name = tiling ? `${implementation} (tiling "${tiling}")` : implementation;
    Deno.test(`attention() matches the reference: ${name} ${activation}, odd sizes, causal on and off`, async () => {
      let seed = 1;
      for (const { shape, options } of gridCases(activation, implementation, tiling)) {
        await checkCase(shape, options, seed++);
      }
    });
  }
}

Deno.test("attention() handles extreme scores: no NaN or Inf, softmax exact, sigmoid saturates", async () => {
  // S = D = 64, v = identity: out[i][j] is the weight w_ij itself. 64 keys span several
  // key tiles, so softmax's running max jumps by hundreds between tiles.
  const S = 64, D = 64;
  const shape = { batch: 1, heads: 1, seqLen: S, headDim: D };
  const q = randn(S * D, 7, 5.5); // |scale·q·k| reaches ~1e3 with scale 1
  const k = randn(S * D, 8, 5.5);
  const v = new Float32Array(S * D);
  for (let j = 0; j < S; j++) v[j * D + j] = 1;
  const score = (i: number, j: number) => {
    let s = 0;
    for (let d = 0; d < D; d++) s += q[i * D + d] * k[j * D + d];
    return s;
  };
  let maxScore = 0;
  for (let i = 0; i < S; i++) {
    for (let j = 0; j < S; j++) maxScore = Math.max(maxScore, Math.abs(score(i, j)));
  }
  assert.ok(maxScore > 500 && maxScore < 2000, `test data reaches |s| ~ 1e3 (got ${maxScore})`);
  for (const variant of VARIANTS) {
    for (const activation of ACTIVATIONS) {
      for (const causal of [false, true]) {
        const options: AttentionOptions = { activation, causal, ...variant, scale: 1 };
        const got = await attention(q, k, v, shape, options);
        const ref = attentionReference(q, k, v, shape, options);
        assertClose(
          `extreme ${implementationLabel(options)} ${activation}${causal ? " causal" : ""}`,
          got,
          ref,
          TOL.f32Forward,
        );
        if (activation === "sigmoid") {
          // Every weight whose argument is far from 0 is exactly 0 or 1 (σ(-104) is below
          // f32's smallest subnormal).
          let saturated = 0;
          for (let i = 0; i < S; i++) {
            for (let j = 0; j < S; j++) {
              const arg = score(i, j) - Math.log(S);
              const w = got[i * D + j];
              if (causal && j > i) assert.equal(w, 0, `masked weight (${i},${j})`);
              else if (arg > 104) assert.equal(w, 1, `σ(${arg}) must be exactly 1, got ${w}`);
              else if (arg < -104) assert.equal(w, 0, `σ(${arg}) must be exactly 0, got ${w}`);
              else continue;
              saturated++;
            }
          }
          assert.ok(saturated > S * S / 4, `most weights saturate (${saturated})`);
        }
      }
    }
  }
});

Deno.test("attention() handles head dims that end in a partial vec4", async () => {
  let seed = 300;
  for (const headDim of [2, 3, 35, 63]) {
    for (const variant of VARIANTS) {
      // The GPU tiling takes remainder 2 (D = 2) and 3 after full vec4s (D = 35), and the grid's
      // D = 1 and 33: enough for its loaders and ragged slices, without four more specialisations.
      if (variant.tiling === "gpu" && (headDim === 3 || headDim === 63)) continue;
      for (const activation of ACTIVATIONS) {
        await checkCase({ batch: 2, heads: 1, seqLen: 37, headDim }, {
          activation,
          causal: true,
          ...variant,
        }, seed++);
      }
    }
  }
});

Deno.test("AttentionPlan writes the softmax row logsumexp the backward pass needs", async () => {
  const device = await getDevice();
  for (const variant of VARIANTS) {
    for (const causal of [false, true]) {
      const shape = { batch: 2, heads: 2, seqLen: 97, headDim: 33 };
      const [q, k, v] = inputs(shape, causal ? 70 : 71);
      const options: AttentionOptions = { activation: "softmax", causal, ...variant };
      const implementation = implementationLabel(options);
      const plan = await AttentionPlan.create(shape, options);
      const rows = 2 * 2 * 97;
      const buffers = {
        q: uploadBuffer(device, q, "test.q"),
        k: uploadBuffer(device, k, "test.k"),
        v: uploadBuffer(device, v, "test.v"),
        out: createStorageBuffer(device, plan.tensorBytes, "test.out"),
        lse: createStorageBuffer(device, rows * 4, "test.lse"),
      };
      const encoder = device.createCommandEncoder();
      plan.encodeForward(encoder, buffers);
      device.queue.submit([encoder.finish()]);
      const lse = await readFloat32(device, buffers.lse, rows);
      const out = await readFloat32(device, buffers.out, q.length);
      const ref = attentionReferenceWithLse(q, k, v, shape, options);
      assertClose(
        `lse ${implementation}${causal ? " causal" : ""} [2,2,97,33]`,
        lse,
        ref.lse,
        TOL.f32Forward,
      );
      assertClose(
        `out ${implementation}${causal ? " causal" : ""} [2,2,97,33]`,
        out,
        ref.out,
        TOL.f32Forward,
      );
      for (const buffer of Object.values(buffers)) buffer.destroy();
      plan.destroy();
    }
  }
});

Deno.test("attention() handles causal masks: rows ignore every future key and value", async () => {
  const shape = { batch: 1, heads: 2, seqLen: 97, headDim: 33 };
  const [q, k, v] = inputs(shape, 40);
  const t = 50; // rows 0..t may not depend on keys/values t+1..S-1
  const [k2, v2] = [k.slice(), v.slice()];
  const { seqLen: S, headDim: D } = shape;
  for (let h = 0; h < shape.heads; h++) {
    for (let j = t + 1; j < S; j++) {
      for (let d = 0; d < D; d++) {
        const at = (h * S + j) * D + d;
        k2[at] = 100 * Math.sin(at);
        v2[at] = 1e4 * Math.cos(at);
      }
    }
  }
  for (const variant of VARIANTS) {
    for (const activation of ACTIVATIONS) {
      const options: AttentionOptions = { activation, causal: true, ...variant };
      const implementation = implementationLabel(options);
      const a = await attention(q, k, v, shape, options);
      const b = await attention(q, k2, v2, shape, options);
      let changedLater = false;
      for (let h = 0; h < shape.heads; h++) {
        for (let i = 0; i < S; i++) {
          for (let d = 0; d < D; d++) {
            const at = (h * S + i) * D + d;
            if (i <= t) {
              assert.equal(b[at], a[at], `${implementation} ${activation}: row ${i} changed`);
            } else if (a[at] !== b[at]) changedLater = true;
          }
        }
      }
      assert.ok(changedLater, "later rows do see the changed keys (the test can fail)");
    }
  }
});
