/**
 * The paper study's model and estimator (training/moe/): the analytic
 * Jacobian against central finite differences, the Levenberg–Marquardt fit
 * reaching the truth on noise-free data, its convergence flag (a start cut
 * short is marked not converged), the box bound, and the data's nesting.
 */

import assert from "node:assert/strict";
import { Rng } from "../training/rng.ts";
import {
  evaluate,
  type MoeSpec,
  packAtoms,
  paramCount,
  sampleData,
  trueAtoms,
} from "../training/moe/model.ts";
import {
  fitMultiStart,
  fitStart,
  objective,
  randomStart,
  truthSplitStart,
} from "../training/moe/fit.ts";
import { runMoe } from "../training/moe/run.ts";
import { voronoiLoss } from "../training/moe/voronoi.ts";

const KINDS: Omit<MoeSpec, "dim" | "experts">[] = [];
for (const gate of ["sigmoid", "softmax"] as const) {
  for (const expert of ["linear", "ffn"] as const) {
    for (const score of ["fully", "partially"] as const) KINDS.push({ gate, expert, score });
  }
}

Deno.test("the Jacobian of the mixture matches central finite differences (every gate, expert, score)", () => {
  for (const kind of KINDS) {
    const spec: MoeSpec = { ...kind, dim: 2, experts: 3 };
    const rng = new Rng(11);
    const theta = randomStart(spec, rng, 0.8);
    const inputs = { n: 7, dim: 2, x: Float64Array.from({ length: 14 }, () => 2 * rng.next() - 1) };
    const P = paramCount(spec);
    const jac = new Float64Array(7 * P);
    evaluate(spec, theta, inputs, jac);
    let worst = 0;
    for (let a = 0; a < P; a++) {
      const h = 1e-6;
      const up = theta.slice(), down = theta.slice();
      up[a] += h;
      down[a] -= h;
      const fu = evaluate(spec, up, inputs), fd = evaluate(spec, down, inputs);
      for (let i = 0; i < 7; i++) {
        const numeric = (fu[i] - fd[i]) / (2 * h);
        // |error| / (0.01 + |value|) < 1e-6: f64 rounding over h = 1e-6 is about 1e-10.
        worst = Math.max(worst, Math.abs(numeric - jac[i * P + a]) / (1e-2 + Math.abs(numeric)));
      }
    }
    assert.ok(worst < 1e-6, `${JSON.stringify(kind)}: worst Jacobian error ${worst}`);
  }
});

Deno.test("the objective's gradient Jᵀr/n matches finite differences of F = Σr²/2n", () => {
  const spec: MoeSpec = { gate: "softmax", score: "fully", expert: "ffn", dim: 2, experts: 3 };
  const truthSpec = { ...spec, experts: 2 };
  const data = sampleData(truthSpec, packAtoms(truthSpec, trueAtoms("dense")), 50, 0.1, 3);
  const theta = randomStart(spec, new Rng(5), 0.5);
  const { grad } = objective(spec, theta, data.inputs, data.y);
  for (let a = 0; a < theta.length; a++) {
    const h = 1e-6;
    const up = theta.slice(), down = theta.slice();
    up[a] += h;
    down[a] -= h;
    const numeric = (objective(spec, up, data.inputs, data.y, false).F -
      objective(spec, down, data.inputs, data.y, false).F) / (2 * h);
    assert.ok(
      Math.abs(numeric - grad![a]) <= 1e-7 + 1e-5 * Math.abs(numeric),
      `parameter ${a}: analytic ${grad![a]}, numeric ${numeric}`,
    );
  }
});

Deno.test("on noise-free data the exact-specified fit converges to the truth (Voronoi loss ~ 0)", () => {
  for (const gate of ["sigmoid", "softmax"] as const) {
    const spec: MoeSpec = { gate, score: "partially", expert: "linear", dim: 2, experts: 2 };
    const atoms = trueAtoms("dense");
    const truth = packAtoms(spec, atoms);
    const data = sampleData(spec, truth, 300, 0, 1);
    const start = truthSplitStart(spec, atoms, 0, new Rng(2), 0.1);
    const fit = fitStart(spec, data.inputs, data.y, start, "truth-split", { maxIterations: 300 });
    assert.ok(fit.converged, `${gate}: ${fit.stop} after ${fit.iterations} iterations`);
    assert.ok(fit.loss < 1e-20, `${gate}: loss ${fit.loss}`);
    assert.ok(voronoiLoss(spec, fit.theta, truth).value < 1e-8);
  }
});

Deno.test("a start stopped by the iteration cap is marked not converged; the kept start is the lowest loss", () => {
  const spec: MoeSpec = { gate: "sigmoid", score: "partially", expert: "ffn", dim: 2, experts: 3 };
  const truthSpec = { ...spec, experts: 2 };
  const data = sampleData(truthSpec, packAtoms(truthSpec, trueAtoms("dense")), 200, 0.05, 4);
  const starts = [0, 1, 2].map((i) => ({
    name: `random-${i}`,
    theta: randomStart(spec, new Rng(40 + i)),
  }));
  const short = fitStart(spec, data.inputs, data.y, starts[0].theta, "random-0", {
    maxIterations: 2,
  });
  assert.equal(short.converged, false);
  assert.equal(short.stop, "max-iterations");
  assert.equal(short.iterations, 2);
  const multi = fitMultiStart(spec, data.inputs, data.y, starts, { maxIterations: 5 });
  const best = Math.min(...multi.starts.map((s) => s.loss));
  assert.equal(multi.loss, best);
  assert.equal(multi.starts[multi.winner].loss, best);
  assert.equal(multi.converged, multi.starts[multi.winner].converged);
});

Deno.test("the fit stays in the box [−bound, bound]", () => {
  const spec: MoeSpec = {
    gate: "softmax",
    score: "partially",
    expert: "linear",
    dim: 2,
    experts: 3,
  };
  const truthSpec = { ...spec, experts: 2 };
  const data = sampleData(truthSpec, packAtoms(truthSpec, trueAtoms("dense")), 100, 0.2, 8);
  const fit = fitStart(spec, data.inputs, data.y, randomStart(spec, new Rng(9), 3), "r", {
    bound: 1.5,
    maxIterations: 100,
  });
  assert.ok(fit.theta.every((v) => Math.abs(v) <= 1.5), `theta ${fit.theta}`);
  assert.throws(() => fitStart(spec, data.inputs, data.y, fit.theta, "r", { bound: 0 }), /bound/);
});

Deno.test("a seed's data are nested across n, and a run records its starts and diagnostics", () => {
  const spec: MoeSpec = {
    gate: "sigmoid",
    score: "partially",
    expert: "linear",
    dim: 2,
    experts: 2,
  };
  const truth = packAtoms(spec, trueAtoms("sparse"));
  const small = sampleData(spec, truth, 10, 0.05, 3), big = sampleData(spec, truth, 30, 0.05, 3);
  assert.deepEqual(Array.from(big.inputs.x.subarray(0, 20)), Array.from(small.inputs.x));
  assert.deepEqual(Array.from(big.y.subarray(0, 10)), Array.from(small.y));
  const r = runMoe({
    gate: "softmax",
    score: "partially",
    expert: "linear",
    regime: "dense",
    fit: "over",
    n: 60,
    seed: 1,
    randomStarts: 2,
    testSize: 100,
    stopping: { maxIterations: 30 },
  });
  assert.equal(r.k, 3);
  assert.equal(r.kStar, 2);
  assert.deepEqual(r.starts.map((s) => s.start), ["truth-split", "random-1", "random-2"]);
  assert.ok(r.starts.some((s) => s.start === r.winner));
  assert.ok(r.voronoi > 0 && r.functionError > 0 && r.trainLoss > 0);
  assert.throws(
    () => runMoe({ ...r.config, fit: "under" as "over" }),
    /fit must be "over" or "exact"/,
  );
});
