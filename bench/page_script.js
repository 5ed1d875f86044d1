// @ts-check
/// <reference lib="dom" />
/**
 * The script of sigmax's HTML reports (the throughput sweep's and the
 * study's), inlined into each page by bench/page.ts. It draws every chart of
 * the JSON in `<script id="sigmax-charts">` (a list of `PageChart`, the type
 * bench/page.ts declares) with Chart.js, which the page inlines before it,
 * following the page's settings in `<script id="sigmax-page">`
 * (`PageConfig`); counts the charts drawn in `window.__sigmaxCharts`; and
 * turns a chart that fails into a note in the page and one console error.
 *
 * Every chart has a log₂ x axis. A series with `band` set draws its points'
 * `low`…`high` range as a shaded band under the line (the sweep: the fastest
 * and slowest timed run; the study: a confidence interval); a point whose
 * bounds are null leaves a gap in the band, not in the line.
 *
 * Plain JavaScript that browsers run as it is, type-checked by `deno check`
 * through the JSDoc types below (`// @ts-check`) and linted by `deno lint`.
 *
 * @module
 */

/**
 * @typedef {{ x: number, y: number | null, low?: number | null, high?: number | null }} PagePoint
 * @typedef {{ label: string, color: string, band?: string, dash?: number[], thin?: boolean,
 *   points: PagePoint[] }} PageSeries
 * @typedef {{ label: string, y: number, color: string, dash: number[] }} PageLine
 * @typedef {{ id: string, title: string, xTitle: string, xName: string, yTitle: string,
 *   yLog: boolean, yRange: "zero" | "one" | "fit",
 *   format: "gflops" | "ratio" | "percent" | "mib" | "sci" | "fixed",
 *   series: PageSeries[], lines: PageLine[] }} PageChart
 * @typedef {{ tag: string, noteClass: string, legendPointStyle: boolean }} PageConfig
 * @typedef {{ x: number, y: number | null, seqX?: number, low?: number | null,
 *   high?: number | null }} Datum
 * @typedef {{ top: number, bottom: number, left: number, right: number }} Area
 * @typedef {{ scales: { y: { getPixelForValue(v: number): number } }, chartArea: Area,
 *   ctx: CanvasRenderingContext2D }} DrawnChart
 * @typedef {{ raw: Datum, parsed: { y: number }, dataset: { label: string, band?: boolean,
 *   line?: boolean } }} TooltipItem
 * @typedef {new (canvas: HTMLElement, config: object) => unknown} ChartConstructor
 */

(function () {
  "use strict";

  /**
   * The JSON inside the `<script type="application/json">` with this id.
   * @param {string} id
   * @returns {unknown}
   */
  function embedded(id) {
    const el = document.getElementById(id);
    if (!el) throw new Error(`the page has no <script id="${id}">`);
    return JSON.parse(el.textContent || "null");
  }

  /** @param {number} n */
  function fmtX(n) {
    return n >= 1024 && n % 1024 === 0 ? n / 1024 + "K" : String(n);
  }

  /** @param {number} b */
  function fmtBytes(b) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let u = 0;
    while (b >= 1024 && u < units.length - 1) {
      b /= 1024;
      u++;
    }
    return u === 0 ? b + " B" : b.toFixed(b < 10 ? 2 : 1) + " " + units[u];
  }

  /**
   * @param {PageChart["format"]} format
   * @param {number | null | undefined} v
   */
  function fmtValue(format, v) {
    if (v === null || v === undefined || !isFinite(v)) return "\u2014";
    switch (format) {
      case "ratio":
        return v.toFixed(2) + "\u00d7";
      case "percent":
        return v.toFixed(1) + "%";
      case "mib":
        return fmtBytes(v * 1048576);
      case "gflops":
        return v.toFixed(1) + " GFLOP/s";
      case "fixed":
        return v.toFixed(3);
      default: {
        const a = Math.abs(v);
        return a >= 0.01 && a < 100 ? v.toFixed(3) : v === 0 ? "0" : v.toExponential(2);
      }
    }
  }

  /**
   * @param {HTMLElement} canvas
   * @param {string} className
   * @param {string} text
   */
  function replaceWithNote(canvas, className, text) {
    const p = document.createElement("p");
    p.className = className;
    p.textContent = text;
    const box = canvas.parentNode;
    if (box && box.parentNode) box.parentNode.replaceChild(p, box);
  }

  /** Draws a dashed line at y = 1 (ratio charts) when 1 is in view. */
  const oneLine = {
    id: "sigmaxOne",
    /** @param {DrawnChart} chart */
    afterDatasetsDraw(chart) {
      const area = chart.chartArea;
      const py = chart.scales.y.getPixelForValue(1);
      if (!(py >= area.top && py <= area.bottom)) return;
      const ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = "rgba(0, 0, 0, 0.45)";
      ctx.setLineDash([3, 3]);
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(area.left, py);
      ctx.lineTo(area.right, py);
      ctx.stroke();
      ctx.restore();
    },
  };

  /** @param {number | null | undefined} v */
  function finite(v) {
    return typeof v === "number" && isFinite(v);
  }

  /**
   * The Chart.js configuration of one chart.
   * @param {PageChart} spec
   * @param {PageConfig} page
   */
  function config(spec, page) {
    let lo = Infinity, hi = -Infinity, ylo = Infinity, yhi = -Infinity;
    /** @param {number | null | undefined} v */
    const seeY = (v) => {
      if (!finite(v) || (spec.yLog && !(/** @type {number} */ (v) > 0))) return;
      ylo = Math.min(ylo, /** @type {number} */ (v));
      yhi = Math.max(yhi, /** @type {number} */ (v));
    };
    for (const s of spec.series) {
      for (const p of s.points) {
        const x = Math.log2(p.x);
        lo = Math.min(lo, x);
        hi = Math.max(hi, x);
        seeY(p.y);
        if (s.band) {
          seeY(p.low);
          seeY(p.high);
        }
      }
    }
    if (lo === hi) {
      lo -= 0.5;
      hi += 0.5;
    }
    const pad = 0.04 * (hi - lo);
    /** @type {object[]} */
    const datasets = [];
    for (const s of spec.series) {
      if (s.band) {
        /** @param {"low" | "high"} key */
        const at = (key) =>
          s.points.map((p) => ({ x: Math.log2(p.x), y: p[key] ?? null, seqX: p.x }));
        const band = {
          band: true,
          borderWidth: 0,
          pointRadius: 0,
          pointHitRadius: 0,
          tension: 0,
          borderColor: s.band,
          backgroundColor: s.band,
        };
        // The band: the low bounds, then the high bounds filled down to them.
        datasets.push({ ...band, label: s.label + " low", data: at("low"), fill: false });
        datasets.push({ ...band, label: s.label + " high", data: at("high"), fill: "-1" });
      }
      datasets.push({
        label: s.label,
        data: s.points.map((p) => ({
          x: Math.log2(p.x),
          y: p.y,
          seqX: p.x,
          low: p.low,
          high: p.high,
        })),
        borderColor: s.color,
        backgroundColor: s.color,
        pointBackgroundColor: s.color,
        borderWidth: s.thin ? 1.5 : 2,
        pointRadius: s.thin ? 0 : 3,
        borderDash: s.dash || [],
        fill: false,
        tension: 0,
      });
    }
    for (const l of spec.lines) {
      if (spec.yLog && !(l.y > 0)) continue;
      seeY(l.y);
      datasets.push({
        label: l.label,
        line: true,
        pointStyle: "line",
        data: [{ x: lo - pad, y: l.y }, { x: hi + pad, y: l.y }],
        borderColor: l.color,
        backgroundColor: l.color,
        borderDash: l.dash,
        borderWidth: 1.5,
        pointRadius: 0,
        pointHitRadius: 0,
        fill: false,
      });
    }
    /** @type {Record<string, unknown>} */
    const y = {
      type: spec.yLog ? "logarithmic" : "linear",
      title: { display: true, text: spec.yTitle },
    };
    if (spec.yLog && ylo < Infinity) {
      const min = Math.pow(10, Math.floor(Math.log10(ylo)));
      const max = Math.pow(10, Math.ceil(Math.log10(yhi)));
      y.min = min;
      y.max = max === min ? min * 10 : max;
      // Label 1, 2 and 5 of each decade only.
      y.ticks = {
        autoSkip: false,
        /** @param {number} v */
        callback(v) {
          const m = v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9)), r = Math.round(m);
          return Math.abs(m - r) < 1e-6 && (r === 1 || r === 2 || r === 5)
            ? String(Number(v.toPrecision(3)))
            : "";
        },
      };
    } else if (spec.yRange === "one") {
      // Ratios: zoom on the data, with 1 always in view.
      y.suggestedMin = 1;
      y.suggestedMax = 1;
    } else if (spec.yRange === "zero") {
      y.beginAtZero = true;
    } else if (ylo < Infinity) {
      const span = yhi - ylo || Math.abs(yhi) || 1;
      y.suggestedMin = ylo - 0.05 * span;
      y.suggestedMax = yhi + 0.05 * span;
    }
    if (spec.format === "percent" && !spec.yLog) {
      y.ticks = { callback: /** @param {number} v */ (v) => v + "%" };
    }
    return {
      type: "line",
      data: { datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "nearest", intersect: false },
        scales: {
          x: {
            type: "linear",
            min: lo - pad,
            max: hi + pad,
            title: { display: true, text: spec.xTitle },
            ticks: {
              stepSize: 1,
              includeBounds: false,
              /** @param {number} v */
              callback: (v) => (Number.isInteger(v) ? fmtX(Math.pow(2, v)) : ""),
            },
          },
          y,
        },
        plugins: {
          title: { display: true, text: spec.title },
          legend: {
            position: "bottom",
            labels: {
              boxWidth: 24,
              boxHeight: 8,
              usePointStyle: page.legendPointStyle,
              /**
               * @param {{ datasetIndex: number }} item
               * @param {{ datasets: { band?: boolean }[] }} data
               */
              filter: (item, data) => !data.datasets[item.datasetIndex].band,
            },
          },
          tooltip: {
            /** @param {TooltipItem} item */
            filter: (item) => !item.dataset.band && !item.dataset.line,
            callbacks: {
              /** @param {TooltipItem[]} items */
              title: (items) =>
                items.length && items[0].raw.seqX ? spec.xName + " " + items[0].raw.seqX : "",
              /** @param {TooltipItem} item */
              label(item) {
                const r = item.raw;
                const value = item.dataset.label + ": " + fmtValue(spec.format, r.y);
                if (r.low === undefined && r.high === undefined) return value;
                return value + " [" + fmtValue(spec.format, r.low) + ", " +
                  fmtValue(spec.format, r.high) + "]";
              },
            },
          },
        },
      },
      plugins: spec.yRange === "one" ? [oneLine] : [],
    };
  }

  /** @type {PageConfig} */
  let page = { tag: "sigmax", noteClass: "note", legendPointStyle: false };
  let drawn = 0;
  try {
    page = /** @type {PageConfig} */ (embedded("sigmax-page"));
    const specs = /** @type {PageChart[]} */ (embedded("sigmax-charts"));
    const Chart = /** @type {{ Chart?: ChartConstructor }} */ (/** @type {unknown} */ (globalThis))
      .Chart;
    if (typeof Chart !== "function") throw new Error("Chart.js is missing from the page");
    for (const spec of specs) {
      const canvas = document.getElementById(spec.id);
      if (!canvas) {
        console.error(page.tag + ": no canvas for " + spec.id);
        continue;
      }
      try {
        new Chart(canvas, config(spec, page));
        drawn++;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        replaceWithNote(canvas, page.noteClass, "This chart could not be drawn: " + message);
        console.error(page.tag + ": chart " + spec.id + ": " + message);
      }
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const banner = document.getElementById("page-error");
    if (banner) {
      banner.textContent = "The charts could not be drawn: " + message;
      banner.hidden = false;
    }
    console.error(page.tag + ": " + message);
  }
  Object.assign(window, { __sigmaxCharts: drawn });
})();
