/**
 * The sweep report in a real browser: headless Chromium (Debian's
 * /usr/bin/chromium, driven by playwright-core over a pipe, no network) opens
 * the generated page from a file:// URL; every chart must draw (its canvas
 * has painted pixels), the page's chart count must match its canvases, and
 * the page must log nothing (no console message at all, errors and warnings
 * included), throw nothing and request nothing but its own file.
 *
 * Without /usr/bin/chromium the test is skipped with a message, unless
 * SIGMAX_REQUIRE_BROWSER=1 (CI), where it fails instead. The browser harness
 * (launching Chromium under the suite's permissions, opening a page and
 * inspecting its canvases) is shared with the study report's browser test in
 * tests/_browser.ts.
 *
 * Every results document here is TEST DATA from tests/_report_fixture.ts.
 */

import assert from "node:assert/strict";
import { reportHtml } from "../bench/report.ts";
import type { SweepResults } from "../bench/results.ts";
import { fixtureResults } from "./_report_fixture.ts";
import {
  announceBrowser,
  CHROMIUM,
  HAVE_CHROMIUM,
  launchBrowser,
  openPage,
  type PageOutcome,
  REQUIRED,
} from "./_browser.ts";

announceBrowser("report browser test");

Deno.test({
  name: "report page draws every chart in headless Chromium and logs nothing",
  ignore: !HAVE_CHROMIUM && !REQUIRED,
  async fn(t) {
    if (!HAVE_CHROMIUM) {
      assert.fail(
        `${CHROMIUM} is missing and SIGMAX_REQUIRE_BROWSER=1: install it (apt-get install -y chromium)`,
      );
    }
    const dir = await Deno.makeTempDir({ prefix: "sigmax-report-browser-" });
    const browser = await launchBrowser();
    try {
      const open = async (name: string, results: SweepResults): Promise<PageOutcome> => {
        const file = `${dir}/${name}.html`;
        await Deno.writeTextFile(file, await reportHtml(results));
        return await openPage(browser, file);
      };

      const check = (name: string, outcome: PageOutcome, expected: number) => {
        assert.deepEqual(outcome.problems, [], `${name}: the page logged or threw`);
        assert.equal(outcome.canvases.length, expected, `${name}: canvases`);
        assert.equal(outcome.charts, outcome.canvases.length, `${name}: __sigmaxCharts`);
        for (const c of outcome.canvases) {
          assert.ok(c.width > 0 && c.height > 0, `${name}: ${c.id} has no size`);
          assert.ok(c.painted, `${name}: ${c.id} is blank`);
        }
        assert.equal(new Set(outcome.canvases.map((c) => c.id)).size, expected, "unique ids");
      };

      await t.step("a full sweep (TF.js, roofline, f16, failures, training)", async () => {
        check("full", await open("full", fixtureResults()), 72);
      });
      await t.step("missing data: no TF.js, no roofline, no training, f32 only", async () => {
        const sparse = fixtureResults({
          tfjs: false,
          roofline: false,
          training: false,
          failures: false,
          f16: false,
          seqLens: [256, 1024],
        });
        check("sparse", await open("sparse", sparse), 32);
      });
      await t.step("no records at all: no chart, and still no error", async () => {
        const empty = { ...fixtureResults({ seqLens: [256] }), records: [], training: [] };
        check("empty", await open("empty", empty), 0);
      });
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
