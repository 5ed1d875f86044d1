/**
 * The matched-atom error and the extra atoms' term (training/moe/matched.ts)
 * on hand-computed cases: zero at the truth whatever the extra atom is, its
 * exact value on a constructed fit, invariance to the order of the fitted
 * atoms and (softmax) to a common gate shift, the rate it shows on a
 * synthetic sequence of fits, and the extra term's exact value.
 */

import assert from "node:assert/strict";
import {
  type Atom,
  evaluate,
  type MoeSpec,
  packAtoms,
  sampleInputs,
  trueAtoms,
} from "../training/moe/model.ts";
import { extraTerm, matchedAtomError } from "../training/moe/matched.ts";
import { logLogSlope } from "../training/study/stats.ts";

const copy = (a: Atom): Atom => ({ ...a, A: [...a.A], b: [...a.b], a: [...a.a] });

function spec(
  gate: MoeSpec["gate"],
  experts: number,
  score: MoeSpec["score"] = "partially",
): MoeSpec {
  return { gate, expert: "linear", score, dim: 2, experts };
}

Deno.test("the matched error is 0 at the truth, whatever the extra atom's parameters", () => {
  for (const gate of ["sigmoid", "softmax"] as const) {
    for (const score of ["partially", "fully"] as const) {
      const t = trueAtoms("dense");
      const truth = packAtoms(spec(gate, 2, score), t);
      const exact = matchedAtomError(spec(gate, 2, score), truth, truth);
      assert.equal(exact.value, 0);
      assert.deepEqual(exact.matching, [0, 1]);
      assert.deepEqual(exact.extra, []);
      const odd: Atom = { A: [7, -3, 5], b: [2, 2], c: 4, a: [9, -9], e: 3 };
      const fit = packAtoms(spec(gate, 3, score), [odd, t[1], t[0]]);
      const over = matchedAtomError(spec(gate, 3, score), fit, truth);
      // Softmax: the gauge shift is the mean over the pairs, zero here.
      assert.ok(over.value < 1e-15, `${gate} ${score}: ${over.value}`);
      assert.deepEqual(over.matching, [2, 1]);
      assert.deepEqual(over.extra, [0]);
    }
  }
});

Deno.test("the matched error on a constructed fit: the worst pair's distance, c left out", () => {
  const t = trueAtoms("dense");
  const a0 = copy(t[0]), a1 = copy(t[1]);
  a0.a[0] += 0.3; // expert: 0.3
  a0.A[1] += 0.4; // gate: 0.4 → pair 0 at distance 0.5
  a1.e -= 0.2; // pair 1 at 0.2
  a1.c += 5; // the constant is not compared
  const s = spec("sigmoid", 2);
  const m = matchedAtomError(s, packAtoms(s, [a0, a1]), packAtoms(s, t));
  assert.ok(Math.abs(m.value - 0.5) < 1e-12, `${m.value}`);
  assert.ok(Math.abs(m.expert - 0.3) < 1e-12, `${m.expert}`);
  // Softmax: the gate offsets (0.4 on A[1] of pair 0, 0 on pair 1) are aligned by
  // their mean, 0.2 each way, so pair 0 is at √(0.3² + 0.2²) and pair 1 at √(0.2² + 0.2²).
  const x = spec("softmax", 2);
  const ms = matchedAtomError(x, packAtoms(x, [a0, a1]), packAtoms(x, t));
  assert.ok(Math.abs(ms.value - Math.sqrt(0.13)) < 1e-12, `${ms.value}`);
});

Deno.test("the matched error does not depend on the atoms' order, nor (softmax) on a common gate shift", () => {
  const t = trueAtoms("dense");
  const fitted = [copy(t[0]), copy(t[1]), copy(t[0])];
  fitted[0].A[0] += 0.3;
  fitted[1].a[1] -= 0.2;
  fitted[2].e += 0.1;
  fitted[2].A[2] -= 0.05;
  for (const gate of ["sigmoid", "softmax"] as const) {
    const s = spec(gate, 3);
    const truth = packAtoms(spec(gate, 2), t);
    const ref = matchedAtomError(s, packAtoms(s, fitted), truth).value;
    assert.ok(ref > 0);
    for (const order of [[2, 0, 1], [1, 2, 0], [2, 1, 0]]) {
      const v = matchedAtomError(s, packAtoms(s, order.map((i) => fitted[i])), truth).value;
      assert.ok(Math.abs(v - ref) <= 1e-12 * ref, `${gate} order ${order}: ${v} vs ${ref}`);
    }
    if (gate === "softmax") {
      const shifted = fitted.map((a) => ({
        ...copy(a),
        A: a.A.map((v, i) => v + [1, -2, 0.5][i]),
      }));
      const v = matchedAtomError(s, packAtoms(s, shifted), truth).value;
      assert.ok(Math.abs(v - ref) <= 1e-12 * ref, `shifted: ${v} vs ${ref}`);
    } else {
      const shifted = fitted.map((a) => ({ ...copy(a), A: a.A.map((v) => v + 1) }));
      const v = matchedAtomError(s, packAtoms(s, shifted), truth).value;
      assert.ok(v > ref + 0.5, `sigmoid has no gauge: a shift must count (${v} vs ${ref})`);
    }
  }
});

Deno.test("fits at distance C·n^-1/2 from the truth give the matched error a slope of −1/2", () => {
  const t = trueAtoms("dense");
  const ns = [100, 400, 1600, 6400];
  const s = spec("sigmoid", 3);
  const values = ns.map((n) => {
    const h = 1 / Math.sqrt(n);
    const fit = [copy(t[0]), copy(t[1]), { A: [0, 0, 0], b: [0, 0], c: -3, a: [0, 0], e: 0 }];
    fit[0].a[0] += 2 * h;
    fit[1].A[2] -= 3 * h;
    return matchedAtomError(s, packAtoms(s, fit), packAtoms(spec("sigmoid", 2), t)).value;
  });
  assert.ok(Math.abs(logLogSlope(ns, values).slope + 0.5) < 1e-9, `${values}`);
});

Deno.test("the extra term is the RMS of what the unpaired atoms add to f", () => {
  const inputs = sampleInputs(2, 500, 7);
  const t = trueAtoms("dense");
  // A null expert adds nothing, whatever its gate.
  const zero: Atom = { A: [4, 1, -2], b: [0, 0], c: 2, a: [0, 0], e: 0 };
  const s = spec("sigmoid", 3);
  assert.equal(extraTerm(s, packAtoms(s, [t[0], t[1], zero]), [2], inputs), 0);
  // A constant gate σ(0) = 1/2 and a constant expert 0.8: the term is 0.4 everywhere.
  const flat: Atom = { A: [0, 0, 0], b: [0, 0], c: 0, a: [0, 0], e: 0.8 };
  const v = extraTerm(s, packAtoms(s, [t[0], flat, t[1]]), [1], inputs);
  assert.ok(Math.abs(v - 0.4) < 1e-12, `${v}`);
  // Softmax: f with the atom is f without it plus its term, so the term of every
  // atom together is f itself.
  const x = spec("softmax", 3);
  const theta = packAtoms(x, [t[0], t[1], flat]);
  const f = evaluate(x, theta, inputs);
  const rms = Math.sqrt(f.reduce((a, b) => a + b * b, 0) / inputs.n);
  assert.ok(Math.abs(extraTerm(x, theta, [0, 1, 2], inputs) - rms) < 1e-12);
  assert.equal(extraTerm(x, theta, [], inputs), 0);
  assert.throws(() => extraTerm(x, theta, [3], inputs), RangeError);
});

Deno.test("a fit with fewer atoms than the truth is refused", () => {
  const t = trueAtoms("dense");
  const truth = packAtoms(spec("sigmoid", 2), t);
  assert.throws(
    () => matchedAtomError(spec("sigmoid", 1), packAtoms(spec("sigmoid", 1), [t[0]]), truth),
    RangeError,
  );
});

Deno.test("the paper analysis: the matched error's slopes, difference, Holm p, MDE and verdict from planted fits", async () => {
  const { FIXTURE_PAPER_PRESET, fixturePaperRecords } = await import("./_study_report_fixture.ts");
  const { analyzePaperStudy } = await import("../training/study/analyze.ts");
  const t = trueAtoms("dense");
  for (const slowGate of ["softmax", "sigmoid"] as const) {
    // Every fit: the truth with atom 0's expert moved by δ(n) = n^-p (p = 1/4 for the
    // slow gate's over-specified fits, 1/2 otherwise), times a seed-dependent wobble;
    // over-specified fits add a third atom whose expert shrinks like n^-1/2.
    const records = fixturePaperRecords().map((r) => {
      const c = r.result.config;
      const s: MoeSpec = {
        gate: c.gate,
        expert: c.expert,
        score: c.score,
        dim: 2,
        experts: r.result.k,
      };
      const over = c.fit === "over";
      const p = over && c.gate === slowGate ? 0.25 : 0.5;
      const wobble = 1 + 0.2 * Math.sin(r.spec.seed * 2.3 + Math.log(r.spec.n));
      const moved = { ...copy(t[0]), a: [t[0].a[0] + r.spec.n ** -p * wobble, t[0].a[1]] };
      const fade: Atom = { A: [0, 0, 0], b: [0, 0], c: 0, a: [0, 0], e: r.spec.n ** -0.5 };
      const atoms = over ? [moved, t[1], fade] : [moved, t[1]];
      return { ...r, result: { ...r.result, theta: Array.from(packAtoms(s, atoms)) } };
    });
    const a = analyzePaperStudy(FIXTURE_PAPER_PRESET, records);
    for (const cell of a.cells) {
      const m = cell.matched!;
      const over = cell.fit === "over";
      const sign = slowGate === "softmax" ? -1 : 1;
      const want = over ? sign * 0.25 : 0;
      assert.ok(
        Math.abs(m.difference.estimate - want) < 0.03,
        `${cell.cell}: ${m.difference.estimate}`,
      );
      // The control's fits are the same for both gates: no spread, so nothing to detect.
      assert.ok(over ? Number.isFinite(m.mde) && m.mde > 0 : m.mde === 0, `${m.mde}`);
      for (const curve of cell.curves) {
        const expected = over && curve.gate === slowGate ? -0.25 : -0.5;
        assert.ok(Math.abs(curve.matched!.slope.estimate - expected) < 0.03);
        if (over) {
          // The fading atom adds σ(0)·n^-1/2 (sigmoid) or its softmax share of it.
          assert.ok(curve.extraTerm!.slope.estimate < -0.45, `${curve.extraTerm!.slope.estimate}`);
        } else assert.equal(curve.extraTerm, undefined);
      }
      if (over) {
        assert.ok(m.holmP! < 0.01, `${m.holmP}`);
        assert.equal(m.verdict, slowGate === "softmax" ? "holds" : "fails");
      } else {
        assert.equal(m.holmP, undefined);
        assert.equal(m.verdict, "ties");
      }
    }
  }
});

Deno.test("the positive control: a planted noise decay is fitted, analysed and detected, in either direction", async () => {
  const { paperGrid, cellNoise } = await import("../training/study/grid.ts");
  const { analyzePaperStudy } = await import("../training/study/analyze.ts");
  const { runMoe } = await import("../training/moe/run.ts");
  const ns = [40, 160, 640];
  const planted = (gate: "sigmoid" | "softmax") => ({
    name: `planted-${gate}`,
    fit: "exact" as const,
    regime: "dense" as const,
    expert: "linear" as const,
    score: "partially" as const,
    ns,
    role: "planted" as const,
    planted: { gate, exponent: 0.5 },
  });
  const preset = {
    name: "planted-test",
    seeds: [1, 2, 3, 4],
    noise: 0.05,
    randomStarts: 0,
    stopping: { maxIterations: 200 },
    testSize: 300,
    cells: [planted("sigmoid"), planted("softmax")],
  };
  const grid = paperGrid(preset);
  for (const spec of grid) {
    const cell = preset.cells.find((c) => c.name === spec.cell)!;
    const want = spec.attention === cell.planted.gate ? 0.05 * (spec.n / 40) ** -0.5 : 0.05;
    assert.ok(Math.abs(spec.moe.noise! - want) < 1e-15);
    assert.equal(cellNoise(cell, 0.05, spec.attention, spec.n), spec.moe.noise);
  }
  const records = grid.map((spec) => ({ spec, result: runMoe(spec.moe) }));
  const a = analyzePaperStudy(preset, records);
  // The same fits with nothing planted: the gates' own difference at these n and seeds.
  const none = {
    ...preset,
    cells: preset.cells.map((c) => ({ ...c, planted: { ...c.planted, exponent: 0 } })),
  };
  const flat = analyzePaperStudy(
    none,
    paperGrid(none).map((spec) => ({ spec, result: runMoe(spec.moe) })),
  );
  a.cells.forEach((cell, i) => {
    const sign = cell.planted!.gate === "sigmoid" ? -1 : 1;
    assert.equal(cell.verdict, "detected", cell.verdictText);
    assert.equal(cell.matched!.verdict, "detected");
    assert.equal(cell.holmP, undefined);
    // What planting moved: the slope difference by the planted ∓1/2 (fits at these small n
    // are not yet exactly parametric, hence the tolerance).
    const moved = cell.matched!.difference.estimate - flat.cells[i].matched!.difference.estimate;
    assert.ok(Math.abs(moved - sign * 0.5) < 0.2, `${cell.cell}: moved by ${moved}`);
    // Unplanted, the verdict is not "detected": it comes from the data, not the role.
    assert.equal(flat.cells[i].verdict, "missed", flat.cells[i].verdictText);
  });
});
