/**
 * The Voronoi loss (training/moe/voronoi.ts) on hand-computed cases: zero at
 * the truth and at exact splits of it, invariant to the order of the fitted
 * atoms and (softmax) to a common shift of the gates, its exact value on a
 * constructed over-specified fit, and the rate it shows on a synthetic
 * sequence of fits.
 */

import assert from "node:assert/strict";
import { type Atom, type MoeSpec, packAtoms, trueAtoms } from "../training/moe/model.ts";
import { cellPower, voronoiLoss } from "../training/moe/voronoi.ts";
import { logLogSlope } from "../training/study/stats.ts";

const sig = (s: number) => 1 / (1 + Math.exp(-s));
const copy = (a: Atom): Atom => ({ ...a, A: [...a.A], b: [...a.b], a: [...a.a] });

function spec(gate: MoeSpec["gate"], expert: MoeSpec["expert"], experts: number): MoeSpec {
  return { gate, expert, score: "partially", dim: 2, experts };
}

Deno.test("the loss is 0 at the truth and at an exact split of a true atom", () => {
  for (const gate of ["sigmoid", "softmax"] as const) {
    for (const expert of ["linear", "ffn"] as const) {
      for (const regime of ["dense", "sparse"] as const) {
        const t = trueAtoms(regime);
        const truth = packAtoms(spec(gate, expert, 2), t);
        assert.ok(voronoiLoss(spec(gate, expert, 2), truth, truth).value < 1e-15);
        // Split atom 0 into two copies carrying its mass between them.
        const [x, y] = [copy(t[0]), copy(t[0])];
        if (gate === "softmax") {
          x.c = t[0].c + Math.log(0.3);
          y.c = t[0].c + Math.log(0.7);
        } else {
          const m = sig(t[0].c);
          x.c = Math.log((0.3 * m) / (1 - 0.3 * m));
          y.c = Math.log((0.7 * m) / (1 - 0.7 * m));
        }
        const split = packAtoms(spec(gate, expert, 3), [x, t[1], y]);
        const loss = voronoiLoss(spec(gate, expert, 3), split, truth);
        assert.ok(loss.value < 1e-12, `${gate} ${expert} ${regime}: ${loss.value}`);
        assert.deepEqual(loss.cells, [[0, 2], [1]]);
      }
    }
  }
});

Deno.test("the loss does not depend on the order of the fitted atoms, nor (softmax) on a common gate shift", () => {
  const t = trueAtoms("dense");
  const fitted = [copy(t[0]), copy(t[1]), copy(t[0])];
  fitted[0].A[0] += 0.3;
  fitted[1].a[1] -= 0.2;
  fitted[2].e += 0.1;
  fitted[2].c -= 1;
  for (const gate of ["sigmoid", "softmax"] as const) {
    const s = spec(gate, "linear", 3);
    const truth = packAtoms(spec(gate, "linear", 2), t);
    const ref = voronoiLoss(s, packAtoms(s, fitted), truth).value;
    for (const order of [[2, 0, 1], [1, 2, 0], [2, 1, 0]]) {
      const v = voronoiLoss(s, packAtoms(s, order.map((i) => fitted[i])), truth).value;
      assert.ok(Math.abs(v - ref) <= 1e-12 * ref, `${gate} order ${order}: ${v} vs ${ref}`);
    }
    if (gate === "softmax") {
      const shifted = fitted.map((a) => ({
        ...copy(a),
        A: a.A.map((v, i) => v + [0.4, -0.2, 0.7][i]),
        c: a.c + 1.3,
      }));
      const v = voronoiLoss(s, packAtoms(s, shifted), truth).value;
      assert.ok(Math.abs(v - ref) <= 1e-12 * ref, `shifted: ${v} vs ${ref}`);
    }
  }
});

Deno.test("the exact value on a constructed over-specified fit (sigmoid)", () => {
  const t = trueAtoms("dense");
  // Cell of atom 0 holds two fitted atoms (gate mass 1/2 each), cell of atom 1 one.
  const f1 = copy(t[0]), f2 = copy(t[0]), f3 = copy(t[1]);
  f1.A[0] += 0.1; // ‖ΔA‖ = 0.1
  f2.a[1] += 0.2; // ‖Δexpert‖ = 0.2
  f1.c = f2.c = 0; // σ(0) = 1/2
  f3.e += 0.3; // ‖Δexpert‖ = 0.3, same c as the truth
  const mass = 1 - sig(0.5); // |1/2 + 1/2 − σ(0.5)| + |σ(−0.5) − σ(−0.5)|
  const single = sig(-0.5) * 0.3;
  const cases = [
    { expert: "ffn" as const, multi: 0.5 * 0.1 ** 2 + 0.5 * 0.2 ** 2 },
    { expert: "linear" as const, multi: 0.5 * 0.1 ** 4 + 0.5 * 0.2 ** 4 },
  ];
  for (const { expert, multi } of cases) {
    const s = spec("sigmoid", expert, 3);
    const loss = voronoiLoss(
      s,
      packAtoms(s, [f1, f3, f2]),
      packAtoms(spec("sigmoid", expert, 2), t),
    );
    assert.deepEqual(loss.cells, [[0, 2], [1]]);
    assert.ok(Math.abs(loss.mass - mass) < 1e-15);
    assert.ok(Math.abs(loss.single - single) < 1e-15);
    assert.ok(Math.abs(loss.multi - multi) < 1e-15, `${expert}: ${loss.multi} vs ${multi}`);
    assert.ok(Math.abs(loss.value - (mass + single + multi)) < 1e-15);
  }
  // By hand: 0.3775406688 + 0.1132622006 + 0.025 for GELU experts.
  assert.ok(Math.abs(mass + single + 0.025 - 0.5158028694) < 1e-10);
  assert.equal(cellPower("ffn", 2), 2);
  assert.equal(cellPower("linear", 2), 4);
  assert.equal(cellPower("linear", 3), 6);
  assert.equal(cellPower("linear", 1), 1);
});

Deno.test("on fits whose split atoms sit n^-1/4 and single atoms n^-1/2 from the truth, the loss falls as n^-1/2", () => {
  const t = trueAtoms("dense");
  for (const expert of ["ffn", "linear"] as const) {
    const ns = [100, 400, 1600, 6400, 25600];
    const values = ns.map((n) => {
      const split = expert === "ffn" ? n ** -0.25 : n ** -0.125; // r = 2, or r̄(2) = 4
      const f1 = copy(t[0]), f2 = copy(t[0]), f3 = copy(t[1]);
      f1.a[0] += split;
      f2.a[0] -= split;
      const m = sig(t[0].c) / 2;
      f1.c = f2.c = Math.log(m / (1 - m)); // exact mass split: no mass term
      f3.A[2] += n ** -0.5;
      const s = spec("sigmoid", expert, 3);
      return voronoiLoss(s, packAtoms(s, [f1, f2, f3]), packAtoms(spec("sigmoid", expert, 2), t))
        .value;
    });
    const fit = logLogSlope(ns, values);
    assert.ok(Math.abs(fit.slope + 0.5) < 1e-9, `${expert}: slope ${fit.slope}`);
  }
});

Deno.test("bad shapes are rejected with a message naming them", () => {
  const s = spec("sigmoid", "ffn", 2);
  assert.throws(
    () => voronoiLoss(s, new Float64Array(5), new Float64Array(14)),
    /fitted and truth must hold whole atoms/,
  );
});
