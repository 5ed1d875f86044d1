/**
 * The study's Markdown summary (study.md): the tables the README quotes.
 *
 * @module
 */

import type {
  PaperAnalysis,
  PaperCellAnalysis,
  StudyAnalysis,
  TaskAnalysis,
  TeacherAnalysis,
} from "../training/study/analyze.ts";
import type { CensoredSamples, Interval } from "../training/study/stats.ts";

/** `0.912 [0.890, 0.931]`, in the number format `f`. */
function ci(i: Interval | undefined, f: (x: number) => string): string {
  return i === undefined ? "—" : `${f(i.estimate)} [${f(i.low)}, ${f(i.high)}]`;
}

const fixed = (digits: number) => (x: number) => x.toFixed(digits);
const sci = (
  x: number,
) => (Math.abs(x) >= 0.01 && Math.abs(x) < 100 ? x.toFixed(3) : x.toExponential(2));
const signed = (f: (x: number) => string) => (x: number) => (x > 0 ? "+" : "") + f(x);

/** Whether an interval lies wholly on one side of zero. */
function verdict(i: Interval, lowerIsBetterForSigmoid: boolean): string {
  if (i.low > 0) return lowerIsBetterForSigmoid ? "softmax better" : "sigmoid better";
  if (i.high < 0) return lowerIsBetterForSigmoid ? "sigmoid better" : "softmax better";
  return "no difference";
}

/** `256 [128, > 1024], 3 censored`. */
function censoredText(c: CensoredSamples | undefined | null): string {
  if (!c) return "—";
  const f = (x: number | null) => x === null || x === Infinity ? `> ${c.maxN}` : String(x);
  return `${f(c.median)} [${f(c.lo)}, ${f(c.hi)}], ${c.censored} censored`;
}

/** `18/20`, or a dash for analyses made before runs recorded convergence. */
function convergedText(c: { runs: number; converged: number } | undefined): string {
  return c ? `${c.converged}/${c.runs}` : "—";
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

function teacherSection(cells: TeacherAnalysis[]): string[] {
  if (cells.length === 0) return [];
  const out = [
    "### Teacher–student (the paper's mixture-of-experts setting)",
    "",
    "Function error ‖Ŷ − Y*‖² on fresh inputs (noiseless targets) at the end of each run, " +
    "mean over seeds [t 95% interval]; slope = fitted exponent of error ∝ n^slope " +
    "(cluster bootstrap over seeds; more negative = faster convergence).",
    "",
  ];
  const rows: string[][] = [];
  for (const c of cells) {
    for (const curve of c.curves) {
      const last = curve.points.at(-1)!;
      rows.push([
        `${c.teacherActivation}${c.studentHeads > 1 ? ` (student ${c.studentHeads} heads)` : ""}`,
        c.expert,
        curve.student,
        ci(curve.slopes.functionError, fixed(2)),
        ci(curve.slopes.gating, fixed(2)),
        ci(curve.slopes.value, fixed(2)),
        `${ci(last.functionError, sci)} at n=${last.n}`,
        convergedText(curve.convergence),
      ]);
    }
  }
  out.push(table(
    [
      "teacher",
      "experts",
      "student",
      "slope: function error",
      "slope: gating A",
      "slope: W_V",
      "function error",
      "converged runs",
    ],
    rows,
  ));
  out.push("");
  out.push(
    "Paired difference of the function error, sigmoid student − softmax student (same seeds):",
  );
  out.push("");
  const ns = [...new Set(cells.flatMap((c) => c.paired.map((p) => p.n)))].sort((a, b) => a - b);
  out.push(table(
    ["teacher", "experts", ...ns.map((n) => `n=${n}`)],
    cells.map((c) => [
      `${c.teacherActivation}${c.studentHeads > 1 ? ` (${c.studentHeads} heads)` : ""}`,
      c.expert,
      ...ns.map((n) => {
        const p = c.paired.find((q) => q.n === n);
        return p ? `${ci(p.difference, signed(sci))} ${verdict(p.difference, true)}` : "—";
      }),
    ]),
  ));
  out.push("");
  return out;
}

function taskSection(cells: TaskAnalysis[]): string[] {
  if (cells.length === 0) return [];
  const out = [
    "### Tasks",
    "",
    "Test metric at the end of each run, mean over seeds [t 95% interval], and the " +
    "paired difference sigmoid − softmax on the same seeds.",
    "",
  ];
  const ns = [...new Set(cells.flatMap((c) => c.curves.flatMap((k) => k.points.map((p) => p.n))))]
    .sort((a, b) => a - b);
  const rows: string[][] = [];
  for (const c of cells) {
    for (const curve of c.curves) {
      rows.push([
        c.task,
        curve.activation,
        ...ns.map((n) => ci(curve.points.find((p) => p.n === n)?.metric, fixed(3))),
      ]);
    }
    rows.push([
      c.task,
      "sigmoid − softmax",
      ...ns.map((n) => {
        const p = c.paired.find((q) => q.n === n);
        return p
          ? `${ci(p.difference, signed(fixed(3)))} ${verdict(p.difference, !c.higherIsBetter)}`
          : "—";
      }),
    ]);
  }
  out.push(table(["task", "attention", ...ns.map((n) => `n=${n}`)], rows));
  out.push("");
  out.push(
    "Samples to target: per seed, the smallest n whose test metric reached the target " +
      "(median over all seeds, a seed that never reached it counted as right-censored at > the " +
      "largest n [distribution-free 95% interval]); steps to target: the " +
      "first evaluation that reached it, at the largest n.",
  );
  out.push("");
  const targetRows: string[][] = [];
  for (const c of cells) {
    if (c.target === undefined) continue;
    for (const curve of c.curves) {
      const reached = curve.samplesToTarget.filter((x) => x !== null).length;
      const last = curve.stepsToTarget.at(-1);
      targetRows.push([
        c.task,
        `${c.metricName} ≥ ${c.target}`,
        curve.activation,
        `${reached}/${curve.samplesToTarget.length}`,
        censoredText(curve.samplesToTargetMedian),
        convergedText(curve.convergence),
        last ? `${last.reached}/${last.runs}: ${ci(last.steps, fixed(0))} (n=${last.n})` : "—",
      ]);
    }
  }
  out.push(table(
    [
      "task",
      "target",
      "attention",
      "seeds reaching it",
      "samples to target",
      "converged runs",
      "steps to target",
    ],
    targetRows,
  ));
  out.push("");
  return out;
}

/** The Markdown summary of an analysis. */
export function studyMarkdown(a: StudyAnalysis): string {
  return [
    `## Sample-efficiency study: \`${a.preset}\` preset`,
    "",
    `${a.runs} runs (seeds ${a.seeds.join(", ")}; each seed shared by both activations), ` +
    `${
      (a.trainingSeconds / 60).toFixed(1)
    } minutes of training on ${a.adapter}; analysed ${a.date}.`,
    "",
    ...teacherSection(a.teacher),
    ...taskSection(a.tasks),
  ].join("\n");
}

/** A cell's name in words. */
export function paperCellTitle(c: Pick<PaperCellAnalysis, "fit" | "regime" | "expert" | "score">) {
  return `${c.fit === "over" ? "over-specified (k* + 1)" : "exact-specified (k*)"}, ${c.regime} ` +
    `regime, ${c.expert === "ffn" ? "GELU" : "linear"} experts, ${c.score} quadratic score`;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** A paper cell's role as the report names it. */
export function roleName(role: PaperCellAnalysis["role"]): string {
  return role === "control" ? "null control" : role === "planted" ? "positive control" : role;
}

/** The Markdown summary of a paper-study analysis: the slope table, the verdicts, the diagnostics. */
export function paperMarkdown(a: PaperAnalysis): string {
  const cells = a.cells;
  const slope = (c: PaperCellAnalysis, gate: "sigmoid" | "softmax") => {
    const curve = c.curves.find((k) => k.gate === gate);
    return curve ? ci(curve.slope, fixed(3)) : "—";
  };
  const slopeRows = cells.map((c) => [
    c.cell,
    roleName(c.role),
    slope(c, "sigmoid"),
    slope(c, "softmax"),
    c.difference
      ? ci({ ...c.difference, low: c.difference.lo, high: c.difference.hi }, signed(fixed(3)))
      : "—",
    c.difference ? ci(c.difference.bootstrap, signed(fixed(3))) : "—",
    c.holmP !== undefined
      ? c.holmP.toPrecision(2)
      : c.difference
      ? `(${c.difference.pValue.toPrecision(2)})`
      : "—",
    c.mde !== undefined ? fixed(2)(c.mde) : "—",
    `${c.seeds.length}`,
    c.verdict,
  ]);
  const matchedRows = cells.filter((c) => c.matched).map((c) => {
    const m = c.matched!, d = m.difference;
    const curve = (g: "sigmoid" | "softmax") => c.curves.find((k) => k.gate === g)!;
    const sl = (g: "sigmoid" | "softmax") => ci(curve(g).matched!.slope, fixed(3));
    const extra = (g: "sigmoid" | "softmax") => {
      const e = curve(g).extraTerm;
      return e ? ci(e.slope, fixed(2)) : "—";
    };
    return [
      c.cell,
      roleName(c.role),
      sl("sigmoid"),
      sl("softmax"),
      ci({ ...d, low: d.lo, high: d.hi }, signed(fixed(3))),
      m.holmP !== undefined ? m.holmP.toPrecision(2) : `(${d.pValue.toPrecision(2)})`,
      fixed(2)(m.mde),
      extra("sigmoid"),
      extra("softmax"),
      m.verdict,
    ];
  });
  const matchedSection = matchedRows.length
    ? [
      "### A gate-neutral endpoint: the matched-atom error",
      "",
      "Each true atom is paired with a distinct fitted atom, by the pairing that makes the worst " +
      "pair closest; the endpoint is that worst pair's parameter distance (gate terms without " +
      "the constant, and the expert; softmax gates aligned by their common shift), with no gate " +
      "weights or powers (training/moe/matched.ts; our definition, beside our reading of the " +
      "papers' Voronoi loss). The extra term is the RMS over held-out inputs of what the " +
      "unpaired atom adds to f̂: it falls when the extra atom fades and stays when it splits a " +
      "true expert. Slopes as above; Holm across the primary cells for this endpoint on its own; " +
      "MDE: the smallest slope difference the test detects with 80% power at the level of " +
      "Holm's first step.",
      "",
      table(
        [
          "cell",
          "role",
          "sigmoid slope",
          "softmax slope",
          "difference (t)",
          "Holm p",
          "MDE",
          "extra term slope, sigmoid",
          "extra term slope, softmax",
          "verdict",
        ],
        matchedRows,
      ),
      "",
      "Local slopes of the matched-atom error (windows of 3 consecutive n):",
      "",
      table(
        ["cell", "gate", "windows: slope [t 95%]"],
        cells.filter((c) => c.matched).flatMap((c) =>
          c.curves.map((k) => [
            c.cell,
            k.gate,
            k.matched!.localSlopes.map((w) =>
              `${w.nFrom}–${w.nTo}: ${w.slope.toFixed(2)} [${w.lo.toFixed(2)}, ${w.hi.toFixed(2)}]`
            ).join("; ") || "—",
          ])
        ),
      ),
      "",
      "Geometric mean over seeds of the matched-atom error per n:",
      "",
      table(
        ["cell", "gate", ...(cells.find((c) => c.matched)?.ns ?? []).map((n) => `n=${n}`)],
        cells.filter((c) => c.matched).flatMap((c) =>
          c.curves.map((k) => [
            c.cell,
            k.gate,
            ...k.matched!.points.map((p) => sci(p.value.estimate)),
          ])
        ),
      ),
      "",
    ]
    : [];
  const feRows = cells.filter((c) => c.curves.length).map((c) => {
    const f = (g: "sigmoid" | "softmax") =>
      ci(c.curves.find((k) => k.gate === g)!.functionErrorSlope, fixed(3));
    return [
      c.cell,
      f("sigmoid"),
      f("softmax"),
      c.functionErrorDifference
        ? ci({
          ...c.functionErrorDifference,
          low: c.functionErrorDifference.lo,
          high: c.functionErrorDifference.hi,
        }, signed(fixed(3)))
        : "—",
    ];
  });
  const diagRows = cells.flatMap((c) =>
    c.curves.map((k) => [
      c.cell,
      k.gate,
      `${k.convergence.runs - k.convergence.converged} / ${k.convergence.runs}`,
      pct(k.convergence.nonConvergenceRate),
      Object.entries(k.winners).sort().map(([s, m]) => `${s} ${m}`).join(", "),
      k.atBound === undefined ? "—" : `${k.atBound} / ${k.convergence.runs}`,
      k.multiDominated === undefined ? "—" : `${k.multiDominated} / ${k.convergence.runs}`,
    ])
  );
  const localRows = cells.flatMap((c) =>
    c.curves.map((k) => [
      c.cell,
      k.gate,
      k.localSlopes.map((w) =>
        `${w.nFrom}–${w.nTo}: ${w.slope.toFixed(2)} [${w.lo.toFixed(2)}, ${w.hi.toFixed(2)}]`
      ).join("; ") || "—",
    ])
  );
  const curveRows = cells.flatMap((c) =>
    c.curves.map((k) => [c.cell, k.gate, ...k.points.map((p) => sci(p.voronoi.estimate))])
  );
  const ns = cells.find((c) => c.curves.length)?.ns ?? [];
  const nullRows = cells.flatMap((c) => (c.nullRemoved ?? []).map((s, t) => ({ c, s, t })))
    .map(({ c, s, t }) => {
      const d = s.difference;
      const count = (g: "sigmoid" | "softmax") => {
        const k = c.curves.find((q) => q.gate === g)!;
        return `${k.nullFits?.[t]?.fits ?? "—"} / ${k.convergence.runs}`;
      };
      return [
        c.cell,
        `${s.tolerance}`,
        count("sigmoid"),
        count("softmax"),
        c.difference
          ? ci({ ...c.difference, low: c.difference.lo, high: c.difference.hi }, signed(fixed(3)))
          : "—",
        ci({ ...d, low: d.lo, high: d.hi }, signed(fixed(3))),
        s.holmP !== undefined ? s.holmP.toPrecision(2) : `(${d.pValue.toPrecision(2)})`,
        `${c.verdict} → ${s.verdict}`,
      ];
    });
  const nullSection = nullRows.length
    ? [
      "### Sensitivity check: null experts removed (not the primary result)",
      "",
      "A fitted atom is null when its term of f is negligible on the held-out inputs: " +
      "max_x |g_i(x) h_i(x)| ≤ tolerance · max_x |f*(x)| (training/moe/voronoi.ts nullAtoms). Under " +
      "sigmoid gating such an atom (e.g. a zero-output expert) leaves f unchanged, yet the " +
      "Voronoi loss weights it by σ(c) and compares its parameters with its nearest true atom's, " +
      "so it can give an exact fit a large loss. Here each fit's null atoms are removed from the " +
      "stored parameters (no refitting) before its Voronoi loss is computed, and the slope " +
      "difference is taken as above (t over seeds; Holm across the primary cells). Null fits: " +
      "fits with at least one null atom. Under sigmoid, removing a null atom moves f by at most " +
      "tolerance · max |f*| everywhere; under softmax it also renormalises the other gates.",
      "",
      table(
        [
          "cell",
          "tolerance",
          "null fits, sigmoid",
          "null fits, softmax",
          "difference (t), as fitted",
          "difference (t), nulls removed",
          "Holm p, nulls removed",
          "verdict: as fitted → nulls removed",
        ],
        nullRows,
      ),
      "",
    ]
    : [];
  return [
    `## The paper study: \`${a.preset}\` preset`,
    "",
    `${a.runs} least-squares fits (seeds ${a.seeds.join(", ")}; noise σ = ${a.noise}; the ` +
    `truth-split start and ${a.randomStarts} random ones per fit), ${
      (a.fitSeconds / 60).toFixed(1)
    } minutes of fitting in all; analysed ${a.date}. Not converged: ${
      a.convergence.runs - a.convergence.converged
    } of ${a.convergence.runs} fits (${pct(a.convergence.nonConvergenceRate)}).`,
    "",
    "### Slopes of the Voronoi loss against n",
    "",
    "Per seed, the least-squares slope of ln D on ln n; mean over seeds with its t 95% interval. " +
    "Difference = sigmoid − softmax, paired by seed (negative: sigmoid's loss falls faster), " +
    "with the t interval over seeds and the paired-seed BCa bootstrap. Holm p: adjusted across " +
    `the primary (over-specified) cells, family-wise α = ${a.alpha}; in parentheses the ` +
    "unadjusted p of a control. MDE: the smallest slope difference the test detects with 80% " +
    "power at the level of Holm's first step (α divided by the number of primary cells; α for " +
    "a control), given how the per-seed differences spread: a true difference at least that " +
    "large would be detected with 80% probability; the interval gives the plausible range. " +
    "Each endpoint is its own Holm family.",
    "",
    table(
      [
        "cell",
        "role",
        "sigmoid slope",
        "softmax slope",
        "difference (t)",
        "difference (BCa)",
        "Holm p",
        "MDE",
        "seeds",
        "verdict",
      ],
      slopeRows,
    ),
    "",
    ...cells.map((c) =>
      `- **${c.cell}** (${paperCellTitle(c)}): ${c.verdictText}.` +
      (c.incompleteSeeds.length
        ? ` Seeds not analysed (runs missing): ${c.incompleteSeeds.join(", ")}.`
        : "")
    ),
    "",
    ...matchedSection,
    "### Geometric mean of the Voronoi loss per n",
    "",
    table(["cell", "gate", ...ns.map((n) => `n=${n}`)], curveRows),
    "",
    "### Function error (mean squared f̂ − f* on held-out inputs): slopes",
    "",
    "Parametric for both gates in every cell (about −1): a check that the fits reach the estimator.",
    "",
    table(["cell", "sigmoid", "softmax", "difference"], feRows),
    "",
    ...nullSection,
    "### Local slopes of the Voronoi loss (windows of 3 consecutive n)",
    "",
    "A power law keeps one slope across windows; a logarithmic rate drifts towards 0.",
    "",
    table(["cell", "gate", "windows: slope [t 95%]"], localRows),
    "",
    "### Optimisation diagnostics",
    "",
    "Not converged = the kept start did not meet the stopping rule (projected gradient max-norm " +
    `and relative loss change; ${JSON.stringify(a.stopping)}). Winners: which start had the ` +
    "lowest training loss. On the bound: fits with a parameter on the box bound. Multi-expert " +
    "share: fits whose Voronoi loss is more than half from cells holding several fitted experts.",
    "",
    table(
      [
        "cell",
        "gate",
        "not converged",
        "rate",
        "winning start",
        "on the bound",
        "multi-expert share",
      ],
      diagRows,
    ),
    "",
  ].join("\n");
}
