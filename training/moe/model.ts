/**
 * The regression model of the papers behind sigmax's study, in exact f64:
 * a mixture of k experts whose gates are quadratic scores of the input.
 *
 * The papers (what is theirs):
 *
 * - Yan, Nguyen, Akbarian, Ho, Rinaldo, "Sigmoid Self-Attention has Lower
 *   Sample Complexity than Softmax Self-Attention: A Mixture-of-Experts
 *   Perspective", arXiv 2502.00281v2: each row of self-attention is a mixture
 *   of experts whose gating scores are quadratic in the (flattened) input
 *   sequence — `x̄ᵀ A x̄` from `q_iᵀ k_j` — under sigmoid or softmax gating;
 *   they analyse the least-squares estimator of an over-specified mixture for
 *   a "fully quadratic" and a "partially quadratic" score, strongly and weakly
 *   identifiable experts, in a dense and a sparse regime of the true gating
 *   parameters.
 * - Akbarian, Nguyen, Han, Ho, arXiv 2410.11222: the two quadratic gates, the
 *   quadratic polynomial `xᵀAx + bᵀx + c` and the quadratic monomial
 *   `xᵀAx + c` (here "fully" and "partially" quadratic); linear experts are
 *   estimated more slowly than non-linear ones.
 * - Nguyen, Ho, Rinaldo, arXiv 2405.13997: the regression framework
 *   `Y = f_{G*}(X) + ε` with the sigmoid-gated mixture
 *   `f_G(x) = Σ_i σ(score_i(x)) h(x, η_i)`, the least-squares estimator, two
 *   regimes of the true gating parameters (all gate slopes non-zero, or some
 *   zero), and feed-forward experts with ReLU/GELU activations as the
 *   strongly identifiable ones.
 *
 * Our choices (not the papers'): input dimension 2, inputs uniform on
 * [-1, 1]², k* = 2 true experts, Gaussian noise of standard deviation 0.05, the
 * true parameter values in {@linkcode trueAtoms}, the tanh form of GELU as the
 * non-linear expert `h(x, η) = gelu(aᵀx + e)` (smooth, so the least-squares
 * fit has exact derivatives), the linear expert `h(x, η) = aᵀx + e`, and the
 * sparse regime realised as one true expert whose quadratic and linear gate
 * terms are zero (an input-independent gate), the analogue of 2405.13997's
 * regime in which some true gate slopes are zero.
 *
 * Layout: an atom (one expert and its gate) is the flat vector
 * `[w (gate: upper triangle of A, then b if fully quadratic, then c), v (expert: a, then e)]`.
 * The score is linear in w: `score(x) = wᵀ z(x)` with the gate features
 * `z(x) = [x_p x_q (×2 when p < q) for p ≤ q, x (fully only), 1]`, so
 * `xᵀAx = Σ_p A_pp x_p² + 2 Σ_{p<q} A_pq x_p x_q` for the symmetric A.
 *
 * @module
 */

import { Rng } from "../rng.ts";

/** The gating function: element-wise sigmoid, or softmax over the k experts. */
export type Gate = "sigmoid" | "softmax";
/** The quadratic score: `xᵀAx + bᵀx + c` ("fully") or `xᵀAx + c` ("partially"). */
export type Score = "fully" | "partially";
/** Expert type: linear (weakly identifiable) or GELU feed-forward (strongly identifiable). */
export type Expert = "linear" | "ffn";
/** The regime of the true gating parameters. */
export type Regime = "dense" | "sparse";

/** Shape and kind of a mixture. */
export interface MoeSpec {
  gate: Gate;
  score: Score;
  expert: Expert;
  /** Input dimension d. */
  dim: number;
  /** Number of experts k. */
  experts: number;
}

/** Length of the gate part w of an atom. */
export function gateSize(spec: Pick<MoeSpec, "score" | "dim">): number {
  const d = spec.dim;
  return (d * (d + 1)) / 2 + (spec.score === "fully" ? d : 0) + 1;
}

/** Length of the expert part v of an atom: a (d) and e. */
export function expertSize(spec: Pick<MoeSpec, "dim">): number {
  return spec.dim + 1;
}

/** Length of one atom. */
export function atomSize(spec: Pick<MoeSpec, "score" | "dim">): number {
  return gateSize(spec) + expertSize(spec);
}

/** Length of the parameter vector of a mixture. */
export function paramCount(spec: MoeSpec): number {
  return spec.experts * atomSize(spec);
}

/** Checks a spec; throws a RangeError naming the field. */
export function checkSpec(spec: MoeSpec): void {
  if (spec.gate !== "sigmoid" && spec.gate !== "softmax") {
    throw new RangeError(`gate must be "sigmoid" or "softmax", got ${JSON.stringify(spec.gate)}`);
  }
  if (spec.score !== "fully" && spec.score !== "partially") {
    throw new RangeError(
      `score must be "fully" or "partially", got ${JSON.stringify(spec.score)}`,
    );
  }
  if (spec.expert !== "linear" && spec.expert !== "ffn") {
    throw new RangeError(`expert must be "linear" or "ffn", got ${JSON.stringify(spec.expert)}`);
  }
  for (const key of ["dim", "experts"] as const) {
    if (!Number.isInteger(spec[key]) || spec[key] < 1) {
      throw new RangeError(`${key} must be a positive integer, got ${spec[key]}`);
    }
  }
}

/** The gate features z(x) of one input (length {@linkcode gateSize}). */
export function gateFeatures(spec: MoeSpec, x: ArrayLike<number>, out: Float64Array): void {
  const d = spec.dim;
  let k = 0;
  for (let p = 0; p < d; p++) {
    for (let q = p; q < d; q++) out[k++] = (p === q ? 1 : 2) * x[p] * x[q];
  }
  if (spec.score === "fully") { for (let p = 0; p < d; p++) out[k++] = x[p]; }
  out[k] = 1;
}

const GELU_C = Math.sqrt(2 / Math.PI);

/** GELU, tanh form: `½ u (1 + tanh(√(2/π)(u + 0.044715 u³)))`. */
export function gelu(u: number): number {
  return 0.5 * u * (1 + Math.tanh(GELU_C * (u + 0.044715 * u * u * u)));
}

/** d gelu / du (exact derivative of the tanh form). */
export function geluGrad(u: number): number {
  const t = Math.tanh(GELU_C * (u + 0.044715 * u * u * u));
  return 0.5 * (1 + t) + 0.5 * u * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * u * u);
}

/** Logistic sigmoid, stable for large |s|. */
export function sigmoid(s: number): number {
  if (s >= 0) return 1 / (1 + Math.exp(-s));
  const e = Math.exp(s);
  return e / (1 + e);
}

/** Inputs: n × d, row-major. */
export interface Inputs {
  n: number;
  dim: number;
  x: Float64Array;
}

/**
 * Evaluates the mixture at every input; with `jac`, also its Jacobian
 * ∂f(x_i)/∂θ (n × P, row-major). Returns f (length n).
 *
 * Derivatives: with g_j the gate, h_j the expert and u_j = a_jᵀx + e_j,
 * ∂f/∂v_j = g_j h'(u_j) [x, 1]; ∂f/∂w_l = g_l (1 − g_l) h_l z for sigmoid and
 * g_l (h_l − f) z for softmax (since ∂g_j/∂s_l = g_j(δ_jl − g_l)).
 */
export function evaluate(
  spec: MoeSpec,
  theta: Float64Array,
  inputs: Inputs,
  jac?: Float64Array,
): Float64Array {
  const { n, x } = inputs;
  const d = spec.dim, k = spec.experts;
  const G = gateSize(spec), S = atomSize(spec), P = k * S;
  if (inputs.dim !== d) throw new RangeError(`inputs.dim must be ${d}, got ${inputs.dim}`);
  if (theta.length !== P) throw new RangeError(`theta must have length ${P}, got ${theta.length}`);
  if (jac && jac.length !== n * P) {
    throw new RangeError(`jac must have length ${n * P}, got ${jac.length}`);
  }
  const f = new Float64Array(n);
  const z = new Float64Array(G);
  const s = new Float64Array(k), g = new Float64Array(k), h = new Float64Array(k);
  const hp = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    const xi = x.subarray(i * d, i * d + d);
    gateFeatures(spec, xi, z);
    let smax = -Infinity;
    for (let j = 0; j < k; j++) {
      const o = j * S;
      let sj = 0;
      for (let t = 0; t < G; t++) sj += theta[o + t] * z[t];
      s[j] = sj;
      if (sj > smax) smax = sj;
      let u = theta[o + G + d];
      for (let p = 0; p < d; p++) u += theta[o + G + p] * xi[p];
      if (spec.expert === "linear") {
        h[j] = u;
        hp[j] = 1;
      } else {
        h[j] = gelu(u);
        hp[j] = geluGrad(u);
      }
    }
    if (spec.gate === "sigmoid") {
      for (let j = 0; j < k; j++) g[j] = sigmoid(s[j]);
    } else {
      let sum = 0;
      for (let j = 0; j < k; j++) sum += g[j] = Math.exp(s[j] - smax);
      for (let j = 0; j < k; j++) g[j] /= sum;
    }
    let fi = 0;
    for (let j = 0; j < k; j++) fi += g[j] * h[j];
    f[i] = fi;
    if (!jac) continue;
    const row = i * P;
    for (let j = 0; j < k; j++) {
      const o = row + j * S;
      const ds = spec.gate === "sigmoid" ? g[j] * (1 - g[j]) * h[j] : g[j] * (h[j] - fi);
      for (let t = 0; t < G; t++) jac[o + t] = ds * z[t];
      const dv = g[j] * hp[j];
      for (let p = 0; p < d; p++) jac[o + G + p] = dv * xi[p];
      jac[o + G + d] = dv;
    }
  }
  return f;
}

/** One atom in readable form. */
export interface Atom {
  /** Upper triangle of the symmetric A, row by row (A11, A12, …, A22, …). */
  A: number[];
  /** Linear gate term (fully quadratic scores only; ignored otherwise). */
  b: number[];
  c: number;
  /** Expert slope. */
  a: number[];
  /** Expert intercept. */
  e: number;
}

/** Packs atoms into a parameter vector. */
export function packAtoms(spec: MoeSpec, atoms: Atom[]): Float64Array {
  if (atoms.length !== spec.experts) {
    throw new RangeError(`atoms must have ${spec.experts} entries, got ${atoms.length}`);
  }
  const d = spec.dim, S = atomSize(spec);
  const theta = new Float64Array(spec.experts * S);
  atoms.forEach((atom, j) => {
    const o = j * S;
    let t = 0;
    for (const v of atom.A) theta[o + t++] = v;
    if (spec.score === "fully") { for (let p = 0; p < d; p++) theta[o + t++] = atom.b[p] ?? 0; }
    theta[o + t++] = atom.c;
    for (let p = 0; p < d; p++) theta[o + t++] = atom.a[p];
    theta[o + t] = atom.e;
  });
  return theta;
}

/** Unpacks a parameter vector into atoms. */
export function unpackAtoms(spec: MoeSpec, theta: Float64Array): Atom[] {
  const d = spec.dim, S = atomSize(spec), tri = (d * (d + 1)) / 2;
  const out: Atom[] = [];
  for (let j = 0; j < spec.experts; j++) {
    const o = j * S;
    const b = spec.score === "fully"
      ? Array.from(theta.subarray(o + tri, o + tri + d))
      : new Array(d).fill(0);
    const g = gateSize(spec);
    out.push({
      A: Array.from(theta.subarray(o, o + tri)),
      b,
      c: theta[o + g - 1],
      a: Array.from(theta.subarray(o + g, o + g + d)),
      e: theta[o + g + d],
    });
  }
  return out;
}

/** Every atom's gate g_i(x) and expert output h_i(x) on the inputs (row-major [n, k]). */
export interface AtomValues {
  gates: Float64Array;
  experts: Float64Array;
}

/**
 * The gate and the expert output of every atom at every input: f(x) is
 * Σ_i gates[x, i] · experts[x, i] ({@linkcode evaluate}). For the softmax
 * gate, gates[x, i] is atom i's share of the normalised gate.
 */
export function atomValues(spec: MoeSpec, theta: Float64Array, inputs: Inputs): AtomValues {
  const { n, x } = inputs;
  const d = spec.dim, k = spec.experts, G = gateSize(spec), S = atomSize(spec);
  if (inputs.dim !== d) throw new RangeError(`inputs.dim must be ${d}, got ${inputs.dim}`);
  if (theta.length !== k * S) {
    throw new RangeError(`theta must have length ${k * S}, got ${theta.length}`);
  }
  const gates = new Float64Array(n * k), experts = new Float64Array(n * k);
  const z = new Float64Array(G);
  for (let i = 0; i < n; i++) {
    const xi = x.subarray(i * d, i * d + d);
    gateFeatures(spec, xi, z);
    const row = gates.subarray(i * k, (i + 1) * k);
    for (let j = 0; j < k; j++) {
      const o = j * S;
      let s = 0;
      for (let t = 0; t < G; t++) s += theta[o + t] * z[t];
      row[j] = s;
      let u = theta[o + G + d];
      for (let p = 0; p < d; p++) u += theta[o + G + p] * xi[p];
      experts[i * k + j] = spec.expert === "linear" ? u : gelu(u);
    }
    if (spec.gate === "sigmoid") {
      for (let j = 0; j < k; j++) row[j] = sigmoid(row[j]);
    } else {
      let smax = -Infinity, sum = 0;
      for (let j = 0; j < k; j++) smax = Math.max(smax, row[j]);
      for (let j = 0; j < k; j++) sum += row[j] = Math.exp(row[j] - smax);
      for (let j = 0; j < k; j++) row[j] /= sum;
    }
  }
  return { gates, experts };
}

/**
 * The true atoms (k* = 2, d = 2; our choice of values). Dense regime: both
 * experts' quadratic (and linear) gate terms are non-zero. Sparse regime:
 * the second expert's are zero, so its gate does not depend on the input.
 */
export function trueAtoms(regime: Regime): Atom[] {
  const first: Atom = { A: [2, 1, -1], b: [1, -1], c: 0.5, a: [1.5, -1], e: 0.5 };
  const second: Atom = regime === "dense"
    ? { A: [-1, -0.5, 2], b: [-1, 0.5], c: -0.5, a: [-1, 2], e: -0.5 }
    : { A: [0, 0, 0], b: [0, 0], c: -0.5, a: [-1, 2], e: -0.5 };
  return [first, second];
}

/** The paper-study's data: n inputs uniform on [-1, 1]^d and y = f*(x) + N(0, noise²). */
export interface Dataset {
  inputs: Inputs;
  y: Float64Array;
}

/**
 * Draws n samples. The draws of a seed are nested: the first n of a larger
 * draw are the smaller draw, so one seed's curve over n shares its data.
 */
export function sampleData(
  spec: MoeSpec,
  truth: Float64Array,
  n: number,
  noise: number,
  seed: number,
): Dataset {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`n must be a positive integer, got ${n}`);
  if (!(noise >= 0)) throw new RangeError(`noise must be ≥ 0, got ${noise}`);
  const rng = new Rng(seed);
  const d = spec.dim;
  const x = new Float64Array(n * d);
  const eps = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < d; p++) x[i * d + p] = 2 * rng.next() - 1;
    eps[i] = rng.normal();
  }
  const inputs = { n, dim: d, x };
  const f = evaluate(spec, truth, inputs);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) y[i] = f[i] + noise * eps[i];
  return { inputs, y };
}

/** Inputs only (a held-out grid for function error), uniform on [-1, 1]^d. */
export function sampleInputs(dim: number, n: number, seed: number): Inputs {
  const rng = new Rng(seed);
  const x = new Float64Array(n * dim);
  for (let i = 0; i < x.length; i++) x[i] = 2 * rng.next() - 1;
  return { n, dim, x };
}
