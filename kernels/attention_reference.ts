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
  checkTensors,
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

/** The numbers a reference needs, read off `shape` and the resolved options. */
export interface _Problem {
  BH: number;
  S: number;
  D: number;
  softmax: boolean;
  causal: boolean;
  scale: number;
  bias: number;
}

/** Checks `shape` and `options` and reads off what the references need. */
export function _problem(shape: AttentionShape, options: AttentionOptions): _Problem {
  checkShape(shape);
  const o = resolveOptions(shape, options);
  return {
    BH: shape.batch * shape.heads,
    S: shape.seqLen,
    D: shape.headDim,
    softmax: o.activation === "softmax",
    causal: o.causal,
    scale: o.scale,
    bias: o.sigmoidBias,
  };
}

/**
 * The attention weights of query row `i` of the head starting at element
 * `base`: `w[j]` for the visible keys `j < keys` (f64). Returns `keys` and,
 * for softmax, the row logsumexp (0 for sigmoid).
 */
function _rowWeights(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  base: number,
  i: number,
  p: _Problem,
  w: Float64Array,
): { keys: number; lse: number } {
  const { S, D } = p;
  const keys = p.causal ? i + 1 : S;
  const qi = base + i * D;
  for (let j = 0; j < keys; j++) {
    const kj = base + j * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qi + d] * k[kj + d];
    w[j] = p.scale * dot;
  }
  if (!p.softmax) {
    for (let j = 0; j < keys; j++) w[j] = sigmoid(w[j] + p.bias);
    return { keys, lse: 0 };
  }
  let m = -Infinity;
  for (let j = 0; j < keys; j++) m = Math.max(m, w[j]);
  let l = 0;
  for (let j = 0; j < keys; j++) l += w[j] = Math.exp(w[j] - m);
  for (let j = 0; j < keys; j++) w[j] /= l;
  return { keys, lse: m + Math.log(l) };
}

/** The forward pass in f64 on any numeric arrays (the finite-difference tests feed it f64). */
export function _forwardF64(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  p: _Problem,
): { out: Float64Array; lse: Float64Array } {
  const { BH, S, D } = p;
  const out = new Float64Array(BH * S * D);
  const lse = new Float64Array(BH * S);
  const w = new Float64Array(S);
  for (let bh = 0; bh < BH; bh++) {
    const base = bh * S * D;
    for (let i = 0; i < S; i++) {
      const row = _rowWeights(q, k, base, i, p, w);
      lse[bh * S + i] = row.lse;
      const oi = base + i * D;
      for (let j = 0; j < row.keys; j++) {
        const vj = base + j * D;
        for (let d = 0; d < D; d++) out[oi + d] += w[j] * v[vj + d];
      }
    }
  }
  return { out, lse };
}

/** The backward pass in f64 on any numeric arrays: gradients of `Σ dOut ∘ out`. */
export function _backwardF64(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dOut: ArrayLike<number>,
  p: _Problem,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { BH, S, D, scale } = p;
  const [dq, dk, dv] = [0, 1, 2].map(() => new Float64Array(BH * S * D));
  const w = new Float64Array(S);
  const dS = new Float64Array(S);
  for (let bh = 0; bh < BH; bh++) {
    const base = bh * S * D;
    for (let i = 0; i < S; i++) {
      const { keys } = _rowWeights(q, k, base, i, p, w);
      const oi = base + i * D;
      // dP_ij = dO_i · v_j; softmax needs D_i = Σ_j P_ij dP_ij (= dO_i · O_i).
      let rowTerm = 0;
      for (let j = 0; j < keys; j++) {
        const vj = base + j * D;
        let dp = 0;
        for (let d = 0; d < D; d++) dp += dOut[oi + d] * v[vj + d];
        dS[j] = dp;
        rowTerm += w[j] * dp;
      }
      for (let j = 0; j < keys; j++) {
        // softmax: dS = P ∘ (dP − D_i); sigmoid: dS = dP ∘ σ(1 − σ).
        dS[j] = p.softmax ? w[j] * (dS[j] - rowTerm) : dS[j] * w[j] * (1 - w[j]);
        const kj = base + j * D;
        for (let d = 0; d < D; d++) {
          dq[oi + d] += scale * dS[j] * k[kj + d];
          dk[kj + d] += scale * dS[j] * q[oi + d];
          dv[kj + d] += w[j] * dOut[oi + d];
        }
      }
    }
  }
  return { dq, dk, dv };
}

/** Reference forward pass returning the output and the row logsumexp. */
export function attentionReferenceWithLse(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  shape: AttentionShape,
  options: AttentionOptions,
): ReferenceForward {
  const p = _problem(shape, options);
  checkTensors(shape, { q, k, v });
  const { out, lse } = _forwardF64(q, k, v, p);
  return { out: Float32Array.from(out), lse: Float32Array.from(lse) };
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

/**
 * Gradients of an attention call with respect to its inputs.
 *
 * @example
 * ```ts
 * import { type AttentionGradients, attentionBackwardReference } from "@sigmax/sigmax";
 * const shape = { batch: 1, heads: 1, seqLen: 2, headDim: 1 };
 * const x = new Float32Array([1, 2]);
 * const grads: AttentionGradients = attentionBackwardReference(x, x, x, x, shape, {
 *   activation: "softmax",
 * });
 * console.log(grads.dv); // Pᵀ·dO
 * ```
 */
export interface AttentionGradients {
  /** `[B,H,S,D]` gradient with respect to q. */
  dq: Float32Array;
  /** `[B,H,S,D]` gradient with respect to k. */
  dk: Float32Array;
  /** `[B,H,S,D]` gradient with respect to v. */
  dv: Float32Array;
}

/**
 * Gradients of attention in plain TypeScript with f64 sums: given `dOut`
 * (`[B,H,S,D]`, the gradient of a loss with respect to the output), returns
 * the gradients with respect to q, k and v. Softmax: `dS = P ∘ (dP − D)` with
 * `D_i = dO_i · O_i`; sigmoid: `dS = dP ∘ σ(1 − σ)`; then `dV = Pᵀ·dO`,
 * `dK = scale · dSᵀ·Q`, `dQ = scale · dS·K`. Masked weights get no gradient.
 *
 * @example
 * ```ts
 * import { attentionBackwardReference } from "@sigmax/sigmax";
 * const shape = { batch: 1, heads: 1, seqLen: 3, headDim: 2 };
 * const x = new Float32Array([1, 0, 0, 1, 1, 1]);
 * const dOut = new Float32Array([1, 1, 1, 1, 1, 1]);
 * const { dq, dk, dv } = attentionBackwardReference(x, x, x, dOut, shape, { activation: "sigmoid" });
 * console.log(dq.length, dk.length, dv.length); // 6 6 6
 * ```
 */
export function attentionBackwardReference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  dOut: Float32Array,
  shape: AttentionShape,
  options: AttentionOptions,
): AttentionGradients {
  const p = _problem(shape, options);
  checkTensors(shape, { q, k, v, dOut });
  const { dq, dk, dv } = _backwardF64(q, k, v, dOut, p);
  return { dq: Float32Array.from(dq), dk: Float32Array.from(dk), dv: Float32Array.from(dv) };
}
