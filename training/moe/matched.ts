/**
 * A second, gate-neutral endpoint of the paper study beside the Voronoi loss:
 * how far the fitted atoms that carry the true experts are from them, and how
 * much of the fitted function the left-over atoms carry.
 *
 * Why a second endpoint (our choice, not the papers'): the Voronoi loss
 * ({@linkcode voronoiLoss}) weights each fitted atom by a gate mass and raises
 * the differences in multi-atom cells to high powers (4 and 6 for linear
 * experts), following our reading of the papers' losses, whose equations we
 * could not check here. On the over-specified fits this makes it swing over
 * orders of magnitude with where the extra atom settles: an extra atom whose
 * expert has shrunk towards zero (it fits noise) is still compared, with
 * σ(c) or exp(c) weight, with the true expert of its cell. The matched error
 * asks a question that needs no weights or powers: pair each true atom with a
 * distinct fitted atom (the pairing that makes the worst pair closest) and
 * take the worst pair's parameter distance. The atoms left over are measured
 * by what they add to f̂, so a fit whose extra atom fades shows a falling
 * {@linkcode extraTerm}, and one that splits a true expert in two does not.
 *
 * Distances are Euclidean over the gate's non-constant terms (A, and b for
 * the fully quadratic score) and the expert (a, e), as the Voronoi cells are;
 * the gate constant c is left out (a split moves it: c − ln 2 under softmax).
 * Softmax gates are unchanged by adding one vector to every atom's gate
 * terms, so for softmax the fitted gate terms are first shifted by the vector
 * that best aligns the matched pairs (the mean of their differences), which
 * makes the error the same for every representative of the fit.
 *
 * @module
 */

import { atomSize, atomValues, gateSize, type Inputs, type MoeSpec } from "./model.ts";

/** The matched error of a fit and its pairing. */
export interface MatchedError {
  /** max over true atoms j of ‖θ̂_π(j) − θ*_j‖ (gate terms without c, and the expert). */
  value: number;
  /** The same over the expert parameters (a, e) alone. */
  expert: number;
  /** π: for each true atom, the index of the fitted atom paired with it. */
  matching: number[];
  /** The fitted atoms left unpaired (k − k* of them). */
  extra: number[];
}

/** Every injective map of `from` items into `to` indices (k!/(k−k*)! of them; k is small here). */
function injections(from: number, to: number): number[][] {
  const out: number[][] = [];
  const walk = (prefix: number[]) => {
    if (prefix.length === from) return void out.push(prefix);
    for (let i = 0; i < to; i++) if (!prefix.includes(i)) walk([...prefix, i]);
  };
  walk([]);
  return out;
}

/**
 * The matched error of `fitted` (k atoms of `spec`) against `truth` (k* ≤ k
 * atoms of the same kind), over every pairing of true atoms with distinct
 * fitted atoms; ties go to the first pairing in lexicographic order.
 */
export function matchedAtomError(
  spec: MoeSpec,
  fitted: Float64Array,
  truth: Float64Array,
): MatchedError {
  const G = gateSize(spec), S = atomSize(spec);
  if (fitted.length % S !== 0 || truth.length % S !== 0) {
    throw new RangeError(`fitted and truth must hold whole atoms of ${S} numbers`);
  }
  const k = fitted.length / S, ks = truth.length / S;
  if (ks > k) throw new RangeError(`the fit has ${k} atoms, fewer than the truth's ${ks}`);
  let best: MatchedError | undefined;
  for (const pi of injections(ks, k)) {
    // The softmax gauge: shift every fitted gate term by the mean difference over the pairs.
    const shift = new Float64Array(G - 1);
    if (spec.gate === "softmax") {
      for (let j = 0; j < ks; j++) {
        for (let t = 0; t < G - 1; t++) shift[t] += (truth[j * S + t] - fitted[pi[j] * S + t]) / ks;
      }
    }
    let worst = 0, worstExpert = 0;
    for (let j = 0; j < ks; j++) {
      let gate2 = 0, expert2 = 0;
      for (let t = 0; t < G - 1; t++) {
        gate2 += (fitted[pi[j] * S + t] + shift[t] - truth[j * S + t]) ** 2;
      }
      for (let t = G; t < S; t++) expert2 += (fitted[pi[j] * S + t] - truth[j * S + t]) ** 2;
      worst = Math.max(worst, Math.sqrt(gate2 + expert2));
      worstExpert = Math.max(worstExpert, Math.sqrt(expert2));
    }
    if (!best || worst < best.value) {
      const extra: number[] = [];
      for (let i = 0; i < k; i++) if (!pi.includes(i)) extra.push(i);
      best = { value: worst, expert: worstExpert, matching: pi, extra };
    }
  }
  return best!;
}

/**
 * What the atoms `atoms` add to the fitted function: the root mean square over
 * `inputs` of Σ_{i ∈ atoms} g_i(x) h_i(x) (for softmax, g_i is the atom's share
 * of the gate normalised over all k atoms). Zero for an empty list.
 */
export function extraTerm(
  spec: MoeSpec,
  theta: Float64Array,
  atoms: readonly number[],
  inputs: Inputs,
): number {
  for (const i of atoms) {
    if (!Number.isInteger(i) || i < 0 || i >= spec.experts) {
      throw new RangeError(`atom index ${i} is not one of the fit's ${spec.experts} atoms`);
    }
  }
  if (atoms.length === 0) return 0;
  const { gates, experts } = atomValues(spec, theta, inputs);
  const k = spec.experts;
  let sum = 0;
  for (let x = 0; x < inputs.n; x++) {
    let term = 0;
    for (const i of atoms) term += gates[x * k + i] * experts[x * k + i];
    sum += term * term;
  }
  return Math.sqrt(sum / inputs.n);
}
