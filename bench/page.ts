/**
 * What the two HTML reports (the throughput sweep's and the study's) share:
 * the page style and the script that draws every chart spec embedded in the
 * page, counts the ones drawn in `window.__sigmaxCharts`, and turns a chart
 * that fails into a note in the page and one console error.
 *
 * @module
 */

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

/**
 * The end of a page script: draws every spec of the JSON in
 * `<script id="sigmax-charts">` with the page's own `config(spec)` and
 * `replaceWithNote(canvas, text)`, and sets `window.__sigmaxCharts`.
 * `tag` prefixes the console messages (e.g. "sigmax report").
 */
export function drawChartsScript(tag: string): string {
  return String.raw`  var drawn = 0;
  try {
    var specs = JSON.parse(document.getElementById("sigmax-charts").textContent);
    if (typeof Chart !== "function") throw new Error("Chart.js is missing from the page");
    specs.forEach(function (spec) {
      var canvas = document.getElementById(spec.id);
      if (!canvas) {
        console.error("${tag}: no canvas for " + spec.id);
        return;
      }
      try {
        new Chart(canvas, config(spec));
        drawn++;
      } catch (err) {
        replaceWithNote(canvas, "This chart could not be drawn: " + (err && err.message));
        console.error("${tag}: chart " + spec.id + ": " + (err && err.message));
      }
    });
  } catch (err) {
    var banner = document.getElementById("page-error");
    banner.textContent = "The charts could not be drawn: " + (err && err.message);
    banner.hidden = false;
    console.error("${tag}: " + (err && err.message));
  }
  window.__sigmaxCharts = drawn;
})();`;
}
