/** Tests of training/study/stats.ts against hand-computed and simulated known answers. */

import assert from "node:assert/strict";
import { Rng } from "../training/rng.ts";
import {
  bcaCI,
  bootstrapCI,
  censoredSamplesToTarget,
  type CurvePoint,
  formatSamples,
  holmAdjust,
  localSlopes,
  logGamma,
  logLogSlope,
  mean,
  meanCI,
  median,
  minimalDetectableDifference,
  normalCdf,
  normalQuantile,
  pairedCI,
  pairedDifferences,
  quantile,
  regularizedBeta,
  samplesToTarget,
  slopeCI,
  slopeDifferenceCI,
  std,
  stepsToTarget,
  studentTCdf,
  studentTQuantile,
  summarize,
  tMeanCI,
  tTestPValue,
  variance,
} from "../training/study/stats.ts";

function assertNear(actual: number, expected: number, tol: number, what = ""): void {
  assert.ok(
    Math.abs(actual - expected) <= tol,
    `${what} expected ${expected} ± ${tol}, got ${actual}`,
  );
}

function normals(rng: Rng, n: number, mu: number, sd: number): number[] {
  return Array.from({ length: n }, () => mu + sd * rng.normal());
}

Deno.test("mean, variance, std of small arrays (by hand)", () => {
  assert.equal(mean([1, 2, 3, 4]), 2.5);
  assert.equal(mean([5]), 5);
  // [2,4,4,4,5,5,7,9]: mean 5, Σ(x−5)² = 32.
  const xs = [2, 4, 4, 4, 5, 5, 7, 9];
  assert.equal(mean(xs), 5);
  assert.equal(variance(xs, 0), 4);
  assert.equal(std(xs, 0), 2);
  assertNear(variance(xs), 32 / 7, 1e-15);
  assertNear(std(xs), Math.sqrt(32 / 7), 1e-15);
  assert.equal(variance([1, 2, 3, 4]), 5 / 3);
  assert.equal(variance([7], 0), 0);
  // Compensated summation: naive left-to-right summation gives 0 here.
  assert.equal(mean([1e16, 1, -1e16, 1]), 0.5);
});

Deno.test("quantile type 7 and median (by hand; matches R/NumPy)", () => {
  const xs = [1, 2, 3, 4];
  assert.equal(quantile(xs, 0), 1);
  assert.equal(quantile(xs, 1), 4);
  assert.equal(quantile(xs, 0.25), 1.75); // h = 0.75
  assert.equal(quantile(xs, 0.5), 2.5);
  assert.equal(quantile(xs, 0.75), 3.25);
  // Unsorted input; NumPy: np.quantile([10, 0, 5, 20, 15], 0.1) == 2.0
  assert.equal(quantile([10, 0, 5, 20, 15], 0.1), 2);
  assert.equal(quantile([3], 0.3), 3);
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  // Input is not mutated.
  const ys = [3, 1, 2];
  median(ys);
  assert.deepEqual(ys, [3, 1, 2]);
});

Deno.test("descriptive statistics: RangeErrors", () => {
  assert.throws(() => mean([]), RangeError);
  assert.throws(() => mean([1, NaN]), { name: "RangeError", message: /xs\[1\]/ });
  assert.throws(() => variance([1]), RangeError); // n ≤ ddof
  assert.throws(() => variance([1, 2], 2), RangeError);
  assert.throws(() => variance([1, 2], -1), RangeError);
  assert.throws(() => variance([1, 2], 0.5), RangeError);
  assert.throws(() => std([]), RangeError);
  assert.throws(() => median([]), RangeError);
  assert.throws(() => quantile([1, 2], 1.5), RangeError);
  assert.throws(() => quantile([1, 2], -0.1), RangeError);
  assert.throws(() => quantile([1, 2], NaN), RangeError);
  assert.throws(() => quantile([1, Infinity], 0.5), RangeError);
});

Deno.test("logLogSlope recovers y = 3·x^−0.5 exactly", () => {
  const x = [1, 2, 4, 8, 16, 100, 1000];
  const y = x.map((v) => 3 * v ** -0.5);
  const fit = logLogSlope(x, y);
  assertNear(fit.slope, -0.5, 1e-12, "slope");
  assertNear(fit.intercept, Math.log(3), 1e-12, "intercept");
  assertNear(fit.r2, 1, 1e-12, "r2");
  assert.equal(fit.n, 7);
  // Constant y: slope 0, r2 = 1.
  const flat = logLogSlope([1, 2, 3], [5, 5, 5]);
  assertNear(flat.slope, 0, 1e-15);
  assert.equal(flat.r2, 1);
});

Deno.test("logLogSlope with multiplicative noise is close", () => {
  const rng = new Rng(11);
  const x: number[] = [];
  const y: number[] = [];
  for (let n = 64; n <= 65536; n *= 2) {
    for (let rep = 0; rep < 4; rep++) {
      x.push(n);
      y.push(2 * n ** -0.7 * Math.exp(0.05 * rng.normal()));
    }
  }
  const fit = logLogSlope(x, y);
  assertNear(fit.slope, -0.7, 0.02, "slope");
  assertNear(fit.intercept, Math.log(2), 0.15, "intercept");
  assert.ok(fit.r2 > 0.99 && fit.r2 < 1, `r2 ${fit.r2}`);
});

Deno.test("logLogSlope: RangeErrors name the index", () => {
  assert.throws(() => logLogSlope([1, 2, 0], [1, 2, 3]), {
    name: "RangeError",
    message: /x\[2\]/,
  });
  assert.throws(() => logLogSlope([1, 2, 3], [1, -2, 3]), {
    name: "RangeError",
    message: /y\[1\]/,
  });
  assert.throws(() => logLogSlope([1, NaN], [1, 1]), { name: "RangeError", message: /x\[1\]/ });
  assert.throws(() => logLogSlope([2, 2, 2], [1, 2, 3]), {
    name: "RangeError",
    message: /2 distinct x/,
  });
  assert.throws(() => logLogSlope([2], [1]), RangeError);
  assert.throws(() => logLogSlope([], []), RangeError);
  assert.throws(() => logLogSlope([1, 2], [1]), RangeError);
});

Deno.test("bootstrapCI of a large normal sample: contains the mean, width ≈ 2·1.96·σ/√n", () => {
  const xs = normals(new Rng(2024), 400, 2, 1);
  const ci = bootstrapCI(xs, mean, { seed: 5 });
  assert.equal(ci.level, 0.95);
  assert.equal(ci.estimate, mean(xs));
  assert.ok(ci.low < 2 && 2 < ci.high, `[${ci.low}, ${ci.high}]`);
  assert.ok(ci.low < ci.estimate && ci.estimate < ci.high);
  const expected = 2 * 1.96 / Math.sqrt(400);
  const width = ci.high - ci.low;
  assert.ok(Math.abs(width / expected - 1) < 0.2, `width ${width} vs ${expected}`);
  // A lower level gives a narrower interval from the same resamples.
  const ci80 = bootstrapCI(xs, mean, { seed: 5, level: 0.8 });
  assert.ok(ci80.low > ci.low && ci80.high < ci.high);
  // median works as a statistic too.
  const cim = bootstrapCI(xs, median, { resamples: 2000, seed: 1 });
  assert.ok(cim.low < 2 && 2 < cim.high);
});

Deno.test("bootstrap determinism: same seed → identical, different seed → different", () => {
  const xs = normals(new Rng(7), 50, 0, 1);
  const a = meanCI(xs, { resamples: 2000, seed: 42 });
  const b = meanCI(xs, { resamples: 2000, seed: 42 });
  const c = meanCI(xs, { resamples: 2000, seed: 43 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.equal(a.estimate, c.estimate);
  // No seed: the default seed, still reproducible.
  assert.deepEqual(meanCI(xs, { resamples: 500 }), meanCI(xs, { resamples: 500 }));
});

Deno.test("coverage: 95% mean CI covers the true mean in ≥ 88% of 200 data sets (n = 30)", () => {
  const data = new Rng(99);
  let covered = 0;
  const trials = 200;
  for (let t = 0; t < trials; t++) {
    const xs = normals(data, 30, 10, 3);
    const ci = meanCI(xs, { resamples: 1000, seed: t });
    if (ci.low <= 10 && 10 <= ci.high) covered++;
  }
  assert.ok(covered / trials >= 0.88, `coverage ${covered}/${trials}`);
  assert.ok(covered / trials <= 0.995, `coverage ${covered}/${trials} suspiciously high`);
});

Deno.test("bootstrapCI degenerate inputs and RangeErrors", () => {
  assert.deepEqual(meanCI([3.5]), { estimate: 3.5, low: 3.5, high: 3.5, level: 0.95 });
  const same = meanCI([2, 2, 2, 2], { resamples: 100 });
  assert.deepEqual(same, { estimate: 2, low: 2, high: 2, level: 0.95 });
  assert.throws(() => meanCI([]), RangeError);
  assert.throws(() => bootstrapCI([], mean), RangeError);
  assert.throws(() => meanCI([1, NaN]), RangeError);
  assert.throws(() => meanCI([1, 2], { resamples: 0 }), RangeError);
  assert.throws(() => meanCI([1, 2], { resamples: 1.5 }), RangeError);
  assert.throws(() => meanCI([1, 2], { level: 1 }), RangeError);
  assert.throws(() => meanCI([1, 2], { level: 0 }), RangeError);
  assert.throws(() => meanCI([1, 2], { seed: NaN }), RangeError);
  // A statistic that returns a non-finite value is an error, not a silent NaN bound.
  assert.throws(() => bootstrapCI([1, 2, 3], () => NaN), RangeError);
});

Deno.test("paired differences and paired CI", () => {
  assert.deepEqual(pairedDifferences([3, 5, 7], [1, 1, 2]), [2, 4, 5]);
  assert.deepEqual(pairedDifferences([], []), []);
  const rng = new Rng(3);
  const a = normals(rng, 40, 0, 5).map(Math.round);
  const ci = pairedCI(a.map((v) => v + 1), a, { resamples: 1000, seed: 1 });
  assert.deepEqual(ci, { estimate: 1, low: 1, high: 1, level: 0.95 });
  // Non-integer values: exact up to rounding of (a + 1) − a.
  const f = normals(rng, 40, 0, 5);
  const cif = pairedCI(f.map((v) => v + 1), f, { resamples: 1000 });
  for (const v of [cif.estimate, cif.low, cif.high]) assertNear(v, 1, 1e-14);
  // Pairing removes the shared per-seed variation: far narrower than unpaired.
  const base = normals(rng, 30, 0, 10);
  const treated = base.map((v) => v + 0.5 + 0.1 * rng.normal());
  const paired = pairedCI(treated, base, { resamples: 2000 });
  const unpairedWidth = meanCI(treated, { resamples: 2000 }).high -
    meanCI(treated, { resamples: 2000 }).low;
  assert.ok(paired.low > 0.4 && paired.high < 0.6, `[${paired.low}, ${paired.high}]`);
  assert.ok(paired.high - paired.low < unpairedWidth / 10);
  assert.throws(() => pairedDifferences([1, 2], [1]), RangeError);
  assert.throws(() => pairedCI([1, 2], [1]), RangeError);
  assert.throws(() => pairedCI([], []), RangeError);
  assert.throws(() => pairedDifferences([1, NaN], [1, 2]), {
    name: "RangeError",
    message: /a\[1\]/,
  });
});

Deno.test("summarize", () => {
  const s = summarize([1, 2, 3, 4], { resamples: 500 });
  assert.equal(s.mean, 2.5);
  assert.equal(s.n, 4);
  assertNear(s.std, Math.sqrt(5 / 3), 1e-15);
  assert.ok(s.ci.low <= 2.5 && 2.5 <= s.ci.high && s.ci.low >= 1 && s.ci.high <= 4);
  const one = summarize([7]);
  assert.equal(one.mean, 7);
  assert.ok(Number.isNaN(one.std));
  assert.deepEqual(one.ci, { estimate: 7, low: 7, high: 7, level: 0.95 });
  assert.throws(() => summarize([]), RangeError);
});

const SIZES = [100, 200, 400, 800, 1600, 3200, 6400];

/** y = c_g·n^slope_g·exp(noise·z) for each group g. */
function curves(
  rng: Rng,
  groups: { c: number; slope: number }[],
  noise: number,
): CurvePoint[] {
  const points: CurvePoint[] = [];
  groups.forEach(({ c, slope }, g) => {
    for (const n of SIZES) {
      points.push({ x: n, y: c * n ** slope * Math.exp(noise * rng.normal()), group: g });
    }
  });
  return points;
}

Deno.test("slopeCI on y = c·n^−1 with multiplicative noise across 5 groups covers −1", () => {
  const rng = new Rng(17);
  const points = curves(rng, [1, 2, 3, 4, 5].map((c) => ({ c, slope: -1 })), 0.1);
  const ci = slopeCI(points, { resamples: 2000, seed: 1 });
  assert.equal(ci.unit, "group");
  assert.equal(ci.skipped, 0);
  assert.equal(ci.note, undefined);
  assert.equal(ci.fit.n, 35);
  assert.equal(ci.estimate, ci.fit.slope);
  assert.ok(ci.low < -1 && -1 < ci.high, `[${ci.low}, ${ci.high}]`);
  assert.ok(ci.high - ci.low < 0.2, `width ${ci.high - ci.low}`);
  assert.deepEqual(slopeCI(points, { resamples: 2000, seed: 1 }), ci);
});

Deno.test("slopeCI resamples whole groups (cluster bootstrap)", () => {
  // Exact curves, same slope, different c, every group at every n: any resample of whole
  // groups is a balanced design whose pooled slope is exactly −1, so the cluster interval
  // collapses; resampling points unbalances the design, and the c differences leak in.
  const exact = curves(new Rng(0), [1, 3, 9, 27].map((c) => ({ c, slope: -1 })), 0);
  const cluster = slopeCI(exact, { resamples: 1000 });
  assertNear(cluster.low, -1, 1e-9, "cluster low");
  assertNear(cluster.high, -1, 1e-9, "cluster high");
  const ungrouped = exact.map(({ x, y }) => ({ x, y }));
  const pointwise = slopeCI(ungrouped, { resamples: 1000 });
  assert.equal(pointwise.unit, "point");
  assert.ok(pointwise.high - pointwise.low > 0.05, `point width ${pointwise.high - pointwise.low}`);

  // One seed whose whole curve is wildly different (much flatter, pivoting at the middle n = 800)
  // widens the cluster interval well beyond the point-resampling one, which treats its 7 points
  // as independent: their residuals all push the slope the same way, so they count once, not 7×.
  const rng = new Rng(5);
  const wild = curves(rng, [
    ...[1, 2, 3, 4, 5].map(() => ({ c: 0.1 * 800, slope: -1 })),
    { c: 0.1 * 800 ** 0.2, slope: -0.2 },
  ], 0.05);
  const byGroup = slopeCI(wild, { resamples: 2000, seed: 3 });
  const byPoint = slopeCI(wild.map(({ x, y }) => ({ x, y })), { resamples: 2000, seed: 3 });
  assert.equal(byGroup.estimate, byPoint.estimate);
  const wGroup = byGroup.high - byGroup.low;
  const wPoint = byPoint.high - byPoint.low;
  assert.ok(wGroup > 1.5 * wPoint, `group width ${wGroup} vs point width ${wPoint}`);
});

Deno.test("slopeCI: skipped resamples, single group, RangeErrors", () => {
  // 3 points, 2 distinct x: a resample has one x with probability (2/3)³ + (1/3)³ = 1/3.
  const few = slopeCI([{ x: 1, y: 1 }, { x: 1, y: 2 }, { x: 2, y: 1 }], { resamples: 3000 });
  assertNear(few.skipped / 3000, 1 / 3, 0.03, "skipped fraction");
  assert.match(few.note ?? "", /fewer than 2 distinct x and were skipped/);
  assert.ok(Number.isFinite(few.low) && Number.isFinite(few.high));
  // Every resample has ≥ 2 distinct x: nothing skipped, no note.
  const many = slopeCI(SIZES.map((x) => ({ x, y: 1 / x })), { resamples: 500 });
  assert.ok(many.skipped < 5 && many.note === undefined);
  // One group: the interval collapses, and the note says why.
  const one = slopeCI(SIZES.map((x) => ({ x, y: 2 / x, group: "s0" })), { resamples: 100 });
  assertNear(one.low, -1, 1e-12);
  assertNear(one.high, -1, 1e-12);
  assert.match(one.note ?? "", /only one group/);
  // Groups that each hold a single x: every resample of 2 groups has p = 1/2 of one x.
  const split = slopeCI([
    { x: 1, y: 1, group: "a" },
    { x: 2, y: 0.5, group: "b" },
  ], { resamples: 1000 });
  assert.ok(split.skipped > 100 && split.note !== undefined);

  assert.throws(() => slopeCI([{ x: 1, y: 1 }, { x: 0, y: 1 }]), {
    name: "RangeError",
    message: /points\[1\]\.x/,
  });
  assert.throws(() => slopeCI([{ x: 1, y: 1 }, { x: 2, y: -1 }]), {
    name: "RangeError",
    message: /points\[1\]\.y/,
  });
  assert.throws(() => slopeCI([{ x: 3, y: 1 }, { x: 3, y: 2 }]), RangeError);
  assert.throws(() => slopeCI([]), RangeError);
  assert.throws(() => slopeCI([{ x: 1, y: 1, group: 0 }, { x: 2, y: 1 }]), {
    name: "RangeError",
    message: /group/,
  });
  assert.throws(() => slopeCI([{ x: 1, y: 1 }, { x: 2, y: 1 }], { level: 2 }), RangeError);
});

Deno.test("samplesToTarget", () => {
  const curve = [
    { n: 800, metric: 0.9 },
    { n: 100, metric: 0.5 },
    { n: 400, metric: 0.85 },
    { n: 200, metric: 0.7 },
  ];
  assert.equal(samplesToTarget(curve, 0.8, true), 400); // any order
  assert.equal(samplesToTarget(curve, 0.85, true), 400); // reaching = equal counts
  assert.equal(samplesToTarget(curve, 0.5, true), 100);
  assert.equal(samplesToTarget(curve, 0.95, true), undefined);
  assert.equal(samplesToTarget([], 0.5, true), undefined);
  // Lower is better (loss).
  const loss = [{ n: 100, metric: 2 }, { n: 400, metric: 0.9 }, { n: 200, metric: 1.2 }];
  assert.equal(samplesToTarget(loss, 1, false), 400);
  assert.equal(samplesToTarget(loss, 1.2, false), 200);
  assert.equal(samplesToTarget(loss, 0.1, false), undefined);
  // Non-monotone: the smallest n that reaches it counts, even if a larger n falls back.
  const bumpy = [{ n: 100, metric: 0.6 }, { n: 200, metric: 0.81 }, { n: 400, metric: 0.79 }];
  assert.equal(samplesToTarget(bumpy, 0.8, true), 200);
  // NaN metrics never reach.
  assert.equal(samplesToTarget([{ n: 10, metric: NaN }, { n: 20, metric: 1 }], 0.5, true), 20);
  assert.throws(() => samplesToTarget([{ n: 1, metric: 1 }, { n: 1, metric: 2 }], 1, true), {
    name: "RangeError",
    message: /twice/,
  });
  assert.throws(() => samplesToTarget([{ n: NaN, metric: 1 }], 1, true), RangeError);
  assert.throws(() => samplesToTarget(curve, NaN, true), RangeError);
});

Deno.test("stepsToTarget", () => {
  const evals = [
    { step: 0, metric: 3 },
    { step: 500, metric: 1.5 },
    { step: 1000, metric: 0.9 },
    { step: 1500, metric: 1.1 },
    { step: 2000, metric: 0.7 },
  ];
  assert.equal(stepsToTarget(evals, 1, false), 1000);
  assert.equal(stepsToTarget(evals, 3, false), 0);
  assert.equal(stepsToTarget(evals, 0.5, false), undefined);
  assert.equal(stepsToTarget([...evals].reverse(), 1, false), 1000);
  assert.equal(stepsToTarget([{ step: 10, metric: 0.2 }, { step: 5, metric: 0.9 }], 0.9, true), 5);
  assert.equal(stepsToTarget([], 0, true), undefined);
  assert.throws(() => stepsToTarget([{ step: 1, metric: 1 }, { step: 1, metric: 1 }], 1, true), {
    name: "RangeError",
    message: /step = 1 twice/,
  });
  assert.throws(() => stepsToTarget(evals, Infinity, true), RangeError);
});

// ---------------------------------------------------------------------------
// Distributions

Deno.test("logGamma and the regularized incomplete beta against closed forms", () => {
  assertNear(logGamma(0.5), 0.5 * Math.log(Math.PI), 1e-14, "lnΓ(1/2)");
  assertNear(logGamma(1), 0, 1e-14, "lnΓ(1)");
  assertNear(logGamma(10), Math.log(362880), 1e-13, "lnΓ(10)");
  assertNear(logGamma(0.1), Math.log(9.513507698668732), 1e-13, "lnΓ(0.1)");
  // I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(1, b) = 1 − (1 − x)^b.
  for (const x of [0.01, 0.3, 0.5, 0.9]) {
    assertNear(regularizedBeta(x, 1, 1), x, 1e-14, `I_${x}(1,1)`);
    assertNear(regularizedBeta(x, 3.5, 1), x ** 3.5, 1e-14, `I_${x}(3.5,1)`);
    assertNear(regularizedBeta(x, 1, 7), 1 - (1 - x) ** 7, 1e-14, `I_${x}(1,7)`);
  }
  // Symmetry I_x(a, b) = 1 − I_{1−x}(b, a).
  assertNear(regularizedBeta(0.3, 2.5, 4), 1 - regularizedBeta(0.7, 4, 2.5), 1e-14);
  assert.throws(() => regularizedBeta(1.2, 1, 1), { name: "RangeError", message: /x must/ });
  assert.throws(() => regularizedBeta(0.5, 0, 1), { name: "RangeError", message: /a must/ });
  assert.throws(() => logGamma(0), RangeError);
});

Deno.test("studentTQuantile matches t tables and closed forms", () => {
  // Two-sided 95% (p = 0.975) critical values, as printed in t tables (6 decimals).
  const table: [number, number, number][] = [
    [0.975, 1, 12.706205],
    [0.975, 2, 4.302653],
    [0.975, 3, 3.182446],
    [0.975, 4, 2.776445],
    [0.975, 5, 2.570582],
    [0.975, 9, 2.262157],
    [0.975, 19, 2.093024],
    [0.975, 30, 2.042272],
    [0.975, 100, 1.983972],
    [0.95, 5, 2.015048],
    [0.95, 9, 1.833113],
    [0.995, 9, 3.249836],
    [0.9995, 3, 12.923979],
    [0.9, 1, 3.077684],
  ];
  for (const [p, df, t] of table) {
    assertNear(studentTQuantile(p, df), t, 1e-6, `t(${p}, ${df})`);
    assertNear(studentTQuantile(1 - p, df), -t, 1e-6, `t(${1 - p}, ${df})`);
    assertNear(studentTCdf(studentTQuantile(p, df), df), p, 1e-13, `cdf∘quantile ${p} ${df}`);
  }
  // df = 1 (Cauchy): tan(π(p − 1/2)); df = 2: (2p − 1)/√(2p(1 − p)).
  for (const p of [0.6, 0.9, 0.99, 0.9999]) {
    const cauchy = Math.tan(Math.PI * (p - 0.5));
    assertNear(studentTQuantile(p, 1), cauchy, 1e-10 * cauchy, `cauchy ${p}`);
    assertNear(studentTQuantile(p, 2), (2 * p - 1) / Math.sqrt(2 * p * (1 - p)), 1e-10);
  }
  // Large df tends to the normal quantile.
  assertNear(studentTQuantile(0.975, 1e7), 1.959963984540054, 1e-6);
  assert.equal(studentTQuantile(0.5, 3), 0);
  assert.throws(() => studentTQuantile(1, 3), { name: "RangeError", message: /p must/ });
  assert.throws(() => studentTQuantile(0.9, 0), { name: "RangeError", message: /df/ });
  assert.throws(() => studentTCdf(NaN, 3), RangeError);
});

Deno.test("normalCdf and normalQuantile against known values", () => {
  assertNear(normalQuantile(0.975), 1.959963984540054, 1e-14);
  assertNear(normalQuantile(0.995), 2.5758293035489004, 1e-14);
  assertNear(normalQuantile(0.025), -1.959963984540054, 1e-14);
  assertNear(normalCdf(1), 0.8413447460685429, 1e-15);
  assertNear(normalCdf(0), 0.5, 1e-16);
  // Far tail keeps relative precision: Φ(−8) = 6.22096057427178e−16.
  assertNear(normalCdf(-8) / 6.22096057427178e-16, 1, 1e-12);
  assertNear(normalCdf(normalQuantile(1e-10)), 1e-10, 1e-22);
  assert.throws(() => normalQuantile(0), RangeError);
});

// ---------------------------------------------------------------------------
// t intervals, tests, Holm

Deno.test("tMeanCI and tTestPValue on a hand-computed sample", () => {
  // [1..5]: mean 3, s = √2.5, s/√5 = √0.5; t₀.₉₇₅,₄ = 2.776445.
  const ci = tMeanCI([1, 2, 3, 4, 5]);
  const half = 2.7764451051977987 * Math.sqrt(0.5);
  assertNear(ci.low, 3 - half, 1e-12);
  assertNear(ci.high, 3 + half, 1e-12);
  assert.equal(ci.estimate, 3);
  assert.equal(ci.level, 0.95);
  const ci90 = tMeanCI([1, 2, 3, 4, 5], 0.9);
  assertNear(ci90.high - 3, 2.131846786326649 * Math.sqrt(0.5), 1e-12);
  // t = 3/√0.5 = 4.2426, df 4: two-sided p = 0.01324 (R: t.test(1:5)$p.value = 0.01323560).
  assertNear(tTestPValue([1, 2, 3, 4, 5]), 0.0132356, 1e-7);
  assertNear(tTestPValue([-1, 1]), 1, 1e-15);
  assert.equal(tTestPValue([0, 0, 0]), 1);
  assert.equal(tTestPValue([2, 2, 2]), 0);
  assert.deepEqual(tMeanCI([4, 4, 4]), { estimate: 4, low: 4, high: 4, level: 0.95 });
  assert.throws(() => tMeanCI([1]), { name: "RangeError", message: /at least 2/ });
  assert.throws(() => tMeanCI([1, 2], 1), { name: "RangeError", message: /level/ });
  assert.throws(() => tTestPValue([3]), RangeError);
});

Deno.test("holmAdjust: textbook step-down example, ties, cap at 1", () => {
  // Sorted 0.005, 0.01, 0.03, 0.04 → 4·0.005 = 0.02, 3·0.01 = 0.03, 2·0.03 = 0.06,
  // max(0.06, 1·0.04) = 0.06 (R: p.adjust(c(.01, .04, .03, .005), "holm")).
  const adjusted = holmAdjust([0.01, 0.04, 0.03, 0.005]);
  [0.03, 0.06, 0.06, 0.02].forEach((v, i) => assertNear(adjusted[i], v, 1e-15, `p̃[${i}]`));
  // At α = 0.05 Holm rejects 2 of the 4; Bonferroni (4p ≤ 0.05) only 1.
  assert.equal(adjusted.filter((p) => p <= 0.05).length, 2);
  assert.deepEqual(holmAdjust([0.5, 0.5]), [1, 1]);
  assert.deepEqual(holmAdjust([0.2]), [0.2]);
  assert.deepEqual(holmAdjust([]), []);
  assert.throws(() => holmAdjust([0.1, 1.5]), { name: "RangeError", message: /pValues\[1\]/ });
});

// ---------------------------------------------------------------------------
// BCa

Deno.test("bcaCI: hand-computed acceleration, symmetry, determinism, degenerate cases", () => {
  // xs = [1, 2, 3, 10], mean: jackknife means 5, 14/3, 13/3, 2 (mean 4), d = −1, −2/3, −1/3, 2:
  // Σd² = 50/9, Σd³ = 20/3, a = (20/3) / (6·(50/9)^{3/2}).
  const skewed = bcaCI([1, 2, 3, 10], mean, { resamples: 2000, seed: 3 });
  assertNear(skewed.acceleration, (20 / 3) / (6 * (50 / 9) ** 1.5), 1e-14, "acceleration");
  assert.ok(skewed.low >= 1 && skewed.high <= 10 && skewed.low < 4 && 4 < skewed.high);
  // Symmetric data: a = 0 exactly.
  const symmetric = bcaCI([1, 2, 3, 4, 5], mean, { resamples: 1000 });
  assertNear(symmetric.acceleration, 0, 1e-15);
  assert.deepEqual(bcaCI([1, 2, 3, 10], mean, { resamples: 2000, seed: 3 }), skewed);
  assert.notDeepEqual(bcaCI([1, 2, 3, 10], mean, { resamples: 2000, seed: 4 }), skewed);
  // Right-skewed data: BCa moves both bounds up relative to the percentile interval.
  const rng = new Rng(8);
  const expo = Array.from({ length: 30 }, () => -Math.log(1 - rng.next()));
  const bca = bcaCI(expo, mean, { resamples: 4000, seed: 1 });
  const pct = bootstrapCI(expo, mean, { resamples: 4000, seed: 1 });
  assert.ok(bca.acceleration > 0, `a ${bca.acceleration}`);
  assert.ok(bca.low > pct.low && bca.high > pct.high, `bca ${bca.low}..${bca.high}`);
  const one = bcaCI([2], mean);
  assert.deepEqual([one.low, one.high], [2, 2]);
  const flat = bcaCI([2, 2, 2], mean, { resamples: 100 });
  assert.deepEqual([flat.low, flat.high], [2, 2]);
  assert.throws(() => bcaCI([], mean), RangeError);
  assert.throws(() => bcaCI([1, 2], mean, { level: 1.5 }), RangeError);
  assert.throws(() => bcaCI([1, 2, 3], (s) => (s.length < 3 ? NaN : mean(s))), {
    name: "RangeError",
    message: /jackknife/,
  });
});

// ---------------------------------------------------------------------------
// Coverage simulations (the point of the t intervals)

/** Binomial band: coverage of `trials` 95% intervals within ±3.5 standard errors of 0.95. */
function assertCovers95(covered: number, trials: number, what: string): void {
  const se = Math.sqrt(0.95 * 0.05 / trials);
  const rate = covered / trials;
  assert.ok(
    Math.abs(rate - 0.95) <= 3.5 * se,
    `${what}: coverage ${rate} outside 0.95 ± ${(3.5 * se).toFixed(4)}`,
  );
}

Deno.test("coverage: tMeanCI holds 95% at 10 and at 5 seeds; the percentile bootstrap at 5 does not", () => {
  const data = new Rng(20250);
  const trials = 2000;
  let t10 = 0;
  let t5 = 0;
  let pct5 = 0;
  for (let s = 0; s < trials; s++) {
    const ten = normals(data, 10, 1, 2);
    const ci = tMeanCI(ten);
    if (ci.low <= 1 && 1 <= ci.high) t10++;
    const five = normals(data, 5, 1, 2);
    const t = tMeanCI(five);
    if (t.low <= 1 && 1 <= t.high) t5++;
    const p = meanCI(five, { resamples: 1000, seed: s });
    if (p.low <= 1 && 1 <= p.high) pct5++;
  }
  console.log(
    `  coverage of 95% intervals over ${trials} studies: t at 10 seeds ${t10 / trials}, ` +
      `t at 5 seeds ${t5 / trials}, percentile bootstrap at 5 seeds ${pct5 / trials}`,
  );
  assertCovers95(t10, trials, "t interval, 10 seeds");
  assertCovers95(t5, trials, "t interval, 5 seeds");
  // The percentile bootstrap's spread is s·√((n−1)/n)/√n with normal-like quantiles:
  // at n = 5 its half-width is ≈ 1.75·s/√n against the t interval's 2.78·s/√n, and
  // its coverage is about 0.83 here, far below the binomial band around 0.95.
  const rate = pct5 / trials;
  assert.ok(rate < 0.95 - 3.5 * Math.sqrt(0.95 * 0.05 / trials), `percentile coverage ${rate}`);
  assert.ok(rate > 0.78 && rate < 0.89, `percentile coverage ${rate} (expected about 0.83)`);
});

const NS = [64, 128, 256, 512, 1024, 2048, 4096, 8192];

/**
 * One simulated study: per seed, a shared seed effect on both arms' slopes (same data
 * draw), arm-specific slope noise and multiplicative noise on every point.
 */
function simulatedStudy(rng: Rng, seeds: number, slopeA: number, slopeB: number) {
  const a: number[][] = [];
  const b: number[][] = [];
  for (let s = 0; s < seeds; s++) {
    const shared = 0.1 * rng.normal();
    const sa = slopeA + shared + 0.05 * rng.normal();
    const sb = slopeB + shared + 0.05 * rng.normal();
    const ca = Math.exp(rng.normal());
    const cb = Math.exp(rng.normal());
    a.push(NS.map((n) => ca * n ** sa * Math.exp(0.2 * rng.normal())));
    b.push(NS.map((n) => cb * n ** sb * Math.exp(0.2 * rng.normal())));
  }
  return { a, b };
}

Deno.test("coverage: slopeDifferenceCI's t interval holds 95% at 10 seeds; its BCa second method is near", () => {
  const rng = new Rng(2502);
  const trials = 2000;
  let coveredT = 0;
  let coveredBca = 0;
  const bcaTrials = 500;
  for (let s = 0; s < trials; s++) {
    const { a, b } = simulatedStudy(rng, 10, -0.5, -0.25);
    const d = slopeDifferenceCI(NS, a, b, { resamples: s < bcaTrials ? 1000 : 1, seed: s });
    if (d.lo <= -0.25 && -0.25 <= d.hi) coveredT++;
    if (s < bcaTrials && d.bootstrap.low <= -0.25 && -0.25 <= d.bootstrap.high) coveredBca++;
  }
  console.log(
    `  slope difference at 10 seeds: t interval covers ${coveredT / trials} (${trials} studies), ` +
      `BCa bootstrap ${coveredBca / bcaTrials} (${bcaTrials} studies)`,
  );
  assertCovers95(coveredT, trials, "slope difference, t over 10 seeds");
  // BCa cannot know the t tails: at 10 seeds it covers under 95% (0.89 here): it is the
  // second method, not the one [lo, hi] reports.
  const bcaRate = coveredBca / bcaTrials;
  assert.ok(bcaRate > 0.88 && bcaRate < 0.96, `BCa coverage ${bcaRate}`);
});

// ---------------------------------------------------------------------------
// Slope differences, local slopes

Deno.test("slopeDifferenceCI on exact and noisy synthetic curves with a known answer", () => {
  // Exact power laws, per-seed constants: every seed's difference is −0.5 − (−0.25) = −0.25.
  const a = [1, 2, 5].map((c) => NS.map((n) => c * n ** -0.5));
  const b = [3, 1, 7].map((c) => NS.map((n) => c * n ** -0.25));
  const exact = slopeDifferenceCI(NS, a, b, { resamples: 200 });
  assertNear(exact.estimate, -0.25, 1e-12);
  assertNear(exact.lo, -0.25, 1e-12);
  assertNear(exact.hi, -0.25, 1e-12);
  exact.slopesA.forEach((v) => assertNear(v, -0.5, 1e-12));
  exact.slopesB.forEach((v) => assertNear(v, -0.25, 1e-12));
  assert.equal(exact.method, "t-over-seeds");
  assert.ok(exact.pValue < 1e-20, `p ${exact.pValue}`); // differences equal up to rounding

  // Noisy: the interval covers the truth and excludes 0; the estimate equals the
  // difference of the pooled log-log slopes.
  const { a: na, b: nb } = simulatedStudy(new Rng(4), 10, -0.5, -0.25);
  const d = slopeDifferenceCI(NS, na, nb, { resamples: 2000, seed: 9 });
  assert.ok(d.lo < -0.25 && -0.25 < d.hi, `[${d.lo}, ${d.hi}]`);
  assert.ok(d.hi < 0 && d.pValue < 0.01, `hi ${d.hi}, p ${d.pValue}`);
  assert.ok(d.bootstrap.low < -0.25 && -0.25 < d.bootstrap.high);
  const pooled = (t: number[][]) => logLogSlope(t.flatMap(() => NS), t.flat()).slope;
  assertNear(d.estimate, pooled(na) - pooled(nb), 1e-12, "mean of per-seed = pooled");
  assert.deepEqual(slopeDifferenceCI(NS, na, nb, { resamples: 2000, seed: 9 }), d);

  // Pairing: the shared seed effect cancels in the per-seed difference, so the paired
  // interval is narrower than two independent t intervals would suggest.
  const tA = tMeanCI(d.slopesA);
  const tB = tMeanCI(d.slopesB);
  const unpairedHalf = Math.hypot(tA.high - tA.estimate, tB.high - tB.estimate);
  assert.ok(d.hi - d.estimate < unpairedHalf, `${d.hi - d.estimate} vs ${unpairedHalf}`);

  assert.throws(() => slopeDifferenceCI(NS, a, b.slice(0, 2)), {
    name: "RangeError",
    message: /same seeds/,
  });
  assert.throws(() => slopeDifferenceCI(NS, [a[0]], [b[0]]), { message: /at least 2 seeds/ });
  assert.throws(() => slopeDifferenceCI(NS, [a[0], a[1].slice(1)], b.slice(0, 2)), {
    name: "RangeError",
    message: /a\[1\] has 7 values/,
  });
  const bad = a.map((r) => [...r]);
  bad[2][3] = 0;
  assert.throws(() => slopeDifferenceCI(NS, bad, b), { message: /a\[2\]\[3\]/ });
  assert.throws(() => slopeDifferenceCI([1, 1], [[1, 1], [1, 1]], [[1, 1], [1, 1]]), {
    message: /repeat/,
  });
});

Deno.test("localSlopes: constant for a power law, drifting to 0 for a logarithmic rate", () => {
  const seeds = [1, 2, 3];
  const power = seeds.map((c) => NS.map((n) => c * n ** -0.5));
  const windows = localSlopes(NS, power, 3);
  assert.equal(windows.length, NS.length - 2);
  for (const w of windows) {
    assertNear(w.slope, -0.5, 1e-12);
    assertNear(w.lo, -0.5, 1e-12);
    assertNear(w.hi, -0.5, 1e-12);
  }
  assert.equal(windows[0].nFrom, 64);
  assert.equal(windows[0].nTo, 256);
  assertNear(windows[0].nMid, 128, 1e-9); // geometric mean of 64, 128, 256

  // y = c / ln n: with window 2 the slope is −(ln ln n₂ − ln ln n₁)/(ln n₂ − ln n₁) exactly.
  const logRate = seeds.map((c) => NS.map((n) => c / Math.log(n)));
  const shuffled = [4, 0, 7, 2, 5, 1, 6, 3]; // any order of ns
  const local = localSlopes(
    shuffled.map((i) => NS[i]),
    logRate.map((row) => shuffled.map((i) => row[i])),
    2,
  );
  local.forEach((w, k) => {
    const expected = -(Math.log(Math.log(NS[k + 1])) - Math.log(Math.log(NS[k]))) /
      (Math.log(NS[k + 1]) - Math.log(NS[k]));
    assertNear(w.slope, expected, 1e-12, `window ${k}`);
    assert.equal(w.nFrom, NS[k]);
  });
  for (let k = 1; k < local.length; k++) assert.ok(local[k].slope > local[k - 1].slope);

  // With noise: intervals come from the per-seed spread.
  const rng = new Rng(6);
  const noisy = Array.from(
    { length: 10 },
    () => NS.map((n) => n ** -0.5 * Math.exp(0.1 * rng.normal())),
  );
  for (const w of localSlopes(NS, noisy, 4)) {
    assert.ok(w.lo < w.slope && w.slope < w.hi && w.perSeed.length === 10);
  }
  assert.throws(() => localSlopes(NS, power, 1), { message: /window/ });
  assert.throws(() => localSlopes(NS, power, 9), { message: /window/ });
  assert.throws(() => localSlopes(NS, [power[0]], 2), { message: /at least 2 seeds/ });
});

// ---------------------------------------------------------------------------
// Censored samples-to-target

Deno.test("censoredSamplesToTarget: misses are counted as censored, never dropped", () => {
  const ns = [100, 200, 400, 800];
  // Accuracy per seed at each n; target 0.9 (higher is better).
  const values = [
    [0.5, 0.92, 0.95, 0.97], // 200
    [0.5, 0.7, 0.91, 0.96], // 400
    [0.6, 0.8, 0.85, 0.89], // never: censored at > 800
    [0.95, 0.96, 0.97, 0.99], // 100
    [0.4, 0.5, 0.6, NaN], // never (NaN never reaches)
  ];
  const r = censoredSamplesToTarget(ns, values, 0.9, true);
  assert.deepEqual(r.perSeed, [
    { n: 200, censored: false },
    { n: 400, censored: false },
    { n: 800, censored: true },
    { n: 100, censored: false },
    { n: 800, censored: true },
  ]);
  assert.equal(r.reached, 3);
  assert.equal(r.censored, 2);
  assert.equal(r.maxN, 800);
  // Sorted with misses as +∞: 100, 200, 400, ∞, ∞; median = 3rd = 400. Dropping the
  // misses would have given the median of {100, 200, 400} = 200: biased low.
  assert.equal(r.median, 400);
  // 5 seeds: no bounded 95% order-statistic interval exists (P(B ≤ 0) = 1/32 > 0.025).
  assert.equal(r.lo, 0);
  assert.equal(r.hi, Infinity);
  assert.equal(formatSamples(r.hi, r.maxN), "> 800");
  assert.equal(formatSamples(r.median, r.maxN), "400");

  // 10 seeds at 95%: [X₍₂₎, X₍₉₎], coverage 1 − 2·11/1024.
  const ten = Array.from(
    { length: 10 },
    (_, s) => ns.map((n) => (n >= 100 * 2 ** (s % 5) ? 1 : 0)),
  );
  ten[9] = [0, 0, 0, 0];
  ten[8] = [0, 0, 0, 0];
  const t = censoredSamplesToTarget(ns, ten, 1, true);
  // Per seed: 100, 200, 400, 800, ∞ (s % 5 = 4 needs 1600), 100, 200, 400, ∞, ∞.
  assert.equal(t.censored, 3);
  assert.equal(t.median, 400); // sorted 100 100 200 200 400 400 800 ∞ ∞ ∞ → 5th
  assert.equal(t.lo, 100);
  assert.equal(t.hi, Infinity); // 9th order statistic is censored
  assertNear(t.coverage, 1 - 2 * 11 / 1024, 1e-15);

  // More than half censored: the median is "not reached".
  const mostly = censoredSamplesToTarget(ns, [[9, 9, 9, 9], [9, 9, 9, 9], [9, 9, 1, 1]], 2, false);
  assert.equal(mostly.median, Infinity);
  assert.equal(mostly.perSeed[2].n, 400);

  assert.throws(() => censoredSamplesToTarget(ns, [[1, 2, 3]], 1, true), {
    message: /valuesBySeed\[0\] has 3 values/,
  });
  assert.throws(() => censoredSamplesToTarget(ns, [[1, 2, 3, Infinity]], 1, true), {
    message: /valuesBySeed\[0\]\[3\]/,
  });
  assert.throws(() => censoredSamplesToTarget(ns, values, NaN, true), { message: /target/ });
  assert.throws(() => censoredSamplesToTarget(ns, [], 1, true), { message: /no seeds/ });
});

Deno.test("coverage: the censored median's order-statistic interval covers at its stated level", () => {
  // Samples-to-target drawn from a known discrete distribution on the n grid (with a
  // share beyond the grid, censored); the true median is 400.
  const ns = [100, 200, 400, 800, 1600];
  const probs = [0.1, 0.2, 0.25, 0.2, 0.1]; // remaining 0.15: never within the grid
  const rng = new Rng(77);
  const trials = 2000;
  let covered = 0;
  let minCoverage = 1;
  for (let s = 0; s < trials; s++) {
    const values = Array.from({ length: 10 }, () => {
      let u = rng.next();
      let k = 0;
      while (k < probs.length && u >= probs[k]) u -= probs[k++];
      return ns.map((_, i) => (i >= k ? 0 : 1)); // loss reaches 0.5 from index k on
    });
    const r = censoredSamplesToTarget(ns, values, 0.5, false);
    if (r.lo <= 400 && 400 <= r.hi) covered++;
    minCoverage = Math.min(minCoverage, r.coverage);
  }
  console.log(
    `  censored median, 10 seeds: [X(2), X(9)] covers the true median in ${covered / trials} ` +
      `of ${trials} studies (stated ${minCoverage.toFixed(4)})`,
  );
  // Discrete data make the interval conservative: at least its exact coverage 0.979.
  assert.ok(covered / trials >= minCoverage - 3.5 * Math.sqrt(0.02 * 0.98 / trials));
});

Deno.test("minimalDetectableDifference: its formula, and the power it promises, by simulation", () => {
  const xs = [0.1, -0.3, 0.25, 0.4, -0.1, 0.05, 0.3, -0.2, 0.15, 0.0];
  const sd = std(xs), m = xs.length;
  const expected = (studentTQuantile(0.975, m - 1) + studentTQuantile(0.8, m - 1)) * sd /
    Math.sqrt(m);
  assertNear(minimalDetectableDifference(xs), expected, 1e-12);
  // At a true difference equal to the MDE (σ known to the simulation), the t test
  // at α = 0.05 over 10 normal values rejects in about 80% of the draws: the
  // approximation is within a few points of the noncentral-t power.
  const rng = new Rng(404);
  const sigma = 1, reps = 4000;
  const delta = (studentTQuantile(0.975, m - 1) + studentTQuantile(0.8, m - 1)) * sigma /
    Math.sqrt(m);
  let rejected = 0;
  for (let r = 0; r < reps; r++) {
    const sample = Array.from({ length: m }, () => delta + sigma * rng.normal());
    if (tTestPValue(sample) <= 0.05) rejected++;
  }
  const power = rejected / reps;
  assert.ok(power > 0.76 && power < 0.86, `simulated power ${power}`);
  // A stricter level (Holm's first step over 4 tests) needs a larger difference.
  assert.ok(minimalDetectableDifference(xs, 0.05 / 4) > minimalDetectableDifference(xs));
  assert.throws(() => minimalDetectableDifference([1]), RangeError);
  assert.throws(() => minimalDetectableDifference(xs, 0), RangeError);
  assert.throws(() => minimalDetectableDifference(xs, 0.05, 1), RangeError);
});
