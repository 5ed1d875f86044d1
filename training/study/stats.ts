/**
 * Small, exact statistics for the sample-efficiency study: descriptive
 * statistics, percentile-bootstrap confidence intervals, log-log slopes of
 * learning curves and "samples / steps to reach a target".
 *
 * All resampling draws from the seeded {@linkcode Rng} of `training/rng.ts`
 * (never `Math.random`), so every interval is reproducible from its seed. When
 * no seed is given, {@linkcode DEFAULT_SEED} is used: the same call always
 * gives the same interval.
 *
 * Definitions:
 *
 * - **mean**: Σxᵢ / n, summed with Neumaier (compensated) summation.
 * - **variance**: Σ(xᵢ − x̄)² / (n − ddof), two-pass; `ddof = 1` (the default)
 *   is the unbiased sample variance, `ddof = 0` the population variance. It
 *   needs n > ddof. **std** is its square root.
 * - **quantile**: linear interpolation between order statistics, Hyndman & Fan
 *   type 7 (the default of R's `quantile` and NumPy's `quantile`): with the
 *   sorted values x₍₀₎ ≤ … ≤ x₍ₙ₋₁₎ and h = (n − 1)·q, the q-quantile is
 *   x₍⌊h⌋₎ + (h − ⌊h⌋)·(x₍⌊h⌋₊₁₎ − x₍⌊h⌋₎). **median** is the 0.5-quantile.
 * - **bootstrap interval**: the simple *percentile* bootstrap. Draw `resamples`
 *   samples of size n with replacement, compute the statistic on each, and
 *   report the type-7 quantiles (1 − level)/2 and (1 + level)/2 of those
 *   values; `estimate` is the statistic on the original data. It is not
 *   bias-corrected (no BCa) and slightly under-covers at small n.
 * - **paired interval**: the bootstrap interval of the mean of dᵢ = aᵢ − bᵢ;
 *   resampling the differences is resampling the pairs (aᵢ, bᵢ) together.
 * - **log-log slope**: ordinary least squares of ln y on ln x. The natural log
 *   is used; the slope does not depend on the base (both axes scale by the same
 *   factor), the intercept is ln c for y = c·x^slope. r² = 1 − SSres/SStot
 *   (= 1 when all ln y are equal, a perfect horizontal fit).
 * - **cluster bootstrap** (in {@linkcode slopeCI}): when points carry a `group`
 *   (e.g. the seed), whole groups are resampled with replacement, because one
 *   seed's runs across n share initialisation and data order and are
 *   correlated; resampling single points would understate the uncertainty.
 * - **samples / steps to target**: the smallest n (or step) whose own metric
 *   reaches the target (≥ if higher is better, ≤ otherwise); later points are
 *   not required to stay there and nothing is interpolated.
 *
 * @example
 * ```ts
 * import { meanCI } from "./stats.ts";
 * const ci = meanCI([1, 2, 3, 4, 5], { resamples: 1000, seed: 1 });
 * console.log(ci.estimate, ci.low, ci.high); // 3, then an interval around it
 * ```
 *
 * @module
 */

import { Rng } from "../rng.ts";

/** The seed used when a bootstrap call is given none. */
export const DEFAULT_SEED = 0;

/** Default number of bootstrap resamples. */
export const DEFAULT_RESAMPLES = 10000;

/** Default confidence level of the intervals. */
export const DEFAULT_LEVEL = 0.95;

/** A point estimate with a confidence interval. */
export interface Interval {
  /** The statistic on the original data. */
  estimate: number;
  /** Lower bound: the (1 − level)/2 quantile of the bootstrap distribution. */
  low: number;
  /** Upper bound: the (1 + level)/2 quantile of the bootstrap distribution. */
  high: number;
  /** Confidence level, e.g. 0.95. */
  level: number;
}

/** Options of the bootstrap intervals. */
export interface BootstrapOptions {
  /** Number of bootstrap resamples (positive integer); default {@linkcode DEFAULT_RESAMPLES}. */
  resamples?: number;
  /** Confidence level in (0, 1); default {@linkcode DEFAULT_LEVEL}. */
  level?: number;
  /** Seed of the resampling {@linkcode Rng}; default {@linkcode DEFAULT_SEED}. */
  seed?: number;
}

/** Result of {@linkcode logLogSlope}: y ≈ e^intercept · x^slope. */
export interface SlopeFit {
  /** Slope of ln y against ln x (the power-law exponent). */
  slope: number;
  /** Intercept of the fit in natural-log units: ln c for y = c·x^slope. */
  intercept: number;
  /** Coefficient of determination of the log-log fit, 1 − SSres/SStot. */
  r2: number;
  /** Number of points fitted. */
  n: number;
}

/** One point of a learning curve for {@linkcode slopeCI}. */
export interface CurvePoint {
  /** Independent variable, e.g. training-set size n (must be > 0). */
  x: number;
  /** Dependent variable, e.g. test loss or error (must be > 0). */
  y: number;
  /** Resampling cluster, e.g. the seed; either every point has one or none does. */
  group?: string | number;
}

/** Result of {@linkcode slopeCI}. */
export interface SlopeInterval extends Interval {
  /** The log-log fit on all points (its slope is `estimate`). */
  fit: SlopeFit;
  /** Whether whole groups (`"group"`) or single points (`"point"`) were resampled. */
  unit: "group" | "point";
  /** Resamples skipped because they held fewer than 2 distinct x. */
  skipped: number;
  /** A warning when the interval is unreliable (over 10% skipped, a single group, …). */
  note?: string;
}

/** Summary of a sample: mean, spread, size and a bootstrap interval of the mean. */
export interface Summary {
  /** Sample mean. */
  mean: number;
  /** Sample standard deviation (ddof = 1); NaN for a single value. */
  std: number;
  /** Sample size. */
  n: number;
  /** Percentile-bootstrap interval of the mean. */
  ci: Interval;
}

// ---------------------------------------------------------------------------
// Validation helpers

function checkValues(xs: readonly number[], name = "xs"): void {
  if (xs.length === 0) throw new RangeError(`${name} is empty`);
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(xs[i])) {
      throw new RangeError(`${name}[${i}] must be a finite number, got ${xs[i]}`);
    }
  }
}

interface ResolvedOptions {
  resamples: number;
  level: number;
  seed: number;
}

function resolveOptions(options: BootstrapOptions | undefined): ResolvedOptions {
  const resamples = options?.resamples ?? DEFAULT_RESAMPLES;
  const level = options?.level ?? DEFAULT_LEVEL;
  const seed = options?.seed ?? DEFAULT_SEED;
  if (!Number.isInteger(resamples) || resamples < 1) {
    throw new RangeError(`resamples must be a positive integer, got ${resamples}`);
  }
  if (!(level > 0 && level < 1)) {
    throw new RangeError(`level must be in (0, 1), got ${level}`);
  }
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
  return { resamples, level, seed };
}

/** Neumaier-compensated sum. */
function sum(xs: ArrayLike<number>): number {
  let s = 0;
  let c = 0;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    const t = s + x;
    c += Math.abs(s) >= Math.abs(x) ? (s - t) + x : (x - t) + s;
    s = t;
  }
  return s + c;
}

/** Type-7 quantile of already sorted, non-empty values. */
function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const frac = h - lo;
  if (frac === 0) return sorted[lo];
  return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

/** Percentile interval from bootstrap replicates (sorted in place). */
function percentile(replicates: Float64Array, level: number): { low: number; high: number } {
  replicates.sort();
  return {
    low: quantileSorted(replicates, (1 - level) / 2),
    high: quantileSorted(replicates, (1 + level) / 2),
  };
}

// ---------------------------------------------------------------------------
// Descriptive statistics

/**
 * Arithmetic mean Σxᵢ / n (compensated summation).
 *
 * @throws {RangeError} if `xs` is empty or holds a non-finite value.
 */
export function mean(xs: readonly number[]): number {
  checkValues(xs);
  return sum(xs) / xs.length;
}

/**
 * Variance Σ(xᵢ − x̄)² / (n − ddof), two-pass. `ddof = 1` (default) is the
 * unbiased sample variance, `ddof = 0` the population variance.
 *
 * @throws {RangeError} if `xs` is empty or non-finite, `ddof` is not a
 * non-negative integer, or n ≤ ddof.
 */
export function variance(xs: readonly number[], ddof = 1): number {
  checkValues(xs);
  if (!Number.isInteger(ddof) || ddof < 0) {
    throw new RangeError(`ddof must be a non-negative integer, got ${ddof}`);
  }
  if (xs.length <= ddof) {
    throw new RangeError(
      `variance with ddof = ${ddof} needs more than ${ddof} values, got ${xs.length}`,
    );
  }
  const m = sum(xs) / xs.length;
  return sum(xs.map((x) => (x - m) * (x - m))) / (xs.length - ddof);
}

/**
 * Standard deviation: the square root of {@linkcode variance} with the same `ddof`.
 *
 * @throws {RangeError} as {@linkcode variance}.
 */
export function std(xs: readonly number[], ddof = 1): number {
  return Math.sqrt(variance(xs, ddof));
}

/**
 * The q-quantile by linear interpolation between order statistics (Hyndman &
 * Fan type 7, the default of R and NumPy): h = (n − 1)·q, then
 * x₍⌊h⌋₎ + (h − ⌊h⌋)·(x₍⌊h⌋₊₁₎ − x₍⌊h⌋₎). q = 0 is the minimum, q = 1 the maximum.
 *
 * @throws {RangeError} if `xs` is empty or non-finite, or q is outside [0, 1].
 */
export function quantile(xs: readonly number[], q: number): number {
  checkValues(xs);
  if (!(q >= 0 && q <= 1)) throw new RangeError(`q must be in [0, 1], got ${q}`);
  return quantileSorted(Float64Array.from(xs).sort(), q);
}

/**
 * The median: the type-7 0.5-quantile (the mean of the two middle values when
 * n is even).
 *
 * @throws {RangeError} if `xs` is empty or non-finite.
 */
export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

// ---------------------------------------------------------------------------
// Bootstrap intervals

/**
 * Percentile-bootstrap confidence interval of `statistic` (the simple
 * percentile method, not BCa): `resamples` samples of size n drawn with
 * replacement by a seeded {@linkcode Rng}; the bounds are the type-7 quantiles
 * (1 − level)/2 and (1 + level)/2 of the statistic over them; `estimate` is
 * the statistic on `xs`. With one value, every resample equals the data, so
 * the interval collapses to `statistic([x])` without resampling.
 *
 * @param xs The data (finite numbers).
 * @param statistic Maps a sample (a fresh array it may modify) to a finite number.
 * @param options Resamples (default 10000), level (0.95) and seed ({@linkcode DEFAULT_SEED}).
 * @throws {RangeError} if `xs` is empty or non-finite, an option is invalid, or
 * the statistic returns a non-finite value.
 */
export function bootstrapCI(
  xs: readonly number[],
  statistic: (sample: number[]) => number,
  options?: BootstrapOptions,
): Interval {
  checkValues(xs);
  const { resamples, level, seed } = resolveOptions(options);
  const estimate = statistic([...xs]);
  if (!Number.isFinite(estimate)) {
    throw new RangeError(`statistic returned ${estimate} on the original data`);
  }
  const n = xs.length;
  if (n === 1) return { estimate, low: estimate, high: estimate, level };
  const rng = new Rng(seed);
  const replicates = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    const sample = new Array<number>(n);
    for (let i = 0; i < n; i++) sample[i] = xs[rng.int(n)];
    const value = statistic(sample);
    if (!Number.isFinite(value)) {
      throw new RangeError(`statistic returned ${value} on bootstrap resample ${r}`);
    }
    replicates[r] = value;
  }
  return { estimate, ...percentile(replicates, level), level };
}

/**
 * Percentile-bootstrap interval of the mean: {@linkcode bootstrapCI} with {@linkcode mean}.
 *
 * @throws {RangeError} as {@linkcode bootstrapCI}.
 */
export function meanCI(xs: readonly number[], options?: BootstrapOptions): Interval {
  return bootstrapCI(xs, mean, options);
}

/**
 * Element-wise differences aᵢ − bᵢ of paired observations (e.g. sigmoid vs
 * softmax at the same n and seed).
 *
 * @throws {RangeError} if the lengths differ or a value is not finite.
 */
export function pairedDifferences(a: readonly number[], b: readonly number[]): number[] {
  if (a.length !== b.length) {
    throw new RangeError(`paired samples need equal lengths, got ${a.length} and ${b.length}`);
  }
  const out = new Array<number>(a.length);
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) {
      throw new RangeError(`a[${i}] must be a finite number, got ${a[i]}`);
    }
    if (!Number.isFinite(b[i])) {
      throw new RangeError(`b[${i}] must be a finite number, got ${b[i]}`);
    }
    out[i] = a[i] - b[i];
  }
  return out;
}

/**
 * Percentile-bootstrap interval of the mean paired difference mean(aᵢ − bᵢ),
 * resampling whole pairs (equivalently, the differences).
 *
 * @throws {RangeError} if the lengths differ, are zero, or a value is not finite.
 */
export function pairedCI(
  a: readonly number[],
  b: readonly number[],
  options?: BootstrapOptions,
): Interval {
  const d = pairedDifferences(a, b);
  if (d.length === 0) throw new RangeError("paired samples are empty");
  return meanCI(d, options);
}

/**
 * Mean, standard deviation (ddof = 1; NaN for a single value), size and the
 * percentile-bootstrap interval of the mean.
 *
 * @throws {RangeError} as {@linkcode meanCI}.
 */
export function summarize(xs: readonly number[], options?: BootstrapOptions): Summary {
  const ci = meanCI(xs, options);
  return { mean: ci.estimate, std: xs.length > 1 ? std(xs) : NaN, n: xs.length, ci };
}

// ---------------------------------------------------------------------------
// Log-log slopes

/** OLS of ly on lx over the indices `idx` (or all); needs ≥ 2 distinct lx. */
function olsLog(lx: Float64Array, ly: Float64Array, idx?: Int32Array): SlopeFit {
  const n = idx ? idx.length : lx.length;
  const at = idx ? (i: number) => idx[i] : (i: number) => i;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < n; i++) {
    sx += lx[at(i)];
    sy += ly[at(i)];
  }
  const mx = sx / n;
  const my = sy / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = lx[at(i)] - mx;
    const dy = ly[at(i)] - my;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  let ssRes = 0;
  for (let i = 0; i < n; i++) {
    const e = ly[at(i)] - (intercept + slope * lx[at(i)]);
    ssRes += e * e;
  }
  let constantY = true;
  for (let i = 1; i < n && constantY; i++) constantY = ly[at(i)] === ly[at(0)];
  const r2 = constantY ? 1 : Math.max(0, 1 - ssRes / syy);
  return { slope, intercept, r2, n };
}

function logs(x: readonly number[], y: readonly number[], xName: string, yName: string) {
  if (x.length !== y.length) {
    throw new RangeError(`x and y need equal lengths, got ${x.length} and ${y.length}`);
  }
  const lx = new Float64Array(x.length);
  const ly = new Float64Array(y.length);
  for (let i = 0; i < x.length; i++) {
    if (!(x[i] > 0 && Number.isFinite(x[i]))) {
      throw new RangeError(
        `${xName.replace("#", String(i))} must be positive and finite for a log-log fit, got ${
          x[i]
        }`,
      );
    }
    if (!(y[i] > 0 && Number.isFinite(y[i]))) {
      throw new RangeError(
        `${yName.replace("#", String(i))} must be positive and finite for a log-log fit, got ${
          y[i]
        }`,
      );
    }
    lx[i] = Math.log(x[i]);
    ly[i] = Math.log(y[i]);
  }
  return { lx, ly };
}

function distinctCount(x: ArrayLike<number>, idx?: Int32Array, stopAt = Infinity): number {
  const seen = new Set<number>();
  const n = idx ? idx.length : x.length;
  for (let i = 0; i < n && seen.size < stopAt; i++) seen.add(x[idx ? idx[i] : i]);
  return seen.size;
}

/**
 * Ordinary least squares of ln y on ln x (natural log): y ≈ e^intercept · x^slope.
 * The slope is the power-law exponent and does not depend on the log base;
 * the intercept is ln c. r² = 1 − SSres/SStot of the log-log fit (1 when all y
 * are equal).
 *
 * @throws {RangeError} if the lengths differ, a value is not positive and
 * finite (the message names the index), or there are fewer than 2 distinct x.
 */
export function logLogSlope(x: readonly number[], y: readonly number[]): SlopeFit {
  const { lx, ly } = logs(x, y, "x[#]", "y[#]");
  const distinct = distinctCount(x, undefined, 2);
  if (distinct < 2) {
    throw new RangeError(`a log-log fit needs at least 2 distinct x, got ${distinct}`);
  }
  return olsLog(lx, ly);
}

/**
 * Percentile-bootstrap interval of the log-log slope of `points` (see
 * {@linkcode logLogSlope}); `estimate` is the slope on all points and `fit`
 * the full fit.
 *
 * Resampling unit: if the points carry a `group` (e.g. the seed), whole groups
 * are resampled with replacement (a cluster bootstrap: a seed's whole curve at
 * once, because one seed's runs across n are correlated); otherwise single
 * points are. Resamples with fewer than 2 distinct x cannot be fitted: they
 * are skipped and counted in `skipped`; the interval comes from the rest, and
 * `note` says so when over 10% were skipped (bounds are NaN if all were).
 * `note` also warns when there is a single group (the interval then has zero
 * width: it carries no between-seed uncertainty).
 *
 * @throws {RangeError} as {@linkcode logLogSlope} (index into `points`), if
 * only some points have a group, or an option is invalid.
 */
export function slopeCI(
  points: readonly CurvePoint[],
  options?: BootstrapOptions,
): SlopeInterval {
  const { resamples, level, seed } = resolveOptions(options);
  const xs = points.map((p) => p.x);
  const { lx, ly } = logs(xs, points.map((p) => p.y), "points[#].x", "points[#].y");
  const distinct = distinctCount(xs, undefined, 2);
  if (distinct < 2) {
    throw new RangeError(`a log-log fit needs at least 2 distinct x, got ${distinct}`);
  }
  const fit = olsLog(lx, ly);

  const grouped = points.filter((p) => p.group !== undefined).length;
  if (grouped !== 0 && grouped !== points.length) {
    throw new RangeError(
      `either every point has a group or none does; ${grouped} of ${points.length} have one`,
    );
  }
  const unit = grouped > 0 ? "group" : "point";
  // Clusters of point indices: one per group, or one per point.
  let clusters: number[][];
  if (unit === "group") {
    const byGroup = new Map<string | number, number[]>();
    points.forEach((p, i) => {
      const members = byGroup.get(p.group!);
      if (members) members.push(i);
      else byGroup.set(p.group!, [i]);
    });
    clusters = [...byGroup.values()];
  } else {
    clusters = points.map((_, i) => [i]);
  }

  const rng = new Rng(seed);
  const replicates: number[] = [];
  let skipped = 0;
  const k = clusters.length;
  for (let r = 0; r < resamples; r++) {
    const picked: number[] = [];
    for (let c = 0; c < k; c++) for (const i of clusters[rng.int(k)]) picked.push(i);
    const idx = Int32Array.from(picked);
    if (distinctCount(xs, idx, 2) < 2) {
      skipped++;
      continue;
    }
    replicates.push(olsLog(lx, ly, idx).slope);
  }

  const notes: string[] = [];
  if (unit === "group" && k === 1) {
    notes.push("only one group: the interval has no between-group variation");
  }
  if (skipped > 0.1 * resamples) {
    notes.push(
      `${skipped} of ${resamples} resamples (${
        (100 * skipped / resamples).toFixed(1)
      }%) had fewer than 2 distinct x and were skipped`,
    );
  }
  const bounds = replicates.length > 0
    ? percentile(Float64Array.from(replicates), level)
    : { low: NaN, high: NaN };
  const result: SlopeInterval = { estimate: fit.slope, ...bounds, level, fit, unit, skipped };
  if (notes.length > 0) result.note = notes.join("; ");
  return result;
}

// ---------------------------------------------------------------------------
// Samples / steps to target

function firstReaching(
  xs: readonly number[],
  metrics: readonly number[],
  target: number,
  higherIsBetter: boolean,
  name: string,
): number | undefined {
  if (!Number.isFinite(target)) throw new RangeError(`target must be finite, got ${target}`);
  const seen = new Set<number>();
  let best: number | undefined;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    if (!Number.isFinite(x)) throw new RangeError(`curve[${i}].${name} must be finite, got ${x}`);
    if (seen.has(x)) {
      throw new RangeError(
        `curve has ${name} = ${x} twice (at index ${i}); aggregate repeated evaluations first`,
      );
    }
    seen.add(x);
    const m = metrics[i];
    const reached = higherIsBetter ? m >= target : m <= target; // NaN never reaches
    if (reached && (best === undefined || x < best)) best = x;
  }
  return best;
}

/**
 * The smallest training-set size n whose metric reaches `target` (metric ≥
 * target if `higherIsBetter`, else ≤). The curve may be in any order; each n
 * is judged by its own metric (later n need not stay at the target; no
 * interpolation). Returns undefined if no n reaches it (or the curve is
 * empty). A NaN metric never reaches the target.
 *
 * @throws {RangeError} if `target` or an n is not finite, or an n appears twice
 * (average seeds first, or call once per seed).
 */
export function samplesToTarget(
  curve: readonly { n: number; metric: number }[],
  target: number,
  higherIsBetter: boolean,
): number | undefined {
  return firstReaching(
    curve.map((p) => p.n),
    curve.map((p) => p.metric),
    target,
    higherIsBetter,
    "n",
  );
}

/**
 * The first (smallest) evaluation step whose metric reaches `target` (≥ if
 * `higherIsBetter`, else ≤); evaluations may be in any order. Returns
 * undefined if none reaches it (or there are none).
 *
 * @throws {RangeError} if `target` or a step is not finite, or a step appears twice.
 */
export function stepsToTarget(
  evals: readonly { step: number; metric: number }[],
  target: number,
  higherIsBetter: boolean,
): number | undefined {
  return firstReaching(
    evals.map((p) => p.step),
    evals.map((p) => p.metric),
    target,
    higherIsBetter,
    "step",
  );
}
