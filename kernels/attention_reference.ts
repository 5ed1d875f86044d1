/**
 * Plain TypeScript attention, accumulated in f64: the ground truth every
 * attention kernel is tested against.
 *
 * @module
 */

import {
  type AttentionOptions,
  type AttentionShape,
  checkShape,
  checkTensor,
  resolveOptions,
} from "./attention_options.ts";

/** Forward result of the reference, with the softmax row logsumexp the kernels also keep. */
export interface ReferenceForward {
  /** `[B,H,S,D]` attention output. */
  out: Float32Array;
  /** `[B,H,S]` row logsumexp `m + ln(l)` of the scaled scores (softmax); zeros for sigmoid. */
  lse: Float32Array;
}

/** Numerically safe logistic function: never overflows, saturates to exactly 0 or 1. */
export function sigmoid(x: number): number {
  const e = Math.exp(-Math.abs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/** Reference forward pass returning the output and the row logsumexp. */
export function attentionReferenceWithLse(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  shape: AttentionShape,
  options: AttentionOptions,
): ReferenceForward {
  checkShape(shape);
  checkTensor("q", q, shape);
  checkTensor("k", k, shape);
  checkTensor("v", v, shape);
  const { activation, causal, scale, sigmoidBias } = resolveOptions(shape, options);
  const { seqLen: S, headDim: D } = shape;
  const BH = shape.batch * shape.heads;
  const out = new Float32Array(BH * S * D);
  const lse = new Float32Array(BH * S);
  const s = new Float64Array(S); // one row of scores
  const acc = new Float64Array(D);
  for (let bh = 0; bh < BH; bh++) {
    const base = bh * S * D;
    for (let i = 0; i < S; i++) {
      const keys = causal ? i + 1 : S; // keys j < keys are visible to query i
      const qi = base + i * D;
      for (let j = 0; j < keys; j++) {
        const kj = base + j * D;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[qi + d] * k[kj + d];
        s[j] = scale * dot;
      }
      acc.fill(0);
      if (activation === "softmax") {
        let m = -Infinity;
        for (let j = 0; j < keys; j++) m = Math.max(m, s[j]);
        let l = 0;
        for (let j = 0; j < keys; j++) {
          const p = Math.exp(s[j] - m);
          l += p;
          const vj = base + j * D;
          for (let d = 0; d < D; d++) acc[d] += p * v[vj + d];
        }
        for (let d = 0; d < D; d++) out[qi + d] = acc[d] / l;
        lse[bh * S + i] = m + Math.log(l);
      } else {
        for (let j = 0; j < keys; j++) {
          const p = sigmoid(s[j] + sigmoidBias);
          const vj = base + j * D;
          for (let d = 0; d < D; d++) acc[d] += p * v[vj + d];
        }
        for (let d = 0; d < D; d++) out[qi + d] = acc[d];
      }
    }
  }
  return { out, lse };
}

/**
 * Attention computed in plain TypeScript with f64 sums: the reference the GPU
 * kernels are tested against. Same arguments and semantics as `attention()`
 * (`implementation`, `precision` and `device` are ignored).
 *
 * @example
 * ```ts
 * import { attentionReference } from "@sigmax/sigmax";
 * const shape = { batch: 1, heads: 1, seqLen: 2, headDim: 2 };
 * const q = new Float32Array([1, 0, 0, 1]);
 * const out = attentionReference(q, q, q, shape, { activation: "softmax", causal: true });
 * console.log(out); // row 0 sees only key 0: [1, 0, ...]
 * ```
 */
export function attentionReference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  shape: AttentionShape,
  options: AttentionOptions,
): Float32Array {
  return attentionReferenceWithLse(q, k, v, shape, options).out;
}
