/**
 * The null-atom diagnostic (training/moe/voronoi.ts nullAtoms, withoutAtoms;
 * training/study/analyze.ts nullAtomCheck): a zero-output extra expert is
 * null and its removal restores a zero Voronoi loss under sigmoid gating; a
 * real atom is not null; the regenerated held-out inputs are the run's.
 */

import assert from "node:assert/strict";
import { type Atom, evaluate, type MoeSpec, packAtoms, trueAtoms } from "../training/moe/model.ts";
import { nullAtoms, voronoiLoss, withoutAtoms } from "../training/moe/voronoi.ts";
import { runMoe } from "../training/moe/run.ts";
import { nullAtomCheck, paperTestInputs } from "../training/study/analyze.ts";
import type { MoeRunRecord } from "../training/study/runner.ts";

const spec = (gate: MoeSpec["gate"], expert: MoeSpec["expert"], experts: number): MoeSpec => ({
  gate,
  expert,
  score: "partially",
  dim: 2,
  experts,
});
const zeroExpert = (c: number): Atom => ({ A: [3, -1, 2], b: [0, 0], c, a: [0, 0], e: 0 });
const maxAbs = (f: Float64Array) => f.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

Deno.test("a zero-output extra expert is null, the true atoms are not", () => {
  const inputs = paperTestInputs(500);
  for (const gate of ["sigmoid", "softmax"] as const) {
    for (const expert of ["linear", "ffn"] as const) {
      for (const regime of ["dense", "sparse"] as const) {
        const t = trueAtoms(regime);
        const truth = packAtoms(spec(gate, expert, 2), t);
        const scale = maxAbs(evaluate(spec(gate, expert, 2), truth, inputs));
        assert.deepEqual(nullAtoms(spec(gate, expert, 2), truth, inputs, scale), []);
        const fit = packAtoms(spec(gate, expert, 3), [t[0], zeroExpert(1.5), t[1]]);
        assert.deepEqual(nullAtoms(spec(gate, expert, 3), fit, inputs, scale), [1]);
      }
    }
  }
});

Deno.test("under sigmoid a null expert leaves f exact, has a large loss, and removing it gives 0", () => {
  const inputs = paperTestInputs(500);
  const t = trueAtoms("dense");
  const s2 = spec("sigmoid", "linear", 2), s3 = spec("sigmoid", "linear", 3);
  const truth = packAtoms(s2, t);
  const fit = packAtoms(s3, [t[0], t[1], zeroExpert(2)]);
  const f = evaluate(s3, fit, inputs), fStar = evaluate(s2, truth, inputs);
  for (let i = 0; i < inputs.n; i++) assert.ok(Math.abs(f[i] - fStar[i]) < 1e-12);
  assert.ok(voronoiLoss(s3, fit, truth).value > 1, "the loss counts the null expert");
  const drop = nullAtoms(s3, fit, inputs, maxAbs(fStar));
  assert.deepEqual(drop, [2]);
  const reduced = withoutAtoms(s3, fit, drop);
  assert.equal(reduced.spec.experts, 2);
  assert.deepEqual(Array.from(reduced.theta), Array.from(truth));
  assert.ok(voronoiLoss(reduced.spec, reduced.theta, truth).value < 1e-15);
});

Deno.test("the tolerance is relative to the scale: a small but real expert is null only above it", () => {
  const inputs = paperTestInputs(500);
  const t = trueAtoms("dense");
  const s3 = spec("sigmoid", "linear", 3);
  // An expert of constant output 0.01: its term is σ(s) · 0.01 ≤ 0.01.
  const small: Atom = { A: [0, 0, 0], b: [0, 0], c: 10, a: [0, 0], e: 0.01 };
  const fit = packAtoms(s3, [t[0], t[1], small]);
  assert.deepEqual(nullAtoms(s3, fit, inputs, 1, 1e-3), []);
  assert.deepEqual(nullAtoms(s3, fit, inputs, 1, 1e-2), [2]);
  assert.throws(() => nullAtoms(s3, fit, inputs, 0), /scale/);
  assert.throws(() => nullAtoms(s3, fit.subarray(1), inputs, 1), /theta/);
});

Deno.test("nullAtomCheck regenerates the run's held-out inputs and keeps a fit without nulls", () => {
  const config = {
    gate: "sigmoid" as const,
    score: "partially" as const,
    expert: "linear" as const,
    regime: "dense" as const,
    fit: "over" as const,
    n: 60,
    seed: 3,
    randomStarts: 0,
    testSize: 300,
    stopping: { maxIterations: 40 },
  };
  const result = runMoe(config);
  const inputs = paperTestInputs(300);
  const s = spec("sigmoid", "linear", result.k);
  const t = trueAtoms("dense");
  const fHat = evaluate(s, Float64Array.from(result.theta), inputs);
  const fStar = evaluate(
    spec("sigmoid", "linear", 2),
    packAtoms(spec("sigmoid", "linear", 2), t),
    inputs,
  );
  let fe = 0;
  for (let i = 0; i < inputs.n; i++) fe += (fHat[i] - fStar[i]) ** 2;
  assert.ok(Math.abs(fe / inputs.n - result.functionError) <= 1e-12 * result.functionError);
  const record = { spec: { id: "x" }, result } as unknown as MoeRunRecord;
  const check = nullAtomCheck(record, inputs);
  if (check.nullAtoms.length === 0) assert.equal(check.voronoi, result.voronoi);
  // The same record with its last expert zeroed has that atom null and drops it.
  const theta = result.theta.slice();
  theta.fill(0, theta.length - 3);
  const zeroed = { ...record, result: { ...result, theta } } as MoeRunRecord;
  assert.ok(nullAtomCheck(zeroed, inputs).nullAtoms.includes(result.k - 1));
});

Deno.test("the paper analysis counts null fits and recomputes the slope difference without them", async () => {
  const { FIXTURE_PAPER_PRESET, fixturePaperRecords } = await import("./_study_report_fixture.ts");
  const { analyzePaperStudy, NULL_TOLERANCES } = await import("../training/study/analyze.ts");
  const { logLogSlope } = await import("../training/study/stats.ts");
  const t = trueAtoms("dense");
  // Sigmoid over-specified fits: the truth with atom 0's expert off by 1/n, plus a
  // zero-output expert (null); every other fit: the truth off by the same amount, plus
  // (over-specified) a real third expert; none of those is null.
  const expected = new Map<string, number>();
  const records = fixturePaperRecords().map((r) => {
    const c = r.result.config;
    const s = spec(c.gate, c.expert, r.result.k);
    const delta = r.spec.n ** -1 * (1 + 0.1 * r.spec.seed);
    const moved = { ...t[0], a: [t[0].a[0] + delta, t[0].a[1]] };
    const third: Atom = c.gate === "sigmoid" && c.fit === "over"
      ? zeroExpert(0.5)
      : { A: [1, 0, 1], b: [0, 0], c: 0, a: [0.5, -0.5], e: 0.3 };
    const atoms = c.fit === "over" ? [moved, t[1], third] : [moved, t[1]];
    if (c.gate === "sigmoid" && c.fit === "over") {
      expected.set(
        r.spec.id,
        voronoiLoss(
          spec(c.gate, c.expert, 2),
          packAtoms(spec(c.gate, c.expert, 2), [moved, t[1]]),
          packAtoms(spec(c.gate, c.expert, 2), t),
        ).value,
      );
    }
    return { ...r, result: { ...r.result, theta: Array.from(packAtoms(s, atoms)) } };
  });
  const a = analyzePaperStudy(FIXTURE_PAPER_PRESET, records);
  for (const cell of a.cells) {
    const over = cell.fit === "over";
    const runs = cell.seeds.length * cell.ns.length;
    for (const curve of cell.curves) {
      const fits = curve.gate === "sigmoid" && over ? runs : 0;
      assert.deepEqual(curve.nullFits!.map((q) => q.fits), NULL_TOLERANCES.map(() => fits));
    }
    assert.equal(cell.nullRemoved!.length, NULL_TOLERANCES.length);
    for (const s of cell.nullRemoved!) {
      // Softmax fits have no null atom: their slopes are the as-fitted ones.
      assert.deepEqual(s.difference.slopesB, cell.difference!.slopesB);
      if (!over) {
        assert.deepEqual(s.difference.perSeed, cell.difference!.perSeed);
        assert.equal(s.verdict, cell.verdict);
        continue;
      }
      cell.seeds.forEach((seed, i) => {
        const ys = cell.ns.map((n) => expected.get(`${cell.cell}-sigmoid-n${n}-s${seed}`)!);
        const want = logLogSlope(cell.ns, ys).slope;
        assert.ok(
          Math.abs(s.difference.slopesA[i] - want) < 1e-9,
          `${s.difference.slopesA[i]} ${want}`,
        );
        assert.ok(Math.abs(s.difference.slopesA[i] - cell.difference!.slopesA[i]) > 0.1);
      });
    }
  }
});
