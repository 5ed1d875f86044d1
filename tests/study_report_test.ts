/**
 * The study's HTML page without a browser: Chart.js inlined, the analysis
 * embedded, no external URL, one canvas per expected chart, the tables, and a
 * note for every missing part (no teacher cells, no tasks, a task without a
 * target, values a log axis cannot draw). Every analysis here is TEST DATA:
 * synthetic runs from tests/_study_report_fixture.ts through the real
 * training/study/analyze.ts.
 */

import assert from "node:assert/strict";
import { CHART_JS_VERSION } from "../bench/report.ts";
import type { StudyAnalysis } from "../training/study/analyze.ts";
import { paperHtml, paperMarkdown, studyHtml, studyMarkdown } from "../bench/study_report.ts";
import { fixturePaperStudy, fixtureStudy, TEST_ADAPTER } from "./_study_report_fixture.ts";

/** The JSON inside `<script type="application/json" id="ID">`. */
function embedded(html: string, id: string): unknown {
  const m = new RegExp(`<script type="application/json" id="${id}">([^<]*)</script>`).exec(html);
  assert.ok(m, `no <script id="${id}"> in the page`);
  return JSON.parse(m[1]);
}

/** The ids of the page's canvases. */
function canvasIds(html: string): string[] {
  return [...html.matchAll(/<canvas id="([^"]+)"/g)].map((m) => m[1]);
}

interface Spec {
  id: string;
  yLog: boolean;
  series: {
    label: string;
    points: { x: number; y: number; low: number | null; high: number | null }[];
  }[];
  lines: { label: string; y: number; dash: number[] }[];
}

function specs(html: string): Spec[] {
  return embedded(html, "sigmax-charts") as Spec[];
}

/** The page without Chart.js's source (which has its own strings), for text checks. */
function ownText(html: string): string {
  return html.replace(/<script>\n[\s\S]*?\n<\/script>\n<\/head>/, "</head>");
}

const TEACHER_IDS = [
  "chart-teacher-teacher-softmax-linear-function-error",
  "chart-teacher-teacher-softmax-linear-gating",
  "chart-teacher-teacher-softmax-linear-value",
];
const TASK_IDS = ["chart-task-sort"];

Deno.test("study page inlines Chart.js, embeds the analysis and references no URL", async () => {
  const analysis = fixtureStudy();
  const html = await studyHtml(analysis);
  assert.ok(html.includes(`Chart.js v${CHART_JS_VERSION}`), "Chart.js banner missing");
  assert.match(html, /\.Chart\s*=\s*e\(\)/, "Chart.js UMD factory missing");
  assert.ok(html.length > 200_000, `page is only ${html.length} characters: Chart.js not inlined?`);
  // No external resources: no src/href to http(s) or protocol-relative URLs, no <script src>.
  assert.doesNotMatch(html, /(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i);
  assert.doesNotMatch(html, /<script[^>]*\bsrc\s*=/i);
  assert.doesNotMatch(html, /<link[^>]*rel=["']?stylesheet/i);
  assert.doesNotMatch(html, /@import|url\(\s*["']?https?:/i);
  // The analysis, whole, as the page embeds it.
  assert.deepEqual(embedded(html, "sigmax-study"), JSON.parse(JSON.stringify(analysis)));
  // The shared page script (bench/page_script.js), with the study page's settings.
  assert.ok(html.includes("__sigmaxCharts: drawn"));
  assert.deepEqual(embedded(html, "sigmax-page"), {
    tag: "sigmax study",
    noteClass: "note chart-error",
    legendPointStyle: true,
  });
});

Deno.test("study page: one canvas per chart, in the order of the chart specs", async () => {
  const analysis = fixtureStudy();
  const html = await studyHtml(analysis);
  const ids = canvasIds(html);
  assert.deepEqual(ids, [...TEACHER_IDS, ...TASK_IDS]);
  assert.deepEqual(specs(html).map((s) => s.id), ids);
  assert.equal(new Set(ids).size, ids.length, "canvas ids are unique");
  // Teacher charts: log y, both activations with a band; task charts: linear y, target and chance lines.
  for (const s of specs(html)) {
    assert.deepEqual(
      s.series.map((k) => k.label.split(" ")[0]),
      ["softmax", "sigmoid"],
      `${s.id}: one line per activation`,
    );
    for (const k of s.series) {
      assert.deepEqual(k.points.map((p) => p.x), [16, 64], `${s.id}: points at every n`);
      for (const p of k.points) {
        assert.ok(
          p.low !== null && p.high !== null && p.low <= p.y && p.y <= p.high,
          `${s.id}: band`,
        );
      }
    }
  }
  const task = specs(html).find((s) => s.id === "chart-task-sort")!;
  assert.equal(task.yLog, false);
  assert.deepEqual(task.lines.map((l) => [l.y, l.dash.length > 0]), [[0.5, true], [0.3, true]]);
  assert.match(task.lines[0].label, /^target ≥ 0\.5$/);
  assert.match(task.lines[1].label, /^chance/);
  assert.ok(specs(html).filter((s) => s.id.startsWith("chart-teacher")).every((s) => s.yLog));
  // The teacher chart's first point is the analysis's own estimate and interval.
  const fe = specs(html)[0].series[0].points[0];
  const want = analysis.teacher[0].curves[0].points[0].functionError;
  assert.deepEqual([fe.y, fe.low, fe.high], [want.estimate, want.low, want.high]);
});

Deno.test("study page: header, slope, paired, samples- and steps-to-target tables", async () => {
  const analysis = fixtureStudy();
  const html = ownText(await studyHtml(analysis));
  for (
    const text of [
      "<dt>preset</dt><dd>tiny</dd>",
      "<dt>runs</dt><dd>16</dd>",
      "<dt>seeds</dt><dd>1, 2</dd>",
      `<dt>adapter</dt><dd>${TEST_ADAPTER}</dd>`,
      "<dt>date</dt><dd>2025-01-01T00:00:00.000Z (TEST DATA)</dd>",
      `${(analysis.trainingSeconds / 60).toFixed(1)} minutes`,
    ]
  ) {
    assert.ok(html.includes(text), `header lacks ${text}`);
  }
  // Slope table: student × metric, slope [low, high].
  const slopes = analysis.teacher[0].curves[1].slopes;
  const f = (x: number) => x.toFixed(2);
  assert.ok(
    html.includes(
      `<td>sigmoid</td><td class="num">${f(slopes.functionError.estimate)} [${
        f(slopes.functionError.low)
      }, ${f(slopes.functionError.high)}]</td>`,
    ),
    "slope row of the sigmoid student",
  );
  assert.ok(html.includes("<th>Voronoi loss</th>"));
  // Teacher paired difference: the fixture's sigmoid student has the lower error at every n.
  for (const p of analysis.teacher[0].paired) {
    assert.ok(p.difference.high < 0, "fixture: sigmoid better");
    assert.match(
      html,
      new RegExp(
        `<td class="num">${p.n}</td><td class="num">-[^<]+</td><td>yes</td><td>sigmoid better</td>`,
      ),
    );
  }
  // Task: samples to target (seeds reaching it, geometric mean), steps to target per n, paired.
  const sort = analysis.tasks[0];
  for (const k of sort.curves) {
    const reached = k.samplesToTarget.filter((x) => x !== null).length;
    assert.match(
      html,
      new RegExp(
        `<td>${k.activation}</td><td class="num">${reached}/${k.samplesToTarget.length}</td>`,
      ),
    );
  }
  assert.ok(html.includes("Samples to target (accuracy ≥ 0.5)"));
  // Misses are censored, not dropped: every seed is counted in the median's row.
  for (const k of sort.curves) {
    const m = k.samplesToTargetMedian!;
    assert.equal(m.perSeed.length, k.samplesToTarget.length);
    assert.equal(m.censored, k.samplesToTarget.filter((x) => x === null).length);
    assert.ok(html.includes(`, ${m.censored} censored`));
  }
  assert.ok(html.includes("<th>sigmoid: steps</th>"));
  for (const s of sort.curves[0].stepsToTarget) {
    assert.match(
      html,
      new RegExp(`<tr><td class="num">${s.n}</td><td class="num">${s.reached}/${s.runs}</td>`),
    );
  }
  for (const p of sort.paired) {
    const excludes = p.difference.low > 0 || p.difference.high < 0;
    assert.match(
      html,
      new RegExp(
        `<td class="num">${p.n}</td><td class="num">[+-]?[0-9.]+ \\[[^<]+\\]</td><td>${
          excludes ? "yes" : "no"
        }</td>`,
      ),
    );
  }
  assert.doesNotMatch(html, /class="note"/, "the full fixture needs no note");
});

Deno.test("study page: notes for no teacher cells, no tasks, a task without a target", async (t) => {
  await t.step("tasks only", async () => {
    const html = await studyHtml(fixtureStudy({ cells: ["sort"] }));
    assert.deepEqual(canvasIds(html), TASK_IDS);
    assert.ok(html.includes(`<p class="note">No teacher cells in this analysis.</p>`));
    assert.ok(!html.includes("No task cells"));
  });
  await t.step("teacher only", async () => {
    const html = await studyHtml(fixtureStudy({ cells: ["teacher-softmax-linear"] }));
    assert.deepEqual(canvasIds(html), TEACHER_IDS);
    assert.ok(html.includes(`<p class="note">No task cells in this analysis.</p>`));
    assert.ok(!html.includes("No teacher cells"));
  });
  await t.step("a task without a target", async () => {
    const analysis = fixtureStudy({ noTarget: true });
    const html = await studyHtml(analysis);
    assert.deepEqual(canvasIds(html), [...TEACHER_IDS, ...TASK_IDS]);
    assert.ok(
      html.includes("No target for sort: samples-to-target and steps-to-target are not defined."),
    );
    assert.ok(!html.includes("Samples to target ("));
    const task = specs(html).find((s) => s.id === "chart-task-sort")!;
    assert.deepEqual(task.lines.map((l) => l.label.split(" ")[0]), ["chance"], "no target line");
  });
  await t.step("nothing at all", async () => {
    const analysis: StudyAnalysis = { ...fixtureStudy(), teacher: [], tasks: [], runs: 0 };
    const html = await studyHtml(analysis);
    assert.deepEqual(canvasIds(html), []);
    assert.deepEqual(specs(html), []);
    assert.ok(html.includes("No teacher cells in this analysis."));
    assert.ok(html.includes("No task cells in this analysis."));
  });
  await t.step("values a log axis cannot draw", async () => {
    const analysis = fixtureStudy({ cells: ["teacher-softmax-linear"] });
    for (const k of analysis.teacher[0].curves) {
      for (const p of k.points) p.gating = { ...p.gating, estimate: 0, low: 0 };
      // One low bound at zero: a gap in the band, the point still drawn.
      k.points[0].value = { ...k.points[0].value, low: 0 };
    }
    const html = await studyHtml(analysis);
    assert.deepEqual(canvasIds(html), [TEACHER_IDS[0], TEACHER_IDS[2]]);
    assert.ok(
      html.includes("Not drawn: gating A error has no positive value to draw on a log scale."),
    );
    const value = specs(html).find((s) => s.id === TEACHER_IDS[2])!;
    assert.equal(value.series[0].points[0].low, null);
    assert.equal(value.series[0].points.length, 2);
  });
  await t.step("an analysis read back from JSON (NaN → null)", async () => {
    const analysis = fixtureStudy();
    analysis.teacher[0].curves[0].slopes.gating = {
      ...analysis.teacher[0].curves[0].slopes.gating,
      estimate: NaN,
      low: NaN,
      high: NaN,
    };
    const html = await studyHtml(JSON.parse(JSON.stringify(analysis)));
    assert.match(html, /<td>softmax<\/td><td class="num">[^<]+<\/td><td class="num">—<\/td>/);
  });
});

Deno.test("study page escapes the analysis's text and keeps its JSON intact", async () => {
  const analysis = fixtureStudy();
  const evil = `</script><script>alert("x")</script><!-- & '`;
  analysis.adapter = evil;
  analysis.preset = `tiny<b>`;
  analysis.tasks[0].task = `sort<i>`;
  analysis.tasks[0].cell = `so rt/"x"`;
  const html = await studyHtml(analysis);
  const own = ownText(html);
  assert.ok(!own.includes("<script>alert"), "raw markup from the data");
  assert.ok(!own.includes("<b>") && !own.includes("<i>"));
  assert.ok(own.includes("&lt;/script&gt;&lt;script&gt;alert(&quot;x&quot;)"));
  // Exactly the page's own scripts: Chart.js, the three JSON blocks and the page script.
  assert.equal(html.match(/<\/script>/g)?.length, 5);
  assert.deepEqual(embedded(html, "sigmax-study"), JSON.parse(JSON.stringify(analysis)));
  assert.ok(canvasIds(html).includes("chart-task-so_rt__x_"));
});

Deno.test("study page: a given Chart.js source is used, one that cannot be inlined is refused", async () => {
  const analysis = fixtureStudy();
  const html = await studyHtml(analysis, { chartJs: "window.Chart = function () {};" });
  assert.ok(html.includes("window.Chart = function () {};"));
  assert.ok(html.length < 100_000);
  await assert.rejects(
    () => studyHtml(analysis, { chartJs: "var s = '</script>';" }),
    /cannot be inlined/,
  );
});

Deno.test("bench/study_report.ts re-exports the Markdown summary", () => {
  const md = studyMarkdown(fixtureStudy());
  assert.match(md, /^## Sample-efficiency study: `tiny` preset/);
  assert.ok(md.includes(TEST_ADAPTER));
});

Deno.test("the paper study's analysis finds the slopes it was built with, and Holm and the control verdicts follow", () => {
  const a = fixturePaperStudy();
  const [primary, control] = a.cells;
  const slope = (c: typeof primary, g: string) => c.curves.find((k) => k.gate === g)!.slope;
  assert.ok(Math.abs(slope(primary, "sigmoid").estimate + 0.5) < 0.05);
  assert.ok(Math.abs(slope(primary, "softmax").estimate + 0.1) < 0.05);
  assert.ok(Math.abs(primary.difference!.estimate + 0.4) < 0.05);
  assert.ok(primary.difference!.hi < 0);
  assert.equal(primary.verdict, "holds");
  assert.equal(primary.holmP, primary.difference!.pValue); // one primary test: Holm changes nothing
  assert.equal(control.verdict, "ties");
  assert.equal(control.holmP, undefined);
  const soft = primary.curves.find((k) => k.gate === "softmax")!;
  assert.equal(soft.convergence.runs, 20);
  assert.ok(soft.convergence.converged < 20);
  assert.equal(soft.localSlopes.length, 3);
  assert.equal(a.convergence.runs, 80);
  // The other direction: when softmax's loss falls faster, the verdict says the claim fails.
  const reversed = fixturePaperStudy({ slowGate: "sigmoid" }).cells[0];
  assert.ok(Math.abs(reversed.difference!.estimate - 0.4) < 0.05);
  assert.equal(reversed.verdict, "fails");
  assert.match(reversed.verdictText, /softmax's Voronoi loss falls faster/);
});

Deno.test("the paper page draws one Voronoi panel (both gates, fitted lines) and one local-slope panel per cell", async () => {
  const a = fixturePaperStudy();
  const html = await paperHtml(a);
  assert.ok(html.includes(`Chart.js v${CHART_JS_VERSION}`));
  assert.doesNotMatch(ownText(html), /https?:\/\/|<script src/);
  const ids = canvasIds(html);
  assert.deepEqual(ids, [
    "chart-paper-over-dense-linear-partially",
    "chart-paper-local-over-dense-linear-partially",
    "chart-paper-exact-dense-linear-partially",
    "chart-paper-local-exact-dense-linear-partially",
  ]);
  const main = specs(html).find((s) => s.id === ids[0])!;
  assert.ok(main.yLog);
  assert.deepEqual(main.series.map((s) => s.label.split(" ")[0]), [
    "sigmoid",
    "sigmoid",
    "softmax",
    "softmax",
  ]);
  assert.match(main.series[1].label, /fit: slope -0\.5/);
  assert.equal(main.series[0].points.length, 5);
  assert.deepEqual(embedded(html, "sigmax-study"), JSON.parse(JSON.stringify(a)));
  const md = paperMarkdown(a);
  assert.match(md, /\| over-dense-linear-partially \| primary \| -0\.5\d\d \[/);
  assert.match(md, /holds/);
  assert.match(md, /control: the gates tie/);
});
