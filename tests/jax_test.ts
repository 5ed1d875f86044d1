/**
 * The jax-js peer of bench/peers/jax.ts computes the same function as sigmax:
 * its jitted attention (softmax through `nn.dotProductAttention`, sigmoid
 * composed) and its jitted `grad` against sigmax's f64 references. Skipped,
 * with the reason, where jax-js's WebGPU backend cannot start.
 */

import assert from "node:assert/strict";
import {
  attentionBackwardReference,
  attentionReference,
  type AttentionShape,
  getDevice,
} from "../mod.ts";
import { JaxAttention, loadJax, timeJaxAttention, timeJaxMatmul } from "../bench/peers/jax.ts";
import { assertClose, randn, skipPeer, TOL } from "./_helpers.ts";

const handle = await loadJax();
const unavailable = "error" in handle ? handle.error : undefined;
const ignore = skipPeer("tests/jax_test.ts", unavailable);

const SHAPES: AttentionShape[] = [
  { batch: 1, heads: 2, seqLen: 33, headDim: 16 },
  { batch: 2, heads: 1, seqLen: 7, headDim: 5 },
];

function inputs(shape: AttentionShape, seed: number) {
  const n = shape.batch * shape.heads * shape.seqLen * shape.headDim;
  const [q, k, v, dOut] = [0, 1, 2, 3].map((i) => randn(n, seed + i));
  return { q, k, v, dOut };
}

Deno.test({
  name: "jax-js runs on its WebGPU backend, on a device of its own on the same adapter",
  ignore,
  async fn() {
    if ("error" in handle) return;
    assert.notEqual(handle.device, await getDevice());
    assert.match(handle.adapter, /\S/);
  },
});

for (const activation of ["softmax", "sigmoid"] as const) {
  for (const causal of [false, true]) {
    const label = `${activation}${causal ? " causal" : ""}`;
    Deno.test({
      name: `jax-js attention and grad match the f64 references: ${label}`,
      ignore,
      async fn() {
        if ("error" in handle) return;
        let seed = 31;
        for (const shape of SHAPES) {
          const data = inputs(shape, seed += 10);
          const work = JaxAttention.create(handle, shape, { activation, causal }, data);
          try {
            const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
            const tag = `jax ${label} [${B},${H},${S},${D}]`;
            const ref = attentionReference(data.q, data.k, data.v, shape, { activation, causal });
            assertClose(tag, await work.output(), ref, TOL.f32Forward);
            const bref = attentionBackwardReference(
              data.q,
              data.k,
              data.v,
              data.dOut,
              shape,
              { activation, causal },
            );
            const got = await work.grads();
            for (const name of ["dq", "dk", "dv"] as const) {
              assertClose(`${tag} ${name}`, got[name], bref[name], TOL.f32Backward);
            }
          } finally {
            work.dispose();
          }
        }
      },
    });
  }
}

Deno.test({
  name: "jax-js timers return medians and FLOP rates; bad input is refused",
  ignore,
  async fn() {
    if ("error" in handle) return;
    const shape = { batch: 1, heads: 2, seqLen: 32, headDim: 16 };
    for (const pass of ["forward", "backward"] as const) {
      const t = await timeJaxAttention(handle, shape, {
        activation: "sigmoid",
        causal: true,
        pass,
        warmup: 1,
        reps: 3,
      });
      assert.equal(t.samples.length, 3);
      assert.ok(t.msMin <= t.msMedian && t.msMedian <= t.msMax);
      assert.equal(t.flops, 4 * 2 * 32 * 32 * 16 * 0.5 * (pass === "backward" ? 2.5 : 1));
      assert.ok(t.gflops > 0 && Number.isFinite(t.gflops));
      assert.equal(t.clock, "wall");
      assert.equal(t.device, "jax");
      assert.equal(
        t.ran,
        `jit(composed ops)${pass === "backward" ? " under jit(grad)" : ""}; jax-js's own device`,
      );
    }
    const m = await timeJaxMatmul(handle, 64, { warmup: 1, reps: 3 });
    assert.equal(m.flops, 2 * 64 ** 3);
    assert.ok(m.gflops > 0);
    assert.throws(
      () =>
        JaxAttention.create(handle, shape, { activation: "softmax" }, {
          q: new Float32Array(3),
          k: new Float32Array(3),
          v: new Float32Array(3),
        }),
      /data\.q: expected 1024 elements/,
    );
    await assert.rejects(() => timeJaxMatmul(handle, 0), /n: expected a positive integer/);
  },
});
