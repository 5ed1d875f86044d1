/** Tests of training/study/stats.ts against hand-computed and simulated known answers. */

import assert from "node:assert/strict";
import { Rng } from "../training/rng.ts";
import {
  bootstrapCI,
  type CurvePoint,
  logLogSlope,
  mean,
  meanCI,
  median,
  pairedCI,
  pairedDifferences,
  quantile,
  samplesToTarget,
  slopeCI,
  std,
  stepsToTarget,
  summarize,
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
