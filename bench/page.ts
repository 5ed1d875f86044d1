/**
 * What the two HTML reports (the throughput sweep's and the study's) share:
 * the page style, HTML and JSON escaping, Chart.js's inlined source, the
 * chart specs ({@linkcode PageChart}) and the one page script that draws
 * them (bench/page_script.js, plain JavaScript checked by `deno check` and
 * `deno lint`, inlined into each page by {@linkcode pageScripts}). What
 * differs between the pages is data: each chart's spec, and the page's
 * {@linkcode PageConfig}.
 *
 * @module
 */

import PAGE_SCRIPT from "./page_script.js" with { type: "text" };

/** The Chart.js release the pages inline (`npm:chart.js@4.6.1`, its UMD build). */
export const CHART_JS_VERSION = "4.6.1";

/** One point: `x` on the log₂ axis (seqLen or n), `y`, and the band's bounds (null: a gap). */
export interface PagePoint {
  x: number;
  y: number | null;
  low?: number | null;
  high?: number | null;
}

/** One line of a chart; with `band` (a fill colour) its points' `low`…`high` is shaded. */
export interface PageSeries {
  label: string;
  color: string;
  band?: string;
  /** Dash pattern (none: solid). */
  dash?: number[];
  /** A thin line without point markers (a fitted curve). */
  thin?: boolean;
  points: PagePoint[];
}

/** A horizontal reference line across the chart, in the legend. */
export interface PageLine {
  label: string;
  y: number;
  color: string;
  dash: number[];
}

/** A chart the page script draws on the canvas with id `id`. */
export interface PageChart {
  id: string;
  title: string;
  /** The x axis's title; `xName` prefixes the x value in tooltips ("seqLen", "n ="). */
  xTitle: string;
  xName: string;
  yTitle: string;
  yLog: boolean;
  /**
   * A linear y axis: `"zero"` from 0; `"one"` (ratios) zoomed on the data
   * with 1 in view and a dashed line there; `"fit"` the data ± 5%. A log
   * axis spans whole decades.
   */
  yRange: "zero" | "one" | "fit";
  /** How tooltips format values. */
  format: "gflops" | "ratio" | "percent" | "mib" | "sci" | "fixed";
  series: PageSeries[];
  lines: PageLine[];
}

/** What differs between the pages beyond their charts. */
export interface PageConfig {
  /** Prefix of the page's console messages, e.g. "sigmax report". */
  tag: string;
  /** The class of the note that replaces a chart that failed to draw. */
  noteClass: string;
  /** Legend entries as point styles (a reference line shows as a line). */
  legendPointStyle: boolean;
}

/** The reports' CSS (`chartHeight` in px). */
export function pageStyle(chartHeight: number): string {
  return `
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1500px; padding: 0 20px 40px; color: #222; }
  h1 { font-size: 22px; margin: 20px 0 6px; }
  h2 { font-size: 18px; margin: 28px 0 4px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
  h3 { font-size: 16px; margin: 22px 0 4px; }
  h4 { font-size: 14px; margin: 14px 0 2px; }
  dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; }
  dl.meta dt { color: #666; }
  dl.meta dd { margin: 0; }
  nav a { margin-right: 12px; }
  .about { color: #555; margin: 4px 0 10px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); gap: 14px; }
  .chart { position: relative; height: ${chartHeight}px; border: 1px solid #eee; border-radius: 4px; padding: 4px; margin: 0; }
  .note { color: #8a5a00; background: #fff8e6; border: 1px solid #f0dca0; border-radius: 4px; padding: 6px 10px; margin: 4px 0; }
  #page-error { color: #a00; background: #fee; border: 1px solid #e99; padding: 8px; }
  table { border-collapse: collapse; margin: 8px 0; }
  th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  th { background: #f6f6f6; }
  .muted { color: #888; font-weight: normal; }
`;
}

/** `text` with `& < > " '` escaped, safe in HTML text and in quoted attributes. */
/**
 * An HTML table: headers escaped, cells inserted as given (already HTML),
 * the columns flagged in `numeric` right-aligned.
 */
export function htmlTable(headers: string[], rows: string[][], numeric: boolean[]): string {
  const head = headers.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const body = rows.map((row) =>
    `<tr>${
      row.map((cell, i) => `<td${numeric[i] ? ' class="num"' : ""}>${cell}</td>`).join("")
    }</tr>`
  ).join("\n");
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

/** JSON that is safe inside a `<script>` element. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

/**
 * The end of a page: the charts' specs and the page's settings as JSON
 * (`<script id="sigmax-charts">`, `<script id="sigmax-page">`), then the page
 * script (bench/page_script.js) that draws them.
 */
export function pageScripts(charts: readonly PageChart[], config: PageConfig): string {
  if (/<\/script/i.test(PAGE_SCRIPT)) throw new Error("page_script.js contains </script");
  return `<script type="application/json" id="sigmax-charts">${scriptJson(charts)}</script>
<script type="application/json" id="sigmax-page">${scriptJson(config)}</script>
<script>
${PAGE_SCRIPT}
</script>`;
}

/** The `<script>` that inlines Chart.js's source, refused if it would break the page. */
export function chartJsScript(chartJs: string): string {
  if (/<\/script/i.test(chartJs) || /<!--/.test(chartJs)) {
    throw new Error("the Chart.js source contains </script or <!-- and cannot be inlined");
  }
  return `<!-- Chart.js ${CHART_JS_VERSION} (MIT License), inlined so that the page opens offline. -->
<script>
${chartJs}
</script>`;
}

let chartJsSource: Promise<string> | undefined;

/**
 * Chart.js's UMD build, read from the `npm:chart.js@4.6.1` package. The
 * import puts the package in the module graph (and node_modules), so that
 * `import.meta.resolve` finds its files; the UMD build sits beside the ESM
 * entry point in `dist/`.
 */
export function loadChartJs(): Promise<string> {
  chartJsSource ??= (async () => {
    await _importAtRuntime("npm:chart.js@4.6.1");
    const entry = import.meta.resolve("npm:chart.js@4.6.1");
    if (!entry.startsWith("file:")) {
      throw new Error(`cannot locate Chart.js ${CHART_JS_VERSION}: it resolved to ${entry}`);
    }
    return await Deno.readTextFile(new URL("./chart.umd.js", entry));
  })();
  chartJsSource.catch(() => chartJsSource = undefined);
  return chartJsSource;
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
