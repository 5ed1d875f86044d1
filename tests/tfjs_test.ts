/**
 * The TF.js baseline of bench/peers/tfjs.ts computes the same function as sigmax:
 * its attention (forward and `tf.grads` backward) against sigmax's f64
 * references, and its timers return sane numbers. Skipped, with the reason,
 * where TF.js's WebGPU backend cannot start.
 */

import assert from "node:assert/strict";
import {
  attentionBackwardReference,
  attentionReference,
  type AttentionShape,
  getDevice,
} from "../mod.ts";
import {
  attentionMask,
  loadTfjs,
  tfjsAttention,
  tfjsAttentionGrads,
  timeTfjsAttention,
  timeTfjsMatmul,
  timeTfjsTrainingStep,
} from "../bench/peers/tfjs.ts";
import { assertClose, randn, skipPeer, TOL } from "./_helpers.ts";

const handle = await loadTfjs();
const unavailable = "error" in handle ? handle.error : undefined;
const ignore = skipPeer("tests/tfjs_test.ts", unavailable);

const SHAPES: AttentionShape[] = [
  { batch: 1, heads: 2, seqLen: 33, headDim: 16 },
  { batch: 2, heads: 1, seqLen: 7, headDim: 5 },
];

function inputs(shape: AttentionShape, seed: number): Float32Array[] {
  const n = shape.batch * shape.heads * shape.seqLen * shape.headDim;
  return [0, 1, 2, 3].map((i) => randn(n, seed + i));
}

Deno.test({
  name: "TF.js runs on the WebGPU backend, on sigmax's own device",
  ignore,
  async fn() {
    if ("error" in handle) return;
    assert.equal(handle.tf.getBackend(), "webgpu");
    assert.equal(handle.device, await getDevice());
    assert.ok(handle.sharedDevice);
  },
});

for (const activation of ["softmax", "sigmoid"] as const) {
  for (const causal of [false, true]) {
    const label = `${activation}${causal ? " causal" : ""}`;
    Deno.test({
      name: `TF.js attention matches attentionReference: ${label}`,
      ignore,
      async fn() {
        if ("error" in handle) return;
        const { tf } = handle;
        let seed = 11;
        for (const shape of SHAPES) {
          for (const kTranspose of ["transposeB", "explicit"] as const) {
            const [q, k, v] = inputs(shape, seed += 10);
            const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
            const out = tf.tidy(() => {
              const t = (x: Float32Array) => tf.tensor4d(x, [B, H, S, D]);
              const mask = attentionMask(tf, S, { activation, causal });
              return tfjsAttention(tf, t(q), t(k), t(v), { activation, causal, kTranspose }, mask);
            });
            const got = await out.data() as Float32Array;
            out.dispose();
            const ref = attentionReference(q, k, v, shape, { activation, causal });
            assertClose(
              `tfjs ${label} ${kTranspose} [${B},${H},${S},${D}]`,
              got,
              ref,
              TOL.f32Forward,
            );
          }
        }
        assert.equal(tf.memory().numTensors, 0, "every tensor disposed");
      },
    });

    Deno.test({
      name: `TF.js tf.grads attention matches attentionBackwardReference: ${label}`,
      ignore,
      async fn() {
        if ("error" in handle) return;
        const { tf } = handle;
        const shape = SHAPES[0];
        const [q, k, v, dOut] = inputs(shape, 7);
        const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
        const ref = attentionBackwardReference(q, k, v, dOut, shape, { activation, causal });
        for (const kTranspose of ["transposeB", "explicit"] as const) {
          const options = { activation, causal, kTranspose };
          const grads = tf.tidy(() => {
            const t = (x: Float32Array) => tf.tensor4d(x, [B, H, S, D]);
            const mask = attentionMask(tf, S, options);
            return tfjsAttentionGrads(tf, t(q), t(k), t(v), t(dOut), options, mask);
          });
          for (const [i, name] of (["dq", "dk", "dv"] as const).entries()) {
            const got = await grads[i].data() as Float32Array;
            assertClose(`tfjs ${label} ${kTranspose} ${name}`, got, ref[name], TOL.f32Backward);
          }
          tf.dispose(grads);
        }
        assert.equal(tf.memory().numTensors, 0, "every tensor disposed");
      },
    });
  }
}

Deno.test({
  name: "TF.js timers return medians, FLOP rates and peak bytes, and leak no tensors",
  ignore,
  async fn() {
    if ("error" in handle) return;
    const { tf } = handle;
    const shape = { batch: 1, heads: 2, seqLen: 32, headDim: 16 };
    for (const pass of ["forward", "backward"] as const) {
      const t = await timeTfjsAttention(tf, shape, {
        activation: "sigmoid",
        causal: true,
        pass,
        warmup: 1,
        reps: 3,
      });
      assert.equal(t.samples.length, 3);
      assert.ok(t.msMin <= t.msMedian && t.msMedian <= t.msMax, `${pass}: min ≤ median ≤ max`);
      assert.equal(t.clock, "wall");
      assert.equal(t.flops, 4 * 2 * 32 * 32 * 16 * 0.5 * (pass === "backward" ? 2.5 : 1));
      assert.ok(t.gflops > 0 && Number.isFinite(t.gflops));
      // At least q, k, v and the S×S scores were alive at once.
      assert.ok(t.peakBytes >= 4 * (3 * 2 * 32 * 16 + 2 * 32 * 32), `${pass}: ${t.peakBytes}`);
    }
    // The timers also take the handle itself.
    const m = await timeTfjsMatmul(handle, 64, { warmup: 1, reps: 3 });
    assert.ok(m.gflops > 0 && Number.isFinite(m.gflops));
    assert.ok(m.peakBytes >= 3 * 64 * 64 * 4);
    const step = await timeTfjsTrainingStep(tf, {
      width: 16,
      layers: 1,
      heads: 2,
      seqLen: 8,
      batch: 2,
      vocab: 11,
      classes: 5,
      activation: "sigmoid",
      warmup: 1,
      reps: 2,
    });
    assert.ok(step.msMedian > 0 && step.tokensPerSecond > 0);
    assert.ok(Number.isFinite(step.lossFirst) && Number.isFinite(step.lossLast));
    assert.ok(step.lossLast < step.lossFirst, `loss fell: ${step.lossFirst} → ${step.lossLast}`);
    assert.equal(tf.memory().numTensors, 0, "every tensor disposed");
  },
});
