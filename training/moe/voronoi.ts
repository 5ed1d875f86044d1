/**
 * The Voronoi loss: the papers' distance between a fitted mixture G (k atoms)
 * and the true one G* (k* atoms), for over-specified fits (k > k*).
 *
 * What is the papers' (arXiv 2405.13997 §2–3, 2410.11222, 2502.00281 §3–4):
 * each fitted atom belongs to the Voronoi cell A_j of its nearest true atom;
 * the loss sums, per cell, a gate-mass term (how far the fitted gate mass of
 * the cell is from the true atom's) and the parameter differences of the
 * cell's atoms weighted by their gate masses, with first powers in cells that
 * hold one fitted atom and higher powers in cells that hold several (the
 * atoms that split a true atom converge more slowly, and the loss's powers
 * are those at which it is matched to the function error); for strongly
 * identifiable (non-linear) experts those powers are 2, for weakly
 * identifiable (linear, polynomial) experts they are larger.
 *
 * What is our choice (the stored copies of the papers we could read here hold
 * their abstracts and introductions, not the loss's equations, so these are
 * our reading, stated so that they can be checked):
 *
 * - cells by Euclidean distance over the gate's non-constant terms (A, b) and
 *   the expert (a, e); the constant c enters through the mass only;
 * - gate mass exp(c) for softmax and σ(c) (the gate at x = 0) for sigmoid;
 * - powers in a cell of m ≥ 2 atoms: 2 for every group with GELU experts; for
 *   linear experts r̄(m) = 2m (r̄(2) = 4, r̄(3) = 6: the values of the
 *   polynomial system behind the rates of softmax-gated mixtures of linear
 *   experts, Nguyen, Nguyen, Ho 2023, arXiv 2305.03288);
 * - softmax gates are invariant to adding one vector to every atom's gate
 *   parameters, so the fitted atoms are first moved to a canonical
 *   representative: the shift that makes the mass-weighted mean of the fitted
 *   gate terms equal the truth's and the total mass equal the truth's
 *   ({@linkcode softmaxGauge}). It is zero for the truth and for any exact
 *   split of it, so the loss stays zero there.
 *
 * @module
 */

import { atomSize, evaluate, gateSize, type Inputs, type MoeSpec, sigmoid } from "./model.ts";

/** The loss and its parts. */
export interface VoronoiLoss {
  /** The total: mass + single + multi. */
  value: number;
  /** Σ_j |Σ_{i∈A_j} m_i − m*_j|. */
  mass: number;
  /** Cells holding one fitted atom: Σ m_i (‖Δgate‖ + ‖Δexpert‖). */
  single: number;
  /** Cells holding several: Σ m_i (‖Δgate‖^r + ‖Δexpert‖^r). */
  multi: number;
  /** Per true atom, the indices of the fitted atoms in its cell. */
  cells: number[][];
}

/** The multi-atom power for an expert type and a cell of m ≥ 2 atoms (see the module doc). */
export function cellPower(expert: MoeSpec["expert"], m: number): number {
  if (m < 2) return 1;
  return expert === "ffn" ? 2 : 2 * m;
}

/**
 * The shift of a softmax fit's gate parameters onto the truth's gauge: the
 * non-constant terms move by (mass-weighted mean of the truth) − (that of the
 * fit), the constants by ln Σ exp(c*) − ln Σ exp(c). Returns the shifted copy.
 */
export function softmaxGauge(
  spec: MoeSpec,
  fitted: Float64Array,
  truth: Float64Array,
): Float64Array {
  const G = gateSize(spec), S = G + spec.dim + 1;
  const k = fitted.length / S, ks = truth.length / S;
  const weightedMean = (theta: Float64Array, count: number) => {
    let cmax = -Infinity;
    for (let j = 0; j < count; j++) cmax = Math.max(cmax, theta[j * S + G - 1]);
    const mean = new Float64Array(G - 1);
    let total = 0;
    for (let j = 0; j < count; j++) {
      const w = Math.exp(theta[j * S + G - 1] - cmax);
      total += w;
      for (let t = 0; t < G - 1; t++) mean[t] += w * theta[j * S + t];
    }
    for (let t = 0; t < G - 1; t++) mean[t] /= total;
    return { mean, logMass: cmax + Math.log(total) };
  };
  const f = weightedMean(fitted, k), s = weightedMean(truth, ks);
  const out = fitted.slice();
  for (let j = 0; j < k; j++) {
    for (let t = 0; t < G - 1; t++) out[j * S + t] += s.mean[t] - f.mean[t];
    out[j * S + G - 1] += s.logMass - f.logMass;
  }
  return out;
}

/** The Voronoi loss D(G, G*) of the fitted parameters against the true ones (same spec but k). */
export function voronoiLoss(
  spec: MoeSpec,
  fitted: Float64Array,
  truth: Float64Array,
): VoronoiLoss {
  const G = gateSize(spec), E = spec.dim + 1, S = G + E;
  if (fitted.length % S !== 0 || truth.length % S !== 0) {
    throw new RangeError(`fitted and truth must hold whole atoms of ${S} numbers`);
  }
  const fit = spec.gate === "softmax" ? softmaxGauge(spec, fitted, truth) : fitted;
  const k = fit.length / S, ks = truth.length / S;
  const mass = (c: number) => spec.gate === "softmax" ? Math.exp(c) : sigmoid(c);
  const cells: number[][] = Array.from({ length: ks }, () => []);
  const gateDiff = new Float64Array(k), expertDiff = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    let best = -1, bestDist = Infinity;
    for (let j = 0; j < ks; j++) {
      let dist = 0;
      for (let t = 0; t < S; t++) {
        if (t === G - 1) continue;
        const diff = fit[i * S + t] - truth[j * S + t];
        dist += diff * diff;
      }
      if (dist < bestDist) [best, bestDist] = [j, dist];
    }
    cells[best].push(i);
    let g2 = 0, e2 = 0;
    for (let t = 0; t < G - 1; t++) g2 += (fit[i * S + t] - truth[best * S + t]) ** 2;
    for (let t = G; t < S; t++) e2 += (fit[i * S + t] - truth[best * S + t]) ** 2;
    gateDiff[i] = Math.sqrt(g2);
    expertDiff[i] = Math.sqrt(e2);
  }
  let massTerm = 0, single = 0, multi = 0;
  for (let j = 0; j < ks; j++) {
    const members = cells[j];
    let m = 0;
    for (const i of members) m += mass(fit[i * S + G - 1]);
    massTerm += Math.abs(m - mass(truth[j * S + G - 1]));
    const r = cellPower(spec.expert, members.length);
    for (const i of members) {
      const term = mass(fit[i * S + G - 1]) * (gateDiff[i] ** r + expertDiff[i] ** r);
      if (members.length === 1) single += term;
      else multi += term;
    }
  }
  return { value: massTerm + single + multi, mass: massTerm, single, multi, cells };
}

/**
 * A diagnostic beside the loss, not part of it: the fitted atoms whose term
 * g_i(x) h_i(x) of f is negligible on `inputs`, max_x |g_i(x) h_i(x)| ≤
 * `tolerance` · `scale` (the caller passes the scale, e.g. max_x |f*(x)|).
 * Under sigmoid gating such a "null" atom can be dropped without changing f
 * by more than that, yet the Voronoi loss above weights it by σ(c) and
 * compares its parameters with its nearest true atom's, so it can give an
 * exact function a large loss. Under softmax g_i is the atom's share of the
 * normalised gate, so dropping it rescales the others' gates.
 */
export function nullAtoms(
  spec: MoeSpec,
  theta: Float64Array,
  inputs: Inputs,
  scale: number,
  tolerance = 1e-3,
): number[] {
  if (!(scale > 0) || !Number.isFinite(scale)) {
    throw new RangeError(`scale must be a positive finite number, got ${scale}`);
  }
  if (!(tolerance >= 0)) throw new RangeError(`tolerance must be ≥ 0, got ${tolerance}`);
  const k = spec.experts, S = atomSize(spec);
  if (theta.length !== k * S) {
    throw new RangeError(`theta must have length ${k * S}, got ${theta.length}`);
  }
  // f with one atom's expert zeroed differs from f by exactly that atom's term g_i h_i
  // (the gates do not depend on the expert parameters, for either gate).
  const f = evaluate(spec, theta, inputs);
  const out: number[] = [];
  for (let i = 0; i < k; i++) {
    const t = theta.slice();
    t.fill(0, i * S + gateSize(spec), (i + 1) * S);
    // The GELU expert with zero parameters outputs gelu(0) = 0, the linear one 0.
    const g = evaluate(spec, t, inputs);
    let worst = 0;
    for (let r = 0; r < inputs.n; r++) worst = Math.max(worst, Math.abs(f[r] - g[r]));
    if (worst <= tolerance * scale) out.push(i);
  }
  return out;
}

/** The fit with the atoms at `drop` removed: its parameters and spec (experts reduced). */
export function withoutAtoms(
  spec: MoeSpec,
  theta: Float64Array,
  drop: readonly number[],
): { spec: MoeSpec; theta: Float64Array } {
  const S = atomSize(spec);
  const keep: number[] = [];
  for (let i = 0; i < spec.experts; i++) if (!drop.includes(i)) keep.push(i);
  const out = new Float64Array(keep.length * S);
  keep.forEach((i, j) => out.set(theta.subarray(i * S, (i + 1) * S), j * S));
  return { spec: { ...spec, experts: keep.length }, theta: out };
}
