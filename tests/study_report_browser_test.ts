/**
 * The study's page in a real browser: headless Chromium (the harness of
 * tests/_browser.ts) opens the generated page from a file:// URL; every chart
 * must draw (its canvas has painted pixels), `window.__sigmaxCharts` must
 * match the canvases, and the page must log nothing, throw nothing and
 * request nothing but its own file. A page whose charts fail shows the error
 * in the page and reports it with console.error.
 *
 * Without /usr/bin/chromium the test is skipped with a message, unless
 * SIGMAX_REQUIRE_BROWSER=1 (CI), where it fails instead.
 *
 * Every analysis here is TEST DATA: synthetic runs from
 * tests/_study_report_fixture.ts through the real training/study/analyze.ts.
 */

import assert from "node:assert/strict";
import type { StudyAnalysis } from "../training/study/analyze.ts";
import { paperHtml, studyHtml } from "../bench/study_report.ts";
import {
  announceBrowser,
  CHROMIUM,
  HAVE_CHROMIUM,
  launchBrowser,
  openPage,
  type PageOutcome,
  REQUIRED,
} from "./_browser.ts";
import {
  FIXTURE_PAPER_PRESET,
  fixturePaperRecords,
  fixturePaperStudy,
  fixtureStudy,
} from "./_study_report_fixture.ts";
import { analyzePaperStudy } from "../training/study/analyze.ts";
import { packAtoms, trueAtoms } from "../training/moe/model.ts";

announceBrowser("study report browser test");

Deno.test({
  name: "study page draws every chart in headless Chromium and logs nothing",
  ignore: !HAVE_CHROMIUM && !REQUIRED,
  async fn(t) {
    if (!HAVE_CHROMIUM) {
      assert.fail(
        `${CHROMIUM} is missing and SIGMAX_REQUIRE_BROWSER=1: install it (apt-get install -y chromium)`,
      );
    }
    const dir = await Deno.makeTempDir({ prefix: "sigmax-study-browser-" });
    const browser = await launchBrowser();
    try {
      const open = async (
        name: string,
        analysis: StudyAnalysis,
        chartJs?: string,
      ): Promise<PageOutcome> => {
        const file = `${dir}/${name}.html`;
        await Deno.writeTextFile(
          file,
          await studyHtml(analysis, chartJs === undefined ? {} : { chartJs }),
        );
        return await openPage(browser, file);
      };

      const check = (name: string, outcome: PageOutcome, expected: number) => {
        assert.deepEqual(outcome.problems, [], `${name}: the page logged or threw`);
        assert.equal(outcome.banner, "", `${name}: error banner`);
        assert.deepEqual(outcome.chartErrors, [], `${name}: chart errors`);
        assert.equal(outcome.canvases.length, expected, `${name}: canvases`);
        assert.equal(outcome.charts, outcome.canvases.length, `${name}: __sigmaxCharts`);
        for (const c of outcome.canvases) {
          assert.ok(c.width > 0 && c.height > 0, `${name}: ${c.id} has no size`);
          assert.ok(c.painted, `${name}: ${c.id} is blank`);
        }
        assert.equal(new Set(outcome.canvases.map((c) => c.id)).size, expected, "unique ids");
      };

      await t.step("teacher and task cells", async () => {
        check("full", await open("full", fixtureStudy()), 4);
      });
      await t.step("the paper study's page: two panels per cell", async () => {
        const file = `${dir}/paper.html`;
        await Deno.writeTextFile(file, await paperHtml(fixturePaperStudy()));
        check("paper", await openPage(browser, file), 4);
      });
      await t.step("the paper study with stored parameters: three panels per cell", async () => {
        // The fixture's fits given parameters: the truth with one expert moved by n^-1/2
        // (and, over-specified, a third expert), so the matched-atom error has a curve.
        const t = trueAtoms("dense");
        const records = fixturePaperRecords().map((r) => {
          const c = r.result.config;
          const spec = {
            gate: c.gate,
            expert: c.expert,
            score: c.score,
            dim: 2,
            experts: r.result.k,
          };
          const moved = {
            ...t[0],
            a: [t[0].a[0] + r.spec.n ** -0.5 * (1 + 0.1 * r.spec.seed), t[0].a[1]],
          };
          const third = { A: [1, 0, 1], b: [0, 0], c: -2, a: [0.1, 0], e: 0.05 };
          const atoms = r.result.k === 3 ? [moved, t[1], third] : [moved, t[1]];
          return { ...r, result: { ...r.result, theta: Array.from(packAtoms(spec, atoms)) } };
        });
        const analysis = analyzePaperStudy(FIXTURE_PAPER_PRESET, records);
        assert.ok(analysis.cells.every((c) => c.matched));
        const file = `${dir}/paper-matched.html`;
        await Deno.writeTextFile(file, await paperHtml(analysis));
        check("paper-matched", await openPage(browser, file), 6);
      });
      await t.step("no teacher cells", async () => {
        check("tasks", await open("tasks", fixtureStudy({ cells: ["sort"] })), 1);
      });
      await t.step("no task cells", async () => {
        check(
          "teacher",
          await open("teacher", fixtureStudy({ cells: ["teacher-softmax-linear"] })),
          3,
        );
      });
      await t.step("a task without a target", async () => {
        check("no-target", await open("no-target", fixtureStudy({ noTarget: true })), 4);
      });
      await t.step("nothing at all: no chart, and still no error", async () => {
        const empty: StudyAnalysis = { ...fixtureStudy(), teacher: [], tasks: [], runs: 0 };
        check("empty", await open("empty", empty), 0);
      });
      await t.step("gaps in a log-scale band", async () => {
        const analysis = fixtureStudy({ cells: ["teacher-softmax-linear"] });
        for (const k of analysis.teacher[0].curves) {
          k.points[0].value = { ...k.points[0].value, low: 0 };
          k.points[1].gating = { ...k.points[1].gating, estimate: -1, low: -2 };
        }
        check("gaps", await open("gaps", analysis), 3);
      });
      await t.step("a chart that fails is a note in the page and a console error", async () => {
        const failing = "window.Chart = function () { throw new Error('no canvas for you'); };";
        const outcome = await open("failing", fixtureStudy(), failing);
        assert.equal(outcome.charts, 0);
        assert.equal(outcome.canvases.length, 0, "failed charts are replaced by notes");
        assert.equal(outcome.chartErrors.length, 4);
        for (const e of outcome.chartErrors) {
          assert.match(e, /could not be drawn: no canvas for you/);
        }
        assert.equal(outcome.problems.length, 4);
        for (const p of outcome.problems) {
          assert.match(p, /^console\.error: sigmax study: chart chart-/);
        }
      });
      await t.step("no Chart.js: a banner and one console error", async () => {
        const outcome = await open("no-chartjs", fixtureStudy(), "/* no Chart.js */");
        assert.equal(outcome.charts, 0);
        assert.match(outcome.banner, /The charts could not be drawn: Chart\.js is missing/);
        assert.deepEqual(outcome.problems, [
          "console.error: sigmax study: Chart.js is missing from the page",
        ]);
      });
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
