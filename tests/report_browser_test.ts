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
import type { Browser } from "npm:playwright-core@1.65.1";
import {
  announceBrowser,
  CHROMIUM,
  gotoChartsPage,
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
      await t.step("the spread is drawn: a band around the line", async () => {
        // One series in one group, so that nothing else paints where the band is.
        const r = fixtureResults({
          seqLens: [256, 512, 1024, 2048],
          headDims: [64],
          causal: [false],
          f16: false,
          tfjs: false,
          peers: false,
        });
        r.records = r.records.filter((x) =>
          x.pass === "forward" && x.impl === "fused" && x.activation === "softmax"
        );
        for (const x of r.records) {
          // A wide, made-up spread (TEST DATA).
          x.msMin = x.msMedian * 0.6;
          x.msMax = x.msMedian * 1.8;
        }
        const file = `${dir}/band.html`;
        await Deno.writeTextFile(file, await reportHtml(r));
        const outcome = await openPage(browser, file);
        assert.deepEqual(outcome.problems, [], "the page logged or threw");
        const band = await bandPixels(browser, file, "chart-throughput-forward-f32-d64-full-b1h4");
        assert.equal(band.bandDatasets, 2, "low and high bounds");
        assert.equal(band.samples, 8, "two samples per point");
        assert.equal(band.filled, band.samples, "the band paints every sample; hidden, none");
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

/**
 * Opens `file` and, on the chart `id`, reads the pixels halfway between the
 * line and each band bound at every point (a little beside the point, off
 * the line's markers), then hides the band datasets with the y axis held
 * fixed and reads them again: `filled` counts the samples the band made
 * more opaque.
 */
async function bandPixels(
  browser: Browser,
  file: string,
  id: string,
): Promise<{ bandDatasets: number; samples: number; filled: number }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  try {
    await gotoChartsPage(page, file);
    return await page.evaluate((chartId: string) => {
      interface Scale {
        min: number;
        max: number;
        getPixelForValue(v: number): number;
      }
      interface CanvasLike {
        getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
      }
      interface Instance {
        canvas: { id: string; getContext(k: "2d"): CanvasLike };
        data: { datasets: { band?: boolean; data: { x: number; y: number | null }[] }[] };
        options: { scales: { y: Record<string, unknown> } };
        scales: { x: Scale; y: Scale };
        currentDevicePixelRatio: number;
        setDatasetVisibility(i: number, visible: boolean): void;
        update(mode: string): void;
      }
      const g = globalThis as unknown as { Chart: { instances: Record<string, Instance> } };
      const chart = Object.values(g.Chart.instances).find((c) => c.canvas.id === chartId)!;
      const sets = chart.data.datasets;
      const bands = sets.filter((d) => d.band);
      const line = sets.find((d) => !d.band)!;
      const ctx = chart.canvas.getContext("2d");
      const ratio = chart.currentDevicePixelRatio;
      const at: [number, number][] = [];
      for (const [i, p] of line.data.entries()) {
        if (p.y === null) continue;
        const px = chart.scales.x.getPixelForValue(p.x);
        const py = chart.scales.y.getPixelForValue(p.y);
        for (const b of bands) {
          const bound = b.data[i].y;
          if (bound === null) continue;
          const y = (py + chart.scales.y.getPixelForValue(bound)) / 2;
          // Inside the band's x range: right of each point, left of the last.
          const dx = i === line.data.length - 1 ? -6 : 6;
          at.push([Math.round((px + dx) * ratio), Math.round(y * ratio)]);
        }
      }
      const alpha = () => at.map(([x, y]) => ctx.getImageData(x, y, 1, 1).data[3]);
      const shown = alpha();
      chart.options.scales.y.min = chart.scales.y.min;
      chart.options.scales.y.max = chart.scales.y.max;
      sets.forEach((d, i) => d.band && chart.setDatasetVisibility(i, false));
      chart.update("none");
      const hidden = alpha();
      return {
        bandDatasets: bands.length,
        samples: at.length,
        filled: shown.filter((a, i) => a > hidden[i]).length,
      };
    }, id);
  } finally {
    await page.close();
  }
}
