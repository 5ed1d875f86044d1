// f16 storage (f32 arithmetic) against the reference fed the same f16-rounded inputs, forward and
// backward. A file of its own, so that `deno test --parallel` compiles its kernels beside others.

import {
  type Activation,
  attention,
  attentionBackward,
  attentionBackwardReference,
  type AttentionOptions,
  attentionReference,
} from "../mod.ts";
import { assertClose, f16Available, TILINGS, TOL } from "./_helpers.ts";
import { assertGradients, backwardInputs, backwardLabel } from "./_backward_helpers.ts";

const ACTIVATIONS: Activation[] = ["softmax", "sigmoid"];
const SIZES = [[7, 8], [97, 33], [64, 64]]; // [seqLen, headDim]
const hasF16 = await f16Available("f16 tests");

/** Rounds to the nearest f16, back in a Float32Array. */
const toF16 = (x: Float32Array) => Float32Array.from(Float16Array.from(x));

Deno.test({
  name: "attention() in f16 matches the reference fed f16-rounded inputs",
  ignore: !hasF16,
  async fn() {
    let seed = 500;
    for (const [seqLen, headDim] of SIZES) {
      const shape = { batch: 1, heads: 2, seqLen, headDim };
      for (const activation of ACTIVATIONS) {
        for (const causal of [false, true]) {
          const [q, k, v] = backwardInputs(shape, seed++).map(toF16);
          for (const tiling of TILINGS) {
            const options: AttentionOptions = { activation, causal, precision: "f16", tiling };
            const got = await attention(q, k, v, shape, options);
            const ref = attentionReference(q, k, v, shape, options);
            assertClose(`out ${backwardLabel(shape, options)}`, got, ref, TOL.f16);
          }
        }
      }
    }
  },
});

Deno.test({
  name: "attentionBackward() in f16 matches the reference fed f16-rounded inputs",
  ignore: !hasF16,
  async fn() {
    let seed = 600;
    for (const [seqLen, headDim] of SIZES) {
      const shape = { batch: 1, heads: 2, seqLen, headDim };
      for (const activation of ACTIVATIONS) {
        for (const causal of [false, true]) {
          const [q, k, v, dOut] = backwardInputs(shape, seed++).map(toF16);
          for (const tiling of TILINGS) {
            const options: AttentionOptions = { activation, causal, precision: "f16", tiling };
            const got = await attentionBackward(q, k, v, dOut, shape, options);
            const ref = attentionBackwardReference(q, k, v, dOut, shape, options);
            assertGradients(backwardLabel(shape, options), got, ref, TOL.f16);
          }
        }
      }
    }
  },
});
