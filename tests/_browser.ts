/**
 * The shared headless-browser harness of the report tests
 * (tests/report_browser_test.ts, tests/study_report_browser_test.ts):
 * Debian's /usr/bin/chromium driven by playwright-core over a pipe, no
 * network. {@linkcode openPage} opens a generated page from a file:// URL and
 * reports its chart count, its canvases (size, and whether any pixel is
 * painted) and every console message, page error and request to anything but
 * its own file.
 *
 * Without /usr/bin/chromium the browser tests are skipped with a message,
 * unless SIGMAX_REQUIRE_BROWSER=1 (CI), where they fail instead. Install the
 * browser with `apt-get install -y chromium`.
 *
 * Permissions: the suite's --allow-env --allow-read --allow-write --allow-run
 * are enough. playwright-core asks, as it loads, for os.homedir() and
 * os.release() (Deno: --allow-sys) and fs.existsSync() on a file under
 * /proc/sys (Deno: --allow-all) to find Chrome's config folder and to detect
 * WSL; neither matters for launching a given executable on Linux, so
 * {@linkcode loadPlaywright} answers those three calls itself while
 * playwright-core loads.
 */

import os from "node:os";
import fs from "node:fs";
import type { Browser, Page } from "npm:playwright-core@1.65.1";

/** The browser the tests drive. */
export const CHROMIUM = "/usr/bin/chromium";
/** SIGMAX_REQUIRE_BROWSER=1: a missing browser fails the browser tests instead of skipping them. */
export const REQUIRED = Deno.env.get("SIGMAX_REQUIRE_BROWSER") === "1";

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Whether {@linkcode CHROMIUM} is installed. */
export const HAVE_CHROMIUM = exists(CHROMIUM);

/**
 * Says, once per test module, what happens without the browser: `name` is
 * skipped, or fails when {@linkcode REQUIRED}. Prints nothing when the
 * browser is there.
 */
export function announceBrowser(name: string): void {
  if (HAVE_CHROMIUM) return;
  console.log(
    REQUIRED
      ? `${name}: ${CHROMIUM} is missing and SIGMAX_REQUIRE_BROWSER=1: failing. ` +
        `Install it with: apt-get install -y chromium`
      : `${name}: SKIPPED: ${CHROMIUM} is missing (apt-get install -y chromium; ` +
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
export async function loadPlaywright(): Promise<typeof import("npm:playwright-core@1.65.1")> {
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
    return await _importAtRuntime("npm:playwright-core@1.65.1");
  } finally {
    Object.assign(nodeOs, { homedir: saved.homedir, release: saved.release });
    nodeFs.existsSync = saved.existsSync;
  }
}

/**
 * Launches headless {@linkcode CHROMIUM} (fails the test when it is missing).
 * With `webgpu`, Chromium gets WebGPU on its SwiftShader software adapter, and
 * its environment loses `LD_PRELOAD`: tests/run.ts preloads the Vulkan drivers
 * into the test process, and a GPU process that inherits them finds no adapter.
 */
export async function launchBrowser(options: { webgpu?: boolean } = {}): Promise<Browser> {
  if (!HAVE_CHROMIUM) {
    throw new Error(
      `${CHROMIUM} is missing and SIGMAX_REQUIRE_BROWSER=1: install it (apt-get install -y chromium)`,
    );
  }
  const { chromium } = await loadPlaywright();
  const webgpu = [
    "--enable-unsafe-webgpu",
    "--enable-unsafe-swiftshader",
    "--use-webgpu-adapter=swiftshader",
    "--enable-features=Vulkan",
    "--use-vulkan=swiftshader",
  ];
  return await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", ...(options.webgpu ? webgpu : [])],
    timeout: 30_000,
    ...(options.webgpu
      ? {
        env: Object.fromEntries(
          Object.entries(Deno.env.toObject()).filter(([name]) => name !== "LD_PRELOAD"),
        ),
      }
      : {}),
  });
}

/** Loads `file` in `page` and waits until its script has set `window.__sigmaxCharts`. */
export async function gotoChartsPage(page: Page, file: string): Promise<void> {
  await page.goto(new URL(`file://${file}`).href, { timeout: 30_000 });
  await page.waitForFunction(
    () => typeof (globalThis as Record<string, unknown>).__sigmaxCharts === "number",
    undefined,
    { timeout: 30_000 },
  );
}

/** What a page did: its chart count, its canvases, and every message, error or request it made. */
export interface PageOutcome {
  charts: number;
  canvases: { id: string; width: number; height: number; painted: boolean }[];
  problems: string[];
  /** The text of the page's `#page-error` banner when it is shown, else "". */
  banner: string;
  /** The text of every `.chart-error` note (a chart replaced after it failed). */
  chartErrors: string[];
}

/**
 * Opens `file` (an HTML file) in a new page of `browser`, waits until it sets
 * `window.__sigmaxCharts`, and reports what it drew and every console
 * message, page error, failed request and request to anything but a file: or
 * data: URL.
 */
export async function openPage(browser: Browser, file: string): Promise<PageOutcome> {
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
    await gotoChartsPage(page, file);
    // Each canvas: its size, and whether any pixel has alpha > 0 (a blank canvas has none).
    const outcome = await page.evaluate(() => {
      interface El {
        id: string;
        hidden: boolean;
        textContent: string | null;
      }
      const g = globalThis as unknown as {
        __sigmaxCharts: number;
        document: {
          getElementById(id: string): El | null;
          querySelectorAll(sel: ".chart-error"): ArrayLike<El>;
          querySelectorAll(sel: "canvas"): ArrayLike<{
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
      const banner = g.document.getElementById("page-error");
      return {
        charts: g.__sigmaxCharts,
        canvases,
        banner: banner && !banner.hidden ? banner.textContent ?? "" : "",
        chartErrors: Array.from(g.document.querySelectorAll(".chart-error")).map((e) =>
          e.textContent ?? ""
        ),
      };
    });
    return { ...outcome, problems };
  } finally {
    await page.close();
  }
}

/**
 * Imports an npm package when the code that needs it runs. A literal
 * `import("npm:…")` puts the package in the module graph, and Deno then
 * installs every package of deno.lock before the program starts (374 MB,
 * mostly TF.js), also for commands that never load it; a specifier the graph
 * cannot read is resolved only here.
 */
// deno-lint-ignore no-explicit-any
function _importAtRuntime(specifier: string): Promise<any> {
  return import(specifier);
}
