import assert from "node:assert/strict";
import { attentionBackwardReference, type AttentionOptions } from "../mod.ts";
import { _backwardF64, _forwardF64, _problem } from "../kernels/attention_reference.ts";
import { randn } from "./_helpers.ts";

/**
 * Checks the reference gradients against central finite differences of the f64
 * forward pass: the reference is proven, not assumed. Loss L = Σ G ∘ out.
 */
Deno.test("attentionBackwardReference() matches finite differences of the forward pass", () => {
  const shape = { batch: 1, heads: 2, seqLen: 5, headDim: 3 };
  const n = 2 * 5 * 3;
  let seed = 900;
  for (const activation of ["softmax", "sigmoid"] as const) {
    for (const causal of [false, true]) {
      for (const explicit of [false, true]) {
        const options: AttentionOptions = explicit
          ? { activation, causal, scale: 0.8, sigmoidBias: -0.7 }
          : { activation, causal };
        const p = _problem(shape, options);
        const [q, k, v, g] = [0, 1, 2, 3].map(() => Float64Array.from(randn(n, seed++)));
        const loss = (qq: Float64Array, kk: Float64Array, vv: Float64Array) =>
          _forwardF64(qq, kk, vv, p).out.reduce((sum, o, i) => sum + o * g[i], 0);
        const grads = _backwardF64(q, k, v, g, p);
        const h = 1e-5;
        let maxErr = 0;
        for (
          const [name, x, grad] of [["q", q, grads.dq], ["k", k, grads.dk], [
            "v",
            v,
            grads.dv,
          ]] as const
        ) {
          for (let i = 0; i < n; i++) {
            const x0 = x[i];
            x[i] = x0 + h;
            const up = loss(q, k, v);
            x[i] = x0 - h;
            const down = loss(q, k, v);
            x[i] = x0;
            const fd = (up - down) / (2 * h);
            const err = Math.abs(fd - grad[i]);
            assert.ok(
              err <= 1e-7 + 1e-6 * Math.abs(fd),
              `${activation} d${name}[${i}]: ${grad[i]} vs ${fd}`,
            );
            maxErr = Math.max(maxErr, err);
          }
        }
        console.log(
          `  finite differences ${activation}${causal ? " causal" : ""}${
            explicit ? " explicit" : ""
          }: max |err| ${maxErr.toExponential(2)}`,
        );
        // The public entry point gives the same gradients, rounded to f32.
        const f32 = attentionBackwardReference(
          Float32Array.from(q),
          Float32Array.from(k),
          Float32Array.from(v),
          Float32Array.from(g),
          shape,
          options,
        );
        const again = _backwardF64(
          Float32Array.from(q),
          Float32Array.from(k),
          Float32Array.from(v),
          Float32Array.from(g),
          p,
        );
        assert.deepEqual(f32.dq, Float32Array.from(again.dq));
      }
    }
  }
});

Deno.test("attentionBackwardReference() gives no gradient through masked keys", () => {
  // With causal masking, key/value S-1 is seen only by query S-1: a dOut that is zero on
  // that row leaves dk and dv of the last key exactly 0.
  const shape = { batch: 1, heads: 1, seqLen: 6, headDim: 4 };
  const [q, k, v, dOut] = [1, 2, 3, 4].map((s) => randn(24, s));
  dOut.fill(0, 20);
  for (const activation of ["softmax", "sigmoid"] as const) {
    const { dk, dv } = attentionBackwardReference(q, k, v, dOut, shape, {
      activation,
      causal: true,
    });
    assert.deepEqual([...dk.slice(20)], [0, 0, 0, 0]);
    assert.deepEqual([...dv.slice(20)], [0, 0, 0, 0]);
    assert.ok(dk.slice(0, 20).some((x) => x !== 0));
  }
});

Deno.test("attentionBackwardReference() rejects a dOut of the wrong length", () => {
  const shape = { batch: 1, heads: 1, seqLen: 2, headDim: 2 };
  const x = new Float32Array(4);
  assert.throws(
    () =>
      attentionBackwardReference(x, x, x, new Float32Array(3), shape, { activation: "softmax" }),
    (e: Error) => e instanceof RangeError && /dOut\.length must be 4/.test(e.message),
  );
});
