/**
 * The sweep report in a real browser: headless Chromium (Debian's
 * /usr/bin/chromium, driven by playwright-core over a pipe, no network) opens
 * the generated page from a file:// URL; every chart must draw (its canvas
 * has painted pixels), the page's chart count must match its canvases, and
 * the page must log nothing (no console message at all, errors and warnings
 * included), throw nothing and request nothing but its own file.
 *
 * Without /usr/bin/chromium the test is skipped with a message, unless
 * SIGMAX_REQUIRE_BROWSER=1 (CI), where it fails instead. Install the browser
 * with `apt-get install -y chromium`.
 *
 * Permissions: the suite's --allow-env --allow-read --allow-write --allow-run
 * are enough. playwright-core asks, as it loads, for os.homedir() and
 * os.release() (Deno: --allow-sys) and fs.existsSync() on a file under
 * /proc/sys (Deno: --allow-all) to find Chrome's config folder and to detect
 * WSL; neither matters for launching a given executable on Linux, so the test
 * answers those three calls itself while playwright-core loads (see
 * `loadPlaywright`).
 *
 * Every results document here is TEST DATA from tests/_report_fixture.ts.
 */

import assert from "node:assert/strict";
import os from "node:os";
import fs from "node:fs";
import { reportHtml } from "../bench/report.ts";
import type { SweepResults } from "../bench/results.ts";
import { fixtureResults } from "./_report_fixture.ts";

const CHROMIUM = "/usr/bin/chromium";
const REQUIRED = Deno.env.get("SIGMAX_REQUIRE_BROWSER") === "1";

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

const HAVE_CHROMIUM = exists(CHROMIUM);
if (!HAVE_CHROMIUM) {
  console.log(
    REQUIRED
      ? `report browser test: ${CHROMIUM} is missing and SIGMAX_REQUIRE_BROWSER=1: failing. ` +
        `Install it with: apt-get install -y chromium`
      : `report browser test: SKIPPED: ${CHROMIUM} is missing (apt-get install -y chromium; ` +
        `set SIGMAX_REQUIRE_BROWSER=1 to make this a failure).`,
  );
}

/**
 * Loads playwright-core with the three Node calls it makes while loading, and
 * that Deno would refuse without --allow-sys / --allow-all, answered here:
 * os.homedir() from $HOME, os.release() as a non-WSL kernel, and
 * fs.existsSync() false for a path Deno refuses to stat (Node's existsSync
 * never throws). The originals are restored afterwards.
 */
async function loadPlaywright(): Promise<typeof import("npm:playwright-core@1.65.1")> {
  const nodeOs = os as unknown as Record<string, unknown>;
  const nodeFs = fs as unknown as Record<string, unknown>;
  const saved = { homedir: nodeOs.homedir, release: nodeOs.release, existsSync: nodeFs.existsSync };
  const existsSync = fs.existsSync;
  const sys = (kind: "homedir" | "osRelease") =>
    Deno.permissions.querySync({ name: "sys", kind }).state === "granted";
  if (!sys("homedir")) nodeOs.homedir = () => Deno.env.get("HOME") ?? "/";
  if (!sys("osRelease")) nodeOs.release = () => "0.0.0-sigmax-test";
  nodeFs.existsSync = (path: fs.PathLike) => {
    try {
      return existsSync(path);
    } catch {
      return false;
    }
  };
  try {
    return await import("npm:playwright-core@1.65.1");
  } finally {
    Object.assign(nodeOs, { homedir: saved.homedir, release: saved.release });
    nodeFs.existsSync = saved.existsSync;
  }
}

/** What the page did: its chart count, its canvases, and every message, error or request it made. */
interface PageOutcome {
  charts: number;
  canvases: { id: string; width: number; height: number; painted: boolean }[];
  problems: string[];
}

Deno.test({
  name: "report page draws every chart in headless Chromium and logs nothing",
  ignore: !HAVE_CHROMIUM && !REQUIRED,
  async fn(t) {
    if (!HAVE_CHROMIUM) {
      assert.fail(
        `${CHROMIUM} is missing and SIGMAX_REQUIRE_BROWSER=1: install it (apt-get install -y chromium)`,
      );
    }
    const { chromium } = await loadPlaywright();
    const dir = await Deno.makeTempDir({ prefix: "sigmax-report-browser-" });
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox"],
      timeout: 30_000,
    });
    try {
      const open = async (name: string, results: SweepResults): Promise<PageOutcome> => {
        const file = `${dir}/${name}.html`;
        await Deno.writeTextFile(file, await reportHtml(results));
        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        const problems: string[] = [];
        // The page logs nothing when it works: any console message is a problem.
        page.on("console", (msg) => problems.push(`console.${msg.type()}: ${msg.text()}`));
        page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
        page.on("requestfailed", (req) => problems.push(`request failed: ${req.url()}`));
        page.on("request", (req) => {
          if (!req.url().startsWith("file:") && !req.url().startsWith("data:")) {
            problems.push(`request to ${req.url()}`);
          }
        });
        try {
          await page.goto(new URL(`file://${file}`).href, { timeout: 30_000 });
          await page.waitForFunction(
            () => typeof (globalThis as Record<string, unknown>).__sigmaxCharts === "number",
            undefined,
            { timeout: 30_000 },
          );
          // Each canvas: its size, and whether any pixel has alpha > 0 (a blank canvas has none).
          const outcome = await page.evaluate(() => {
            const g = globalThis as unknown as {
              __sigmaxCharts: number;
              document: {
                querySelectorAll(sel: string): ArrayLike<{
                  id: string;
                  width: number;
                  height: number;
                  getContext(kind: "2d"): {
                    getImageData(x: number, y: number, w: number, h: number): {
                      data: Uint8ClampedArray;
                    };
                  } | null;
                }>;
              };
            };
            const canvases = Array.from(g.document.querySelectorAll("canvas")).map((c) => {
              const data = c.width > 0 && c.height > 0
                ? c.getContext("2d")?.getImageData(0, 0, c.width, c.height).data
                : undefined;
              let painted = false;
              for (let i = 3; data && i < data.length; i += 4) {
                if (data[i] !== 0) {
                  painted = true;
                  break;
                }
              }
              return { id: c.id, width: c.width, height: c.height, painted };
            });
            return { charts: g.__sigmaxCharts, canvases };
          });
          return { ...outcome, problems };
        } finally {
          await page.close();
        }
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
