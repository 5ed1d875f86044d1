/**
 * The estimator the papers' theorems are about: the unpenalised least-squares
 * fit `Ĝ_n ∈ argmin_G Σ_i (Y_i − f_G(X_i))²` of a mixture with k experts
 * (arXiv 2405.13997 §2, and 2502.00281's analogue for quadratic scores), in
 * exact f64.
 *
 * Optimiser (our choice): Levenberg–Marquardt on the residuals, with the
 * analytic Jacobian of {@linkcode evaluate}, Marquardt's diagonal scaling
 * (plus a tiny ridge, since softmax gates are invariant to a common shift of
 * every score and so leave JᵀJ singular along that direction), and Nielsen's
 * damping update. A start has **converged** when, after an accepted step, both
 * the projected gradient of the objective F = Σ r² / (2n) (box-held components
 * zeroed) has max-norm ≤ `gradTol` and
 * the relative decrease of F over that step is ≤ `lossTol`; a start that runs
 * out of iterations, or whose damping blows up first, has not.
 *
 * Several starts (one near the truth with the extra expert split off, plus
 * random ones) are fitted and the one with the lowest training loss is kept;
 * the run records every start, which one won, and whether it converged.
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import { type Atom, evaluate, gateSize, type Inputs, type MoeSpec, packAtoms } from "./model.ts";

/** Stopping rule of one least-squares start. */
export interface FitOptions {
  /** Max-norm of ∇F at which a start may stop. Default 1e-8. */
  gradTol?: number;
  /** Relative decrease of F over the last accepted step at which a start may stop. Default 1e-10. */
  lossTol?: number;
  /** Iteration cap (one Jacobian each). Default 500. */
  maxIterations?: number;
  /**
   * Every parameter is kept in [−bound, bound] (the papers' theorems assume a
   * compact parameter space; without it an over-specified fit can lower its
   * training loss by sending parameters to infinity). Default 10.
   */
  bound?: number;
}

/** Outcome of one start. */
export interface StartResult {
  /** "truth-split" or "random-<i>". */
  start: string;
  /** Training mean squared error Σ r² / n at the end. */
  loss: number;
  /** Max-norm of the projected ∇F at the end (components held by the box bound are zero). */
  gradNorm: number;
  /** Relative decrease of F over the last accepted step. */
  lastRelativeChange: number;
  iterations: number;
  converged: boolean;
  /** Why it stopped. */
  stop: "converged" | "max-iterations" | "damping";
}

/** Outcome of one least-squares start, with its parameters. */
export interface StartFit extends StartResult {
  theta: Float64Array;
}

const defaults = { gradTol: 1e-8, lossTol: 1e-10, maxIterations: 500, bound: 10 };

/** Solves the SPD system M x = r (M p×p row-major, overwritten) by Cholesky; false if not SPD. */
function choleskySolve(M: Float64Array, r: Float64Array, p: number): boolean {
  for (let j = 0; j < p; j++) {
    let s = M[j * p + j];
    for (let k = 0; k < j; k++) s -= M[j * p + k] * M[j * p + k];
    if (!(s > 0)) return false;
    const l = Math.sqrt(s);
    M[j * p + j] = l;
    for (let i = j + 1; i < p; i++) {
      let t = M[i * p + j];
      for (let k = 0; k < j; k++) t -= M[i * p + k] * M[j * p + k];
      M[i * p + j] = t / l;
    }
  }
  for (let i = 0; i < p; i++) {
    let t = r[i];
    for (let k = 0; k < i; k++) t -= M[i * p + k] * r[k];
    r[i] = t / M[i * p + i];
  }
  for (let i = p - 1; i >= 0; i--) {
    let t = r[i];
    for (let k = i + 1; k < p; k++) t -= M[k * p + i] * r[k];
    r[i] = t / M[i * p + i];
  }
  return true;
}

/** F = Σ r² / (2n), its gradient Jᵀr / n and Gauss–Newton matrix JᵀJ / n at theta. */
export function objective(
  spec: MoeSpec,
  theta: Float64Array,
  inputs: Inputs,
  y: Float64Array,
  withDerivatives = true,
): { F: number; grad?: Float64Array; gn?: Float64Array } {
  const n = inputs.n, P = theta.length;
  const jac = withDerivatives ? new Float64Array(n * P) : undefined;
  const f = evaluate(spec, theta, inputs, jac);
  let F = 0;
  const r = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    r[i] = f[i] - y[i];
    F += r[i] * r[i];
  }
  F /= 2 * n;
  if (!jac) return { F };
  const grad = new Float64Array(P);
  const gn = new Float64Array(P * P);
  for (let i = 0; i < n; i++) {
    const row = jac.subarray(i * P, i * P + P);
    const ri = r[i];
    for (let a = 0; a < P; a++) {
      const ja = row[a];
      if (ja === 0) continue;
      grad[a] += ja * ri;
      const o = a * P;
      for (let b = a; b < P; b++) gn[o + b] += ja * row[b];
    }
  }
  for (let a = 0; a < P; a++) {
    grad[a] /= n;
    for (let b = a; b < P; b++) {
      gn[a * P + b] /= n;
      gn[b * P + a] = gn[a * P + b];
    }
  }
  return { F, grad, gn };
}

/** Whether parameter a sits on its bound with the descent direction pointing out of the box. */
function atBound(theta: Float64Array, grad: Float64Array, a: number, bound: number): boolean {
  return (theta[a] >= bound && grad[a] < 0) || (theta[a] <= -bound && grad[a] > 0);
}

/** Max-norm of the projected gradient (components held by the box are zero). */
export function projectedGradNorm(theta: Float64Array, grad: Float64Array, bound: number): number {
  let m = 0;
  for (let a = 0; a < grad.length; a++) {
    if (!atBound(theta, grad, a, bound)) m = Math.max(m, Math.abs(grad[a]));
  }
  return m;
}

/** Fits one start by Levenberg–Marquardt to the stopping rule of `options`. */
export function fitStart(
  spec: MoeSpec,
  inputs: Inputs,
  y: Float64Array,
  theta0: Float64Array,
  start: string,
  options: FitOptions = {},
): StartFit {
  const { gradTol, lossTol, maxIterations, bound } = { ...defaults, ...options };
  if (!(bound > 0)) throw new RangeError(`bound must be > 0, got ${bound}`);
  const P = theta0.length;
  let theta = theta0.map((v) => Math.min(bound, Math.max(-bound, v)));
  let cur = objective(spec, theta, inputs, y);
  let lambda = 1e-3, nu = 2;
  let iterations = 0, lastRel = Infinity;
  let stop: StartResult["stop"] = "max-iterations";
  const M = new Float64Array(P * P), step = new Float64Array(P);
  while (iterations < maxIterations) {
    iterations++;
    const grad = cur.grad!, gn = cur.gn!;
    let dmax = 0;
    for (let a = 0; a < P; a++) dmax = Math.max(dmax, gn[a * P + a]);
    const ridge = 1e-12 * (dmax || 1);
    let accepted = false;
    while (!accepted) {
      M.set(gn);
      for (let a = 0; a < P; a++) M[a * P + a] += lambda * (gn[a * P + a] + ridge);
      for (let a = 0; a < P; a++) step[a] = -grad[a];
      // Parameters held by the box take no step: their rows and columns become the identity.
      for (let a = 0; a < P; a++) {
        if (!atBound(theta, grad, a, bound)) continue;
        for (let b = 0; b < P; b++) M[a * P + b] = M[b * P + a] = 0;
        M[a * P + a] = 1;
        step[a] = 0;
      }
      if (!choleskySolve(M, step, P)) {
        lambda *= nu;
        nu *= 2;
        if (lambda > 1e20) break;
        continue;
      }
      for (let a = 0; a < P; a++) {
        step[a] = Math.min(bound, Math.max(-bound, theta[a] + step[a])) - theta[a];
      }
      // Predicted decrease of the quadratic model: −stepᵀgrad − ½ stepᵀ gn step.
      let lin = 0, quad = 0;
      for (let a = 0; a < P; a++) {
        lin += step[a] * grad[a];
        let t = 0;
        for (let b = 0; b < P; b++) t += gn[a * P + b] * step[b];
        quad += step[a] * t;
      }
      const predicted = -lin - 0.5 * quad;
      const trial = theta.slice();
      for (let a = 0; a < P; a++) trial[a] += step[a];
      const next = objective(spec, trial, inputs, y, false);
      const actual = cur.F - next.F;
      const rho = predicted > 0 ? actual / predicted : -1;
      if (rho > 0 && Number.isFinite(next.F)) {
        accepted = true;
        lastRel = actual / Math.max(cur.F, 1e-300);
        theta = trial;
        cur = objective(spec, theta, inputs, y);
        lambda *= Math.max(1 / 3, 1 - (2 * rho - 1) ** 3);
        nu = 2;
      } else {
        lambda *= nu;
        nu *= 2;
        if (lambda > 1e20) break;
      }
    }
    if (!accepted) {
      stop = "damping";
      break;
    }
    // A zero-residual fit (noise-free data) has no relative change to speak of.
    if (
      projectedGradNorm(theta, cur.grad!, bound) <= gradTol &&
      (lastRel <= lossTol || cur.F <= 1e-30)
    ) {
      stop = "converged";
      break;
    }
  }
  return {
    start,
    theta,
    loss: 2 * cur.F,
    gradNorm: projectedGradNorm(theta, cur.grad!, bound),
    lastRelativeChange: lastRel,
    iterations,
    converged: stop === "converged",
    stop,
  };
}

/** A random start: every gate and expert parameter drawn from N(0, scale²). */
export function randomStart(spec: MoeSpec, rng: Rng, scale = 1): Float64Array {
  const P = spec.experts * (gateSize(spec) + spec.dim + 1);
  const theta = new Float64Array(P);
  for (let i = 0; i < P; i++) theta[i] = scale * rng.normal();
  return theta;
}

/**
 * A start near the truth: the true atoms, the atom `split` duplicated when the
 * fit has one expert more than the truth (each copy carrying half its gate
 * mass: c − ln 2 for softmax, logit(σ(c)/2) for sigmoid), every parameter
 * perturbed by N(0, jitter²) so that the copies can separate.
 */
export function truthSplitStart(
  spec: MoeSpec,
  truth: Atom[],
  split: number,
  rng: Rng,
  jitter = 0.05,
): Float64Array {
  const extra = spec.experts - truth.length;
  if (extra < 0 || extra > 1) {
    throw new RangeError(
      `a truth-split start needs k = k* or k* + 1 experts; k = ${spec.experts}, k* = ${truth.length}`,
    );
  }
  if (!Number.isInteger(split) || split < 0 || split >= truth.length) {
    throw new RangeError(`split must be an index of the true atoms, got ${split}`);
  }
  const atoms = truth.map((a) => ({ ...a, A: [...a.A], b: [...a.b], a: [...a.a] }));
  if (extra === 1) {
    const half = spec.gate === "softmax" ? atoms[split].c - Math.log(2) : (() => {
      const m = 1 / (1 + Math.exp(-atoms[split].c)) / 2;
      return Math.log(m / (1 - m));
    })();
    atoms[split].c = half;
    atoms.push({ ...atoms[split], A: [...atoms[split].A], b: [...atoms[split].b] });
  }
  const theta = packAtoms(spec, atoms);
  for (let i = 0; i < theta.length; i++) theta[i] += jitter * rng.normal();
  return theta;
}

/** The kept fit of a run: every start's outcome, and the winner's parameters. */
export interface MultiStartFit {
  starts: StartResult[];
  /** Index into `starts` of the lowest training loss. */
  winner: number;
  theta: Float64Array;
  loss: number;
  converged: boolean;
}

/** Fits every start and keeps the lowest training loss. */
export function fitMultiStart(
  spec: MoeSpec,
  inputs: Inputs,
  y: Float64Array,
  starts: { name: string; theta: Float64Array }[],
  options: FitOptions = {},
): MultiStartFit {
  if (starts.length === 0) throw new RangeError("starts must not be empty");
  const fits = starts.map((s) => fitStart(spec, inputs, y, s.theta, s.name, options));
  let winner = 0;
  for (let i = 1; i < fits.length; i++) if (fits[i].loss < fits[winner].loss) winner = i;
  return {
    starts: fits.map(({ theta: _, ...rest }) => rest),
    winner,
    theta: fits[winner].theta,
    loss: fits[winner].loss,
    converged: fits[winner].converged,
  };
}
