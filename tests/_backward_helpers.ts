/** Helpers of the backward tests: inputs, labels and the gradient checks. */

import {
  attentionBackward,
  attentionBackwardReference,
  type AttentionGradients,
  type AttentionOptions,
  type AttentionShape,
} from "../mod.ts";
import { assertClose, implementationLabel, randn, TOL } from "./_helpers.ts";

/** q, k, v and dOut for `shape`, standard normal times `std`. */
export function backwardInputs(shape: AttentionShape, seed: number, std = 1) {
  const n = shape.batch * shape.heads * shape.seqLen * shape.headDim;
  return [1, 2, 3, 4].map((i) => randn(n, seed * 4 + i, std));
}

/** A case's name in the printed errors, e.g. `fused sigmoid causal [1,2,7,8]`. */
export function backwardLabel(shape: AttentionShape, options: AttentionOptions): string {
  const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
  const extra = options.scale !== undefined
    ? ` scale=${options.scale.toPrecision(3)} b=${options.sigmoidBias}`
    : "";
  return `${implementationLabel(options)}${options.precision === "f16" ? " f16" : ""} ` +
    `${options.activation}${options.causal ? " causal" : ""} [${B},${H},${S},${D}]${extra}`;
}

/** {@linkcode assertClose} for each of dq, dk and dv. */
export function assertGradients(
  name: string,
  got: AttentionGradients,
  ref: AttentionGradients,
  tol: { atol: number; rtol: number },
) {
  for (const g of ["dq", "dk", "dv"] as const) assertClose(`${g} ${name}`, got[g], ref[g], tol);
}

/** Runs `attentionBackward` and checks it against the reference at f32 backward tolerance. */
export async function checkBackwardCase(
  shape: AttentionShape,
  options: AttentionOptions,
  seed: number,
) {
  const [q, k, v, dOut] = backwardInputs(shape, seed);
  const got = await attentionBackward(q, k, v, dOut, shape, options);
  const ref = attentionBackwardReference(q, k, v, dOut, shape, options);
  assertGradients(backwardLabel(shape, options), got, ref, TOL.f32Backward);
}
