/**
 * The study's HTML page (study.html): a self-contained, offline view of a
 * {@linkcode StudyAnalysis}, with Chart.js inlined (the same `npm:chart.js`
 * UMD build as the throughput report, bench/report.ts) and the analysis
 * embedded as JSON (`<script type="application/json" id="sigmax-study">`).
 *
 * - **Header**: preset, runs, seeds, training minutes, adapter, date.
 * - **Teacher cells**: per cell, three log-log charts (n on a log₂ axis, the
 *   error on a log axis) of the function error, the gating (A) and the value
 *   (W_V) parameter errors, one line per student activation with its shaded
 *   95% interval band; a slope table (student × metric: slope [low, high]) and
 *   the paired difference sigmoid − softmax of the function error per n.
 * - **Task cells**: per cell, the metric against n (log₂ axis) with interval
 *   bands, the target as a dashed line and chance as a dotted one; the
 *   samples-to-target table, the steps-to-target table per n and the paired
 *   difference table (sigmoid − softmax, and whether the interval excludes 0).
 *
 * A section or chart without data is a note instead. Each canvas has a stable
 * id: `chart-teacher-CELL-(function-error|gating|value)` and
 * `chart-task-CELL`. The page sets `window.__sigmaxCharts` to the number of
 * charts it drew and logs nothing when all went well; a chart that fails is
 * replaced by a note and reported with `console.error`.
 *
 * The Markdown summary of the same data is {@linkcode studyMarkdown}
 * (bench/study_markdown.ts), re-exported here.
 *
 * @module
 */

import {
  analyzePaperStudy,
  analyzeStudy,
  type PaperAnalysis,
  type PaperCellAnalysis,
  type StudyAnalysis,
  type TaskAnalysis,
  type TeacherAnalysis,
  type TeacherCurve,
} from "../training/study/analyze.ts";
import type { RunSpec } from "../training/study/grid.ts";
import { type MoeRunRecord, readRuns, writeAtomic } from "../training/study/runner.ts";
import type { CensoredSamples, Interval } from "../training/study/stats.ts";
import {
  chartJsScript,
  escapeHtml,
  htmlTable as table,
  loadChartJs,
  type PageChart,
  type PageConfig,
  pageScripts,
  pageStyle,
  scriptJson,
} from "./page.ts";

import { paperCellTitle, paperMarkdown, roleName, studyMarkdown } from "./study_markdown.ts";
export { paperMarkdown, studyMarkdown };

type Act = "softmax" | "sigmoid";

const COLORS: Record<Act, string> = { softmax: "#1f77b4", sigmoid: "#e6550d" };
/** The interval bands: the line's color, translucent. */
const BANDS: Record<Act, string> = {
  softmax: "rgba(31, 119, 180, 0.18)",
  sigmoid: "rgba(230, 85, 13, 0.18)",
};

/** One point of a line with its interval. */
interface BandPoint {
  n: number;
  y: number;
  low: number | null;
  high: number | null;
}

/** What the page script draws: one chart. */
interface ChartSpec {
  id: string;
  title: string;
  yTitle: string;
  /** Log y axis (the teacher's errors) or linear (the tasks' metrics). */
  yLog: boolean;
  /** How the page formats values in tooltips. */
  format: "sci" | "fixed";
  series: { label: string; color: string; band: string; points: BandPoint[]; dash?: number[] }[];
  /** The x axis title (default: training sequences). */
  xTitle?: string;
  /** Horizontal reference lines: the target (dashed) and chance (dotted). */
  lines: { label: string; y: number; color: string; dash: number[] }[];
}

// ---------------------------------------------------------------------------
// Formatting

function finite(x: unknown): x is number {
  return typeof x === "number" && Number.isFinite(x);
}

const sci = (x: number): string =>
  Math.abs(x) >= 0.01 && Math.abs(x) < 100 ? x.toFixed(3) : x === 0 ? "0" : x.toExponential(2);
const fixed = (digits: number) => (x: number): string => x.toFixed(digits);
const signed = (f: (x: number) => string) => (x: number): string => (x > 0 ? "+" : "") + f(x);

const DASH = "—";

/** `0.912 [0.890, 0.931]`; a dash when there is no interval (or JSON turned NaN into null). */
function ci(i: Interval | undefined | null, f: (x: number) => string): string {
  if (!i || !finite(i.estimate)) return DASH;
  const bound = (x: unknown) => (finite(x) ? f(x) : "?");
  return `${f(i.estimate)} [${bound(i.low)}, ${bound(i.high)}]`;
}

/** Whether the interval lies wholly above or below zero. */
function excludesZero(i: Interval): boolean {
  return finite(i.low) && finite(i.high) && (i.low > 0 || i.high < 0);
}

/** Which activation the paired difference sigmoid − softmax favours, if its interval excludes 0. */
function verdict(i: Interval, higherIsBetter: boolean): string {
  if (!excludesZero(i)) return "no difference";
  const sigmoidHigher = i.low > 0;
  return sigmoidHigher === higherIsBetter ? "sigmoid better" : "softmax better";
}

/** `256 [128, > 1024], 3 censored`: a censored median and its interval; a dash without one. */
function censoredText(c: CensoredSamples | undefined | null): string {
  if (!c) return DASH;
  const f = (x: number | null) => x === null || x === Infinity ? `> ${c.maxN}` : String(x);
  return `${f(c.median)} [${f(c.lo)}, ${f(c.hi)}], ${c.censored} censored`;
}

function levelText(level: number | undefined): string {
  return finite(level) ? `${Math.round(level * 100)}%` : "95%";
}

const note = (text: string): string => `<p class="note">${escapeHtml(text)}</p>`;

/** A canvas id fragment: the name with anything but letters, digits, `_` and `-` replaced. */
function slug(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, "_") || "_";
}

/** Makes ids unique within one page. */
function idMaker(): (base: string) => string {
  const used = new Set<string>();
  return (base) => {
    let id = base;
    for (let k = 2; used.has(id); k++) id = `${base}-${k}`;
    used.add(id);
    return id;
  };
}

function figure(spec: ChartSpec, label: string): string {
  return `<figure class="chart"><canvas id="${escapeHtml(spec.id)}" role="img" aria-label="${
    escapeHtml(label)
  }"></canvas></figure>`;
}

/**
 * A line's points: the estimate and its interval per n. On a log axis a
 * non-positive estimate cannot be drawn (the point is left out) and a
 * non-positive bound leaves a gap in the band.
 */
function bandPoints(
  points: { n: number; ci: Interval | undefined | null }[],
  log: boolean,
): BandPoint[] {
  const ok = (x: unknown): x is number => finite(x) && (!log || x > 0);
  return points
    .filter((p) => finite(p.n) && p.n > 0 && p.ci && ok(p.ci.estimate))
    .map((p) => ({
      n: p.n,
      y: p.ci!.estimate,
      low: ok(p.ci!.low) ? p.ci!.low : null,
      high: ok(p.ci!.high) ? p.ci!.high : null,
    }));
}

// ---------------------------------------------------------------------------
// Teacher cells

const TEACHER_METRICS = [
  {
    key: "functionError",
    slug: "function-error",
    name: "function error",
    yTitle: "function error ‖Ŷ − Y*‖²",
  },
  {
    key: "gating",
    slug: "gating",
    name: "gating A error",
    yTitle: "gating error, A = W_Q W_Kᵀ/√r",
  },
  { key: "value", slug: "value", name: "value W_V error", yTitle: "value error, W_V" },
] as const;

function teacherTitle(c: TeacherAnalysis): string {
  return `teacher ${c.teacherActivation}, ${c.expert} experts` +
    (c.studentHeads > 1 ? `, student ${c.studentHeads} heads` : "");
}

function curveOf(c: TeacherAnalysis, act: Act): TeacherCurve | undefined {
  return (c.curves ?? []).find((k) => k.student === act);
}

function teacherCell(c: TeacherAnalysis, id: (base: string) => string, specs: ChartSpec[]): string {
  const title = teacherTitle(c);
  const figures: string[] = [];
  const notes: string[] = [];
  for (const m of TEACHER_METRICS) {
    const series = (["softmax", "sigmoid"] as const).flatMap((act) => {
      const curve = curveOf(c, act);
      const points = bandPoints((curve?.points ?? []).map((p) => ({ n: p.n, ci: p[m.key] })), true);
      return points.length === 0
        ? []
        : [{ label: `${act} student`, color: COLORS[act], band: BANDS[act], points }];
    });
    if (series.length === 0) {
      notes.push(`Not drawn: ${m.name} has no positive value to draw on a log scale.`);
      continue;
    }
    const spec: ChartSpec = {
      id: id(`chart-teacher-${slug(c.cell)}-${m.slug}`),
      title: `${m.name}: ${title}`,
      yTitle: `${m.yTitle} (log scale)`,
      yLog: true,
      format: "sci",
      series,
      lines: [],
    };
    specs.push(spec);
    figures.push(figure(spec, `${m.name} against n, ${title}`));
  }
  const level = levelText(c.curves?.[0]?.points?.[0]?.functionError?.level);
  const slopeRows = (["softmax", "sigmoid"] as const).flatMap((act) => {
    const s = curveOf(c, act)?.slopes;
    if (!s) return [];
    return [[
      escapeHtml(act),
      ci(s.functionError, fixed(2)),
      ci(s.gating, fixed(2)),
      ci(s.value, fixed(2)),
      ci(s.voronoi, fixed(2)),
    ]];
  });
  const paired = c.paired ?? [];
  return `<section class="cell" id="teacher-${escapeHtml(slug(c.cell))}">
<h3>${escapeHtml(title)} <span class="muted">(cell ${escapeHtml(c.cell)})</span></h3>
<p class="about">Mean over seeds with its t ${level} interval (shaded), at the end of each run. ` +
    `Chance (predicting 0): function error ${
      escapeHtml(finite(c.chance) ? sci(c.chance) : DASH)
    }.</p>
${figures.length > 0 ? `<div class="grid">\n${figures.join("\n")}\n</div>` : ""}
${notes.map(note).join("\n")}
<h4>Log-log slopes (error ∝ n<sup>slope</sup>)</h4>
${
      slopeRows.length > 0
        ? table(
          ["student", "function error", "gating A", "value W_V", "Voronoi loss"],
          slopeRows,
          [false, true, true, true, true],
        )
        : note("No slopes: the cell has no curves.")
    }
<h4>Paired difference of the function error, sigmoid − softmax student</h4>
${
      paired.length > 0
        ? table(
          ["n", `sigmoid − softmax [${level}]`, "excludes 0", "reading"],
          paired.map((p) => [
            String(p.n),
            ci(p.difference, signed(sci)),
            excludesZero(p.difference) ? "yes" : "no",
            verdict(p.difference, false),
          ]),
          [true, true, false, false],
        )
        : note("No paired runs: no n has both activations on the same seed.")
    }
</section>`;
}

function teacherSection(
  cells: TeacherAnalysis[],
  id: (base: string) => string,
  specs: ChartSpec[],
): string {
  const body = cells.length > 0
    ? cells.map((c) => teacherCell(c, id, specs)).join("\n")
    : note("No teacher cells in this analysis.");
  return `<section id="teacher">
<h2>Teacher–student (the paper's mixture-of-experts setting)</h2>
<p class="about">Function error on fresh inputs (noiseless targets) and parameter-recovery errors against the training-set size n, ` +
    `per student activation; log-log axes, so a straight line is a power law and its slope the convergence rate ` +
    `(more negative: faster). Slopes carry a cluster-bootstrap interval over seeds.</p>
${body}
</section>`;
}

// ---------------------------------------------------------------------------
// Task cells

function seedList(perSeed: (number | null)[] | undefined, seeds: number[]): string {
  if (!perSeed || perSeed.length === 0) return DASH;
  return perSeed.map((n, i) =>
    `${seeds.length === perSeed.length ? `s${seeds[i]}: ` : ""}${n === null ? DASH : String(n)}`
  ).join(", ");
}

function taskCell(
  c: TaskAnalysis,
  seeds: number[],
  id: (base: string) => string,
  specs: ChartSpec[],
): string {
  const curves = c.curves ?? [];
  const hasTarget = finite(c.target);
  const direction = c.higherIsBetter ? "≥" : "≤";
  const series = (["softmax", "sigmoid"] as const).flatMap((act) => {
    const curve = curves.find((k) => k.activation === act);
    const points = bandPoints((curve?.points ?? []).map((p) => ({ n: p.n, ci: p.metric })), false);
    return points.length === 0
      ? []
      : [{ label: act, color: COLORS[act], band: BANDS[act], points }];
  });
  const lines: ChartSpec["lines"] = [];
  if (hasTarget) {
    lines.push({
      label: `target ${direction} ${c.target}`,
      y: c.target!,
      color: "#2a7d2a",
      dash: [7, 4],
    });
  }
  if (finite(c.chance)) {
    lines.push({
      label: `chance ${fixed(3)(c.chance)}`,
      y: c.chance,
      color: "#777777",
      dash: [2, 3],
    });
  }
  const level = levelText(curves[0]?.points?.[0]?.metric?.level);
  let chart: string;
  if (series.length > 0) {
    const spec: ChartSpec = {
      id: id(`chart-task-${slug(c.cell)}`),
      title: `${c.task}: test ${c.metricName} against n`,
      yTitle: `test ${c.metricName}`,
      yLog: false,
      format: "fixed",
      series,
      lines,
    };
    specs.push(spec);
    chart = `<div class="grid">\n${figure(spec, `${c.task}: ${c.metricName} against n`)}\n</div>`;
  } else {
    chart = note(`Not drawn: ${c.task} has no metric values.`);
  }

  let targets: string;
  if (!hasTarget) {
    targets = note(
      `No target for ${c.task}: samples-to-target and steps-to-target are not defined.`,
    );
  } else {
    const samples = table(
      [
        "attention",
        "seeds reaching the target",
        `median n [${level}], misses censored`,
        "per seed",
      ],
      curves.map((k) => {
        const per = k.samplesToTarget ?? [];
        return [
          escapeHtml(k.activation),
          `${per.filter((x) => x !== null).length}/${per.length}`,
          escapeHtml(censoredText(k.samplesToTargetMedian)),
          escapeHtml(seedList(per, seeds)),
        ];
      }),
      [false, true, true, false],
    );
    const ns = [...new Set(curves.flatMap((k) => (k.stepsToTarget ?? []).map((s) => s.n)))]
      .sort((a, b) => a - b);
    const steps = ns.length > 0
      ? table(
        [
          "n",
          ...curves.flatMap((k) => [`${k.activation}: runs reaching it`, `${k.activation}: steps`]),
        ],
        ns.map((n) => [
          String(n),
          ...curves.flatMap((k) => {
            const s = (k.stepsToTarget ?? []).find((q) => q.n === n);
            return s ? [`${s.reached}/${s.runs}`, ci(s.steps, fixed(0))] : [DASH, DASH];
          }),
        ]),
        [true, ...curves.flatMap(() => [true, true])],
      )
      : note("No steps-to-target records.");
    targets = `<h4>Samples to target (${escapeHtml(c.metricName)} ${direction} ${c.target})</h4>
<p class="about">Per seed, the smallest n whose final test ${
      escapeHtml(c.metricName)
    } reached the target; the geometric mean over the seeds that reached it.</p>
${samples}
<h4>Steps to target, per n</h4>
<p class="about">Per run, the first evaluation that reached the target; the mean over the runs that did.</p>
${steps}`;
  }

  const paired = c.paired ?? [];
  const pairedTable = paired.length > 0
    ? table(
      ["n", `sigmoid − softmax [${level}]`, "excludes 0", "reading"],
      paired.map((p) => [
        String(p.n),
        ci(p.difference, signed(fixed(3))),
        excludesZero(p.difference) ? "yes" : "no",
        verdict(p.difference, c.higherIsBetter),
      ]),
      [true, true, false, false],
    )
    : note("No paired runs: no n has both activations on the same seed.");

  return `<section class="cell" id="task-${escapeHtml(slug(c.cell))}">
<h3>${escapeHtml(c.task)} <span class="muted">(cell ${escapeHtml(c.cell)}; ${
    escapeHtml(c.metricName)
  }, ${c.higherIsBetter ? "higher" : "lower"} is better)</span></h3>
${chart}
${targets}
<h4>Paired difference of the test ${escapeHtml(c.metricName)}, sigmoid − softmax</h4>
${pairedTable}
</section>`;
}

function taskSection(
  cells: TaskAnalysis[],
  seeds: number[],
  id: (base: string) => string,
  specs: ChartSpec[],
): string {
  const body = cells.length > 0
    ? cells.map((c) => taskCell(c, seeds, id, specs)).join("\n")
    : note("No task cells in this analysis.");
  return `<section id="tasks">
<h2>Tasks</h2>
<p class="about">The final test metric against the training-set size n (log₂ axis), mean over seeds with its ` +
    `t interval (shaded); dashed: the target, dotted: chance. Paired differences compare the two ` +
    `activations on the same seeds.</p>
${body}
</section>`;
}

// ---------------------------------------------------------------------------
// The page

const PAGE: PageConfig = {
  tag: "sigmax study",
  noteClass: "note chart-error",
  legendPointStyle: true,
};

/**
 * The page script's spec of a chart ({@linkcode PageChart}): x is n on the
 * log₂ axis, the y range fits the data, and a dashed series (a fitted line)
 * is thin, without points or band.
 */
function pageChart(spec: ChartSpec): PageChart {
  return {
    id: spec.id,
    title: spec.title,
    xTitle: spec.xTitle ?? "n, training sequences (log\u2082 scale)",
    xName: "n =",
    yTitle: spec.yTitle,
    yLog: spec.yLog,
    yRange: "fit",
    format: spec.format,
    series: spec.series.map((s) => ({
      label: s.label,
      color: s.color,
      ...(s.dash ? { dash: s.dash, thin: true } : { band: s.band }),
      points: s.points.map((p) => ({ x: p.n, y: p.y, low: p.low, high: p.high })),
    })),
    lines: spec.lines,
  };
}

const STYLE = pageStyle(320);

/**
 * The study's page: one self-contained HTML document (Chart.js inlined: the
 * UMD build of `npm:chart.js@4.6.1`, or `options.chartJs` when given, its
 * source text), the analysis embedded as JSON and no external URL, so it
 * opens offline. See the module documentation for what it shows.
 */
export async function studyHtml(
  analysis: StudyAnalysis,
  options: { chartJs?: string } = {},
): Promise<string> {
  const chartJs = chartJsScript(options.chartJs ?? await loadChartJs());
  const a = analysis;
  const teacher = a.teacher ?? [];
  const tasks = a.tasks ?? [];
  const seeds = a.seeds ?? [];
  const specs: ChartSpec[] = [];
  const id = idMaker();
  const teacherHtml = teacherSection(teacher, id, specs);
  const taskHtml = taskSection(tasks, seeds, id, specs);
  const minutes = finite(a.trainingSeconds)
    ? `${(a.trainingSeconds / 60).toFixed(1)} minutes`
    : DASH;
  const meta: [string, string][] = [
    ["preset", escapeHtml(String(a.preset))],
    ["runs", escapeHtml(String(a.runs))],
    ["seeds", escapeHtml(seeds.join(", ") || DASH)],
    ["training", `${escapeHtml(minutes)} (all runs together)`],
    ["adapter", escapeHtml(a.adapter || "(unknown)")],
    ["date", escapeHtml(String(a.date))],
  ];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sigmax study ${escapeHtml(String(a.preset))} — ${escapeHtml(String(a.adapter))}</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
${chartJs}
</head>
<body>
<h1>sigmax sample-efficiency study: softmax vs sigmoid attention</h1>
<p id="page-error" hidden></p>
<dl class="meta">
${meta.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("\n")}
</dl>
<nav>
<a href="#teacher">Teacher–student</a>
<a href="#tasks">Tasks</a>
</nav>
${teacherHtml}
${taskHtml}
<script type="application/json" id="sigmax-study">${scriptJson(a)}</script>
${pageScripts(specs.map(pageChart), PAGE)}
</body>
</html>
`;
}

/** Reads the runs in `dir`, analyses them and writes study.json, study.md and study.html there. */
export async function writeStudyReport(
  dir: string,
  preset: string,
  grid: RunSpec[],
): Promise<string[]> {
  const analysis = analyzeStudy(preset, grid, await readRuns(dir));
  const files = [`${dir}/study.json`, `${dir}/study.md`, `${dir}/study.html`];
  await writeAtomic(files[0], JSON.stringify(analysis, null, 1));
  await writeAtomic(files[1], studyMarkdown(analysis));
  await writeAtomic(files[2], await studyHtml(analysis));
  return files;
}

// ---------------------------------------------------------------------------
// The paper study's page

const GATES = ["sigmoid", "softmax"] as const;

function paperCellHtml(
  c: PaperCellAnalysis,
  id: (base: string) => string,
  specs: ChartSpec[],
): string {
  const title = paperCellTitle(c);
  if (c.curves.length === 0) {
    return `<h3>${escapeHtml(c.cell)}</h3>\n<p class="about">${escapeHtml(title)}</p>\n` +
      note(`No analysis: ${c.verdictText}.`);
  }
  const lo = Math.min(...c.ns), hi = Math.max(...c.ns);
  const series: ChartSpec["series"] = [];
  for (const gate of GATES) {
    const k = c.curves.find((x) => x.gate === gate)!;
    series.push({
      label: `${gate} (mean log, t 95%)`,
      color: COLORS[gate],
      band: BANDS[gate],
      points: bandPoints(k.points.map((p) => ({ n: p.n, ci: p.voronoi })), true),
    });
    const line = (n: number) => Math.exp(k.fit.intercept + k.fit.slope * Math.log(n));
    series.push({
      label: `${gate} fit: slope ${k.fit.slope.toFixed(2)}`,
      color: COLORS[gate],
      band: "rgba(0,0,0,0)",
      dash: [6, 4],
      points: [lo, hi].map((n) => ({ n, y: line(n), low: null, high: null })),
    });
  }
  const main: ChartSpec = {
    id: id(`chart-paper-${slug(c.cell)}`),
    title: `Voronoi loss vs n: ${c.cell}`,
    yTitle: "Voronoi loss D(Ĝ, G*)",
    xTitle: "n, samples (log\u2082 scale)",
    yLog: true,
    format: "sci",
    series,
    lines: [],
  };
  const local: ChartSpec = {
    id: id(`chart-paper-local-${slug(c.cell)}`),
    title: `local slopes (windows of 3 n): ${c.cell}`,
    yTitle: "slope of ln D on ln n",
    xTitle: "n at the window's centre (log\u2082 scale)",
    yLog: false,
    format: "fixed",
    series: GATES.map((gate) => {
      const k = c.curves.find((x) => x.gate === gate)!;
      return {
        label: gate,
        color: COLORS[gate],
        band: BANDS[gate],
        points: k.localSlopes.map((w) => ({ n: w.nMid, y: w.slope, low: w.lo, high: w.hi })),
      };
    }),
    lines: [
      { label: "−1/2 (parametric)", y: -0.5, color: "#666", dash: [4, 4] },
      { label: "0", y: 0, color: "#aaa", dash: [1, 3] },
    ],
  };
  specs.push(main, local);
  // The gate-neutral endpoint (training/moe/matched.ts), when the runs kept their parameters.
  const matched: ChartSpec | undefined = c.matched && {
    id: id(`chart-paper-matched-${slug(c.cell)}`),
    title: `matched-atom error vs n: ${c.cell}`,
    yTitle: "worst matched pair's parameter distance",
    xTitle: "n, samples (log\u2082 scale)",
    yLog: true,
    format: "sci",
    series: GATES.map((gate) => {
      const k = c.curves.find((x) => x.gate === gate)!;
      return {
        label: `${gate}: slope ${k.matched!.slope.estimate.toFixed(2)}`,
        color: COLORS[gate],
        band: BANDS[gate],
        points: bandPoints(k.matched!.points.map((p) => ({ n: p.n, ci: p.value })), true),
      };
    }),
    lines: [],
  };
  if (matched) specs.push(matched);
  const m = c.matched;
  const d = c.difference!;
  const rows = GATES.map((gate) => {
    const k = c.curves.find((x) => x.gate === gate)!;
    return [
      gate,
      ci(k.slope, fixed(3)),
      ci(k.functionErrorSlope, fixed(3)),
      `${k.convergence.runs - k.convergence.converged} / ${k.convergence.runs}`,
      escapeHtml(Object.entries(k.winners).sort().map(([s, m]) => `${s} ${m}`).join(", ")),
    ];
  });
  return `<h3 id="${escapeHtml(slug(c.cell))}">${escapeHtml(c.cell)}</h3>
<p class="about">${escapeHtml(title)}; ${
    c.role === "primary"
      ? "a test of the claim"
      : c.role === "planted"
      ? "the positive control (one gate's noise shrinks with n: its slopes must be steeper)"
      : "the null control (both rates parametric: the gates must tie)"
  }; seeds ${escapeHtml(c.seeds.join(", "))}${
    c.incompleteSeeds.length
      ? ` (not analysed, runs missing: ${escapeHtml(c.incompleteSeeds.join(", "))})`
      : ""
  }.</p>
<p><strong>${escapeHtml(c.verdict)}</strong>: ${
    escapeHtml(c.verdictText)
  }. BCa paired-seed bootstrap: ${ci(d.bootstrap, signed(fixed(3)))}; MDE ${
    c.mde !== undefined ? fixed(2)(c.mde) : DASH
  }.${
    m
      ? ` Matched-atom error: slope difference ${
        ci({ ...m.difference, low: m.difference.lo, high: m.difference.hi }, signed(fixed(3)))
      }, ${
        m.holmP !== undefined
          ? `Holm p ${m.holmP.toPrecision(2)}`
          : `p ${m.difference.pValue.toPrecision(2)}`
      }, MDE ${fixed(2)(m.mde)}: <strong>${escapeHtml(m.verdict)}</strong>.`
      : ""
  }</p>
<div class="grid">
${figure(main, `Voronoi loss against n, ${c.cell}`)}
${figure(local, `local slopes, ${c.cell}`)}
${matched ? figure(matched, `matched-atom error against n, ${c.cell}`) : ""}
</div>
${
    table(
      ["gate", "slope of D [t 95%]", "slope of function error", "not converged", "winning start"],
      rows,
      [false, true, true, true, false],
    )
  }`;
}

/** The paper study's page: the same self-contained layout as {@linkcode studyHtml}. */
export async function paperHtml(
  analysis: PaperAnalysis,
  options: { chartJs?: string } = {},
): Promise<string> {
  const chartJs = chartJsScript(options.chartJs ?? await loadChartJs());
  const a = analysis;
  const specs: ChartSpec[] = [];
  const id = idMaker();
  const cells = a.cells.map((c) => paperCellHtml(c, id, specs)).join("\n");
  const summary = table(
    [
      "cell",
      "role",
      "sigmoid slope",
      "softmax slope",
      "difference [t 95%]",
      "Holm p",
      "verdict",
      "matched error: difference [t 95%]",
      "Holm p",
      "verdict",
    ],
    a.cells.map((c) => {
      const sl = (g: "sigmoid" | "softmax") =>
        ci(c.curves.find((k) => k.gate === g)?.slope, fixed(3));
      return [
        `<a href="#${escapeHtml(slug(c.cell))}">${escapeHtml(c.cell)}</a>`,
        roleName(c.role),
        sl("sigmoid"),
        sl("softmax"),
        c.difference
          ? ci({ ...c.difference, low: c.difference.lo, high: c.difference.hi }, signed(fixed(3)))
          : DASH,
        c.holmP !== undefined ? c.holmP.toPrecision(2) : DASH,
        escapeHtml(c.verdict),
        c.matched
          ? ci({
            ...c.matched.difference,
            low: c.matched.difference.lo,
            high: c.matched.difference.hi,
          }, signed(fixed(3)))
          : DASH,
        c.matched?.holmP !== undefined ? c.matched.holmP.toPrecision(2) : DASH,
        c.matched ? escapeHtml(c.matched.verdict) : DASH,
      ];
    }),
    [false, false, true, true, true, true, false, true, true, false],
  );
  const meta: [string, string][] = [
    ["preset", escapeHtml(String(a.preset))],
    ["fits", escapeHtml(String(a.runs))],
    ["seeds", escapeHtml(a.seeds.join(", "))],
    ["noise σ", escapeHtml(String(a.noise))],
    ["starts", `truth-split + ${escapeHtml(String(a.randomStarts))} random`],
    ["stopping", escapeHtml(JSON.stringify(a.stopping))],
    [
      "not converged",
      `${a.convergence.runs - a.convergence.converged} of ${a.convergence.runs} (${
        (100 * a.convergence.nonConvergenceRate).toFixed(1)
      }%)`,
    ],
    ["fitting", `${(a.fitSeconds / 60).toFixed(1)} minutes (all fits together)`],
    ["date", escapeHtml(String(a.date))],
  ];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sigmax paper study ${escapeHtml(String(a.preset))}</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
${chartJs}
</head>
<body>
<h1>sigmax paper study: the least-squares estimator of sigmoid- vs softmax-gated mixtures</h1>
<p id="page-error" hidden></p>
<p class="about">Each fit is the least-squares estimator of a mixture of experts with quadratic gating scores (arXiv 2502.00281, 2405.13997, 2410.11222), with the same gate as the truth; the Voronoi loss (our reading of the papers') and the matched-atom error (ours, with no gate weights or powers) measure how far its experts are from the true ones. Lines: geometric mean over seeds with the t 95% interval of the mean log; dashed: the fitted power law.</p>
<dl class="meta">
${meta.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("\n")}
</dl>
<h2>Slopes and verdicts</h2>
${summary}
<h2>Cells</h2>
${cells}
<script type="application/json" id="sigmax-study">${scriptJson(a)}</script>
${pageScripts(specs.map(pageChart), PAGE)}
</body>
</html>
`;
}

/** Analyses the paper-study runs and writes study.json, study.md and study.html in `dir`. */
export async function writePaperReport(
  dir: string,
  preset: string,
  records: MoeRunRecord[],
): Promise<string[]> {
  const analysis = analyzePaperStudy(preset, records);
  const files = [`${dir}/study.json`, `${dir}/study.md`, `${dir}/study.html`];
  await writeAtomic(files[0], JSON.stringify(analysis, null, 1));
  await writeAtomic(files[1], paperMarkdown(analysis));
  await writeAtomic(files[2], await paperHtml(analysis));
  return files;
}
