/**
 * The sweep's report: `deno task report -- RESULTS.json [--out FILE] [--markdown FILE]`.
 *
 * Reads the JSON document that `deno task bench -- --preset …` writes
 * ({@linkcode SweepResults}) and makes
 *
 * - a self-contained HTML page ({@linkcode reportHtml}): Chart.js inlined,
 *   the results embedded, opens offline. Charts per (pass, precision, head
 *   dim, causal, batch × heads) group: GFLOP/s, sigmoid/softmax, fused/unfused
 *   and fused/TF.js, fraction of the matmul roofline, and peak memory, each
 *   against the sequence length on a log₂ axis; tables of the longest
 *   sequences, the failures and the training steps. A chart without data is
 *   replaced by a note. The page sets `window.__sigmaxCharts` to the number of
 *   charts it drew and logs nothing when all went well;
 * - a Markdown summary for the README ({@linkcode reportMarkdown}).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import type {
  Implementation,
  MaxSeqLenRecord,
  SweepFailure,
  SweepRecord,
  SweepResults,
  TrainingStepRecord,
} from "./results.ts";
import { drawChartsScript, pageStyle } from "./page.ts";

/** The Chart.js release the page inlines (`npm:chart.js@4.6.1`, its UMD build). */
export const CHART_JS_VERSION = "4.6.1";

// ---------------------------------------------------------------------------
// Validation

/** A results document that is not a valid {@linkcode SweepResults}; `field` names the first bad field. */
export class ResultsError extends Error {
  /** The path of the first bad field, e.g. `records[3].gflops` (`""` for the document itself). */
  readonly field: string;

  /** Makes the error for `field` with a message that names it. */
  constructor(field: string, message: string) {
    super(message);
    this.name = "ResultsError";
    this.field = field;
  }
}

type Json = Record<string, unknown>;

const IMPLEMENTATIONS = ["fused", "unfused", "tfjs"] as const;
const ACTIVATIONS = ["softmax", "sigmoid"] as const;
const PASSES = ["forward", "backward"] as const;
const PRECISIONS = ["f32", "f16"] as const;

function describe(value: unknown): string {
  if (value === undefined) return "nothing (the field is missing)";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  }
  return String(value);
}

function bad(field: string, what: string, got: unknown): never {
  throw new ResultsError(field, `${field || "the document"} must be ${what}, got ${describe(got)}`);
}

function object(value: unknown, field: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    bad(field, "an object", value);
  }
  return value as Json;
}

function array(o: Json, key: string, field: string): unknown[] {
  const value = o[key];
  if (!Array.isArray(value)) bad(field, "an array", value);
  return value;
}

function string(o: Json, key: string, field: string, optional = false): void {
  const value = o[key];
  if (optional && value === undefined) return;
  if (typeof value !== "string") bad(field, "a string", value);
}

function boolean(o: Json, key: string, field: string): void {
  if (typeof o[key] !== "boolean") bad(field, "true or false", o[key]);
}

function number(
  o: Json,
  key: string,
  field: string,
  kind: "positive integer" | "non-negative" = "non-negative",
  optional = false,
): void {
  const value = o[key];
  if (optional && value === undefined) return;
  if (typeof value !== "number" || !Number.isFinite(value)) bad(field, "a finite number", value);
  if (kind === "positive integer" && !(Number.isInteger(value) && value > 0)) {
    bad(field, "a positive integer", value);
  }
  if (kind === "non-negative" && value < 0) bad(field, "a number ≥ 0", value);
}

function oneOf(o: Json, key: string, field: string, values: readonly string[]): void {
  const value = o[key];
  if (typeof value !== "string" || !values.includes(value)) {
    bad(field, `one of ${values.map((v) => `"${v}"`).join(", ")}`, value);
  }
}

/** The fields a record and a failure share: who, which pass, which shape. */
function checkCase(o: Json, at: string): void {
  oneOf(o, "impl", `${at}.impl`, IMPLEMENTATIONS);
  oneOf(o, "activation", `${at}.activation`, ACTIVATIONS);
  oneOf(o, "pass", `${at}.pass`, PASSES);
  oneOf(o, "precision", `${at}.precision`, PRECISIONS);
  for (const key of ["batch", "heads", "seqLen", "headDim"]) {
    number(o, key, `${at}.${key}`, "positive integer");
  }
  boolean(o, "causal", `${at}.causal`);
}

/**
 * Checks that `doc` (parsed JSON) is a results document this report can read:
 * version 1, every array present, every enum one of its values, every number
 * finite (and a positive integer for batch, heads, seqLen, headDim).
 * Returns it typed; throws a {@linkcode ResultsError} naming the first bad
 * field otherwise (e.g. `records[3].gflops must be a finite number, got null`).
 */
export function validateResults(doc: unknown): SweepResults {
  const o = object(doc, "");
  if (o.version !== 1) bad("version", "1", o.version);
  string(o, "preset", "preset");
  string(o, "date", "date");
  const adapter = object(o.adapter, "adapter");
  string(adapter, "description", "adapter.description");
  boolean(adapter, "software", "adapter.software");
  boolean(adapter, "shaderF16", "adapter.shaderF16");
  number(o, "seconds", "seconds");
  for (const [i, item] of array(o, "records", "records").entries()) {
    const at = `records[${i}]`;
    const r = object(item, at);
    checkCase(r, at);
    for (const key of ["msMedian", "msMin", "msMax", "gflops", "peakBytes", "msWallMedian"]) {
      number(r, key, `${at}.${key}`);
    }
    oneOf(r, "clock", `${at}.clock`, ["timestamp", "wall"]);
  }
  for (const [i, item] of array(o, "failures", "failures").entries()) {
    const at = `failures[${i}]`;
    const f = object(item, at);
    checkCase(f, at);
    string(f, "error", `${at}.error`);
  }
  for (const [i, item] of array(o, "maxSeqLen", "maxSeqLen").entries()) {
    const at = `maxSeqLen[${i}]`;
    const m = object(item, at);
    oneOf(m, "impl", `${at}.impl`, IMPLEMENTATIONS);
    oneOf(m, "activation", `${at}.activation`, ACTIVATIONS);
    number(m, "headDim", `${at}.headDim`, "positive integer");
    number(m, "maxSeqLen", `${at}.maxSeqLen`);
    number(m, "failedAt", `${at}.failedAt`, "non-negative", true);
    string(m, "reason", `${at}.reason`, true);
    number(m, "boundBytes", `${at}.boundBytes`);
  }
  if (o.roofline !== undefined) {
    const r = object(o.roofline, "roofline");
    number(r, "gflops", "roofline.gflops");
    number(r, "size", "roofline.size");
    number(r, "tfjsGflops", "roofline.tfjsGflops", "non-negative", true);
  }
  for (const [i, item] of array(o, "training", "training").entries()) {
    const at = `training[${i}]`;
    const t = object(item, at);
    oneOf(t, "impl", `${at}.impl`, ["sigmax", "tfjs"]);
    oneOf(t, "activation", `${at}.activation`, ACTIVATIONS);
    number(t, "tokensPerSecond", `${at}.tokensPerSecond`);
    number(t, "msMedian", `${at}.msMedian`);
    const model = object(t.model, `${at}.model`);
    for (const key of ["width", "layers", "heads", "seqLen", "batch"]) {
      number(model, key, `${at}.model.${key}`);
    }
  }
  if (o.model !== undefined) {
    if (!Array.isArray(o.model)) bad("model", "an array", o.model);
    for (const [i, item] of (o.model as unknown[]).entries()) {
      const at = `model[${i}]`;
      const m = object(item, at);
      oneOf(m, "pass", `${at}.pass`, PASSES);
      number(m, "headDim", `${at}.headDim`, "positive integer");
      for (
        const key of ["sigmoidOverSoftmax", "fusedOverUnfusedSoftmax", "fusedOverUnfusedSigmoid"]
      ) {
        number(m, key, `${at}.${key}`);
      }
    }
  }
  return doc as SweepResults;
}

// ---------------------------------------------------------------------------
// Grouping the records

/** What one chart shows: one pass at one precision, head dim, mask, batch and heads. */
interface Group {
  pass: "forward" | "backward";
  precision: "f32" | "f16";
  headDim: number;
  causal: boolean;
  batch: number;
  heads: number;
}

type Activation = "softmax" | "sigmoid";
/** seqLen → the record (the best of repeats). */
type Series = Map<number, SweepRecord>;

const IMPL_NAMES: Record<Implementation, string> = {
  fused: "fused",
  unfused: "unfused",
  tfjs: "TF.js",
};
const IMPL_COLORS: Record<Implementation, string> = {
  fused: "#1f77b4",
  unfused: "#d62728",
  tfjs: "#2ca02c",
};

function groupOf(r: SweepRecord): Group {
  const { pass, precision, headDim, causal, batch, heads } = r;
  return { pass, precision, headDim, causal, batch, heads };
}

function groupKey(g: Group): string {
  return `${g.pass}-${g.precision}-d${g.headDim}-${
    g.causal ? "causal" : "full"
  }-b${g.batch}h${g.heads}`;
}

function groupTitle(g: Group): string {
  return `${g.pass} · ${g.precision} · D=${g.headDim} · ${g.causal ? "causal" : "non-causal"} · ` +
    `B=${g.batch} H=${g.heads}`;
}

function compareGroups(a: Group, b: Group): number {
  return PASSES.indexOf(a.pass) - PASSES.indexOf(b.pass) ||
    PRECISIONS.indexOf(a.precision) - PRECISIONS.indexOf(b.precision) ||
    a.headDim - b.headDim || Number(a.causal) - Number(b.causal) || a.batch - b.batch ||
    a.heads - b.heads;
}

/** The records by group, then by `impl/activation`, then by seqLen. */
interface Grouped {
  group: Group;
  series: Map<string, Series>;
}

function seriesKey(impl: Implementation, activation: Activation): string {
  return `${impl}/${activation}`;
}

function groupRecords(records: readonly SweepRecord[]): Grouped[] {
  const groups = new Map<string, Grouped>();
  for (const r of records) {
    const group = groupOf(r);
    const key = groupKey(group);
    let g = groups.get(key);
    if (!g) groups.set(key, g = { group, series: new Map() });
    const sk = seriesKey(r.impl, r.activation);
    let s = g.series.get(sk);
    if (!s) g.series.set(sk, s = new Map());
    const old = s.get(r.seqLen);
    if (!old || r.gflops > old.gflops) s.set(r.seqLen, r);
  }
  return [...groups.values()].sort((a, b) => compareGroups(a.group, b.group));
}

/**
 * How much faster `num` ran than `den`, two records of the same shape (so of
 * the same FLOPs): the ratio of their GFLOP/s when both were timed on the same
 * clock; when the clocks differ (TF.js is timed on the wall clock, sigmax on
 * GPU timestamps where the adapter has them), the ratio of their wall-clock
 * medians, which the sweep records for every case.
 */
function speedRatio(num: SweepRecord, den: SweepRecord): number | undefined {
  const v = num.clock === den.clock ? num.gflops / den.gflops : den.msWallMedian / num.msWallMedian;
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

/** Points [seqLen, speed ratio] where both series have the seqLen. */
function ratioPoints(num: Series | undefined, den: Series | undefined): [number, number][] {
  if (!num || !den) return [];
  const out: [number, number][] = [];
  for (const [seqLen, r] of num) {
    const d = den.get(seqLen);
    const v = d && speedRatio(r, d);
    if (v !== undefined) out.push([seqLen, v]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

function points(s: Series | undefined, value: (r: SweepRecord) => number): [number, number][] {
  if (!s) return [];
  return [...s.entries()].map(([seqLen, r]): [number, number] => [seqLen, value(r)])
    .filter(([, v]) => Number.isFinite(v)).sort((a, b) => a[0] - b[0]);
}

// ---------------------------------------------------------------------------
// Chart plans

/** One line of a chart: `points` are [seqLen, y]. */
interface LineSpec {
  label: string;
  color: string;
  dashed: boolean;
  points: [number, number][];
}

/** The kinds of chart, in the page's order. */
type ChartKind = "throughput" | "activation" | "implementation" | "roofline" | "memory";

/** A chart the page draws (`series` non-empty), or a note in its place. */
interface ChartSpec {
  id: string;
  kind: ChartKind;
  title: string;
  /** The y axis: its title, its unit (how the page formats values), log or linear. */
  yTitle: string;
  unit: "gflops" | "ratio" | "percent" | "mib";
  yLog: boolean;
  /** Draw a dashed line at y = 1 (ratios). */
  one: boolean;
  series: LineSpec[];
}

interface ChartNote {
  kind: ChartKind;
  title: string;
  note: string;
}

const SECTIONS: { kind: ChartKind; heading: string; about: string }[] = [
  {
    kind: "throughput",
    heading: "Throughput",
    about: "GFLOP/s (useful attention FLOPs, backward counted as 2.5 × forward, over the median " +
      "time) against the sequence length, per implementation and activation. Solid: sigmoid; " +
      "dashed: softmax.",
  },
  {
    kind: "activation",
    heading: "Sigmoid / softmax",
    about: "Each implementation's sigmoid GFLOP/s over its softmax GFLOP/s at the same shape " +
      "(above 1: sigmoid is faster).",
  },
  {
    kind: "implementation",
    heading: "Fused / unfused and fused / TF.js",
    about: "The fused kernel's GFLOP/s over the unfused baseline's and over TF.js's, per " +
      "activation (above 1: fused is faster). Two cases timed on different clocks (TF.js: the wall " +
      "clock) are compared by their wall-clock medians.",
  },
  {
    kind: "roofline",
    heading: "Fraction of the matmul roofline",
    about: "GFLOP/s over our matmul's best GFLOP/s on this adapter.",
  },
  {
    kind: "memory",
    heading: "Peak memory",
    about: "GPU memory each case allocated (inputs, outputs and scratch), log scale.",
  },
];

/** Solid for sigmoid, dashed for softmax. */
function dashed(activation: Activation): boolean {
  return activation === "softmax";
}

function buildCharts(results: SweepResults): (ChartSpec | ChartNote)[] {
  const out: (ChartSpec | ChartNote)[] = [];
  const grouped = groupRecords(results.records);
  const roof = results.roofline && results.roofline.gflops > 0 ? results.roofline : undefined;
  for (const kind of SECTIONS.map((s) => s.kind)) {
    if (kind === "roofline" && !roof && grouped.length > 0) {
      out.push({ kind, title: "", note: "the results have no roofline measurement" });
      continue;
    }
    for (const { group, series } of grouped) {
      const key = groupKey(group);
      const title = groupTitle(group);
      const id = `chart-${kind}-${key}`;
      const lines: LineSpec[] = [];
      const perSeries = (value: (r: SweepRecord) => number) => {
        for (const impl of IMPLEMENTATIONS) {
          for (const activation of ACTIVATIONS) {
            const p = points(series.get(seriesKey(impl, activation)), value);
            if (p.length === 0) continue;
            lines.push({
              label: `${IMPL_NAMES[impl]} ${activation}`,
              color: IMPL_COLORS[impl],
              dashed: dashed(activation),
              points: p,
            });
          }
        }
      };
      let spec: Omit<ChartSpec, "id" | "kind" | "title" | "series"> | undefined;
      let note = "";
      switch (kind) {
        case "throughput":
          perSeries((r) => r.gflops);
          spec = { yTitle: "GFLOP/s", unit: "gflops", yLog: false, one: false };
          note = "no records";
          break;
        case "activation":
          for (const impl of IMPLEMENTATIONS) {
            const p = ratioPoints(
              series.get(seriesKey(impl, "sigmoid")),
              series.get(seriesKey(impl, "softmax")),
            );
            if (p.length === 0) continue;
            lines.push({
              label: `${IMPL_NAMES[impl]} sigmoid / softmax`,
              color: IMPL_COLORS[impl],
              dashed: false,
              points: p,
            });
          }
          spec = { yTitle: "sigmoid / softmax GFLOP/s", unit: "ratio", yLog: false, one: true };
          note = "no implementation ran both sigmoid and softmax here";
          break;
        case "implementation":
          for (const other of ["unfused", "tfjs"] as const) {
            for (const activation of ACTIVATIONS) {
              const p = ratioPoints(
                series.get(seriesKey("fused", activation)),
                series.get(seriesKey(other, activation)),
              );
              if (p.length === 0) continue;
              lines.push({
                label: `fused / ${IMPL_NAMES[other]} ${activation}`,
                color: IMPL_COLORS[other],
                dashed: dashed(activation),
                points: p,
              });
            }
          }
          spec = { yTitle: "ratio of GFLOP/s", unit: "ratio", yLog: false, one: true };
          note = "needs fused records and unfused or TF.js records at the same shape";
          break;
        case "roofline":
          if (roof) perSeries((r) => 100 * r.gflops / roof.gflops);
          spec = {
            yTitle: "% of matmul roofline",
            unit: "percent",
            yLog: false,
            one: false,
          };
          note = "no records";
          break;
        case "memory":
          perSeries((r) => (r.peakBytes > 0 ? r.peakBytes / 2 ** 20 : NaN));
          spec = { yTitle: "peak memory (MiB, log scale)", unit: "mib", yLog: true, one: false };
          note = "no record has a peak memory size";
          break;
      }
      if (lines.length > 0 && spec) out.push({ id, kind, title, series: lines, ...spec });
      else out.push({ kind, title, note });
    }
  }
  return out;
}

function isChart(c: ChartSpec | ChartNote): c is ChartSpec {
  return "series" in c;
}

// ---------------------------------------------------------------------------
// Formatting

function fmtNumber(v: number): string {
  return v.toFixed(1);
}

function fmtRatio(v: number): string {
  return `${v.toFixed(2)}×`;
}

function fmtPercent(v: number): string {
  return `${v.toFixed(1)}%`;
}

function fmtBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

function fmtDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  return h > 0 ? `${h} h ${m} min ${rest} s` : `${m} min ${rest} s`;
}

/** `text` with `& < > " '` escaped, safe in HTML text and in quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

/** JSON that is safe inside a `<script>` element. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

// ---------------------------------------------------------------------------
// Chart.js

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

// ---------------------------------------------------------------------------
// HTML

/** The page's own script: draws every chart spec, notes the failures, sets `__sigmaxCharts`. */
const PAGE_SCRIPT = String.raw`(function () {
  "use strict";
  function fmtSeq(n) {
    return n >= 1024 && n % 1024 === 0 ? n / 1024 + "K" : String(n);
  }
  function fmtBytes(b) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], u = 0;
    while (b >= 1024 && u < units.length - 1) { b /= 1024; u++; }
    return u === 0 ? b + " B" : b.toFixed(b < 10 ? 2 : 1) + " " + units[u];
  }
  function fmtValue(unit, v) {
    if (unit === "ratio") return v.toFixed(2) + "\u00d7";
    if (unit === "percent") return v.toFixed(1) + "%";
    if (unit === "mib") return fmtBytes(v * 1048576);
    return v.toFixed(1) + " GFLOP/s";
  }
  function replaceWithNote(canvas, text) {
    var p = document.createElement("p");
    p.className = "note";
    p.textContent = text;
    var box = canvas.parentNode;
    box.parentNode.replaceChild(p, box);
  }
  var oneLine = {
    id: "sigmaxOne",
    afterDatasetsDraw: function (chart) {
      var y = chart.scales.y, area = chart.chartArea;
      var py = y.getPixelForValue(1);
      if (!(py >= area.top && py <= area.bottom)) return;
      var ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = "rgba(0, 0, 0, 0.45)";
      ctx.setLineDash([3, 3]);
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(area.left, py);
      ctx.lineTo(area.right, py);
      ctx.stroke();
      ctx.restore();
    }
  };
  function config(spec) {
    var lo = Infinity, hi = -Infinity;
    var datasets = spec.series.map(function (s) {
      return {
        label: s.label,
        borderColor: s.color,
        backgroundColor: "#ffffff",
        pointBackgroundColor: s.color,
        borderDash: s.dashed ? [6, 4] : [],
        borderWidth: 2,
        pointRadius: 3,
        tension: 0,
        data: s.points.map(function (p) {
          var x = Math.log2(p[0]);
          if (x < lo) lo = x;
          if (x > hi) hi = x;
          return { x: x, y: p[1], seqLen: p[0] };
        })
      };
    });
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    var pad = 0.04 * (hi - lo);
    var y = {
      type: spec.yLog ? "logarithmic" : "linear",
      title: { display: true, text: spec.yTitle }
    };
    if (spec.one) {
      // Ratios: zoom on the data, with 1 always in view.
      y.suggestedMin = 1;
      y.suggestedMax = 1;
    } else if (!spec.yLog) y.beginAtZero = true;
    if (spec.unit === "percent") y.ticks = { callback: function (v) { return v + "%"; } };
    return {
      type: "line",
      data: { datasets: datasets },
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
            title: { display: true, text: "sequence length (log\u2082 scale)" },
            ticks: {
              stepSize: 1,
              includeBounds: false,
              callback: function (v) {
                return Number.isInteger(v) ? fmtSeq(Math.pow(2, v)) : "";
              }
            }
          },
          y: y
        },
        plugins: {
          title: { display: true, text: spec.title },
          legend: {
            position: "bottom",
            labels: { boxWidth: 24, boxHeight: 8 }
          },
          tooltip: {
            callbacks: {
              title: function (items) {
                return items.length ? "seqLen " + items[0].raw.seqLen : "";
              },
              label: function (item) {
                return item.dataset.label + ": " + fmtValue(spec.unit, item.parsed.y);
              }
            }
          }
        }
      },
      plugins: spec.one ? [oneLine] : []
    };
  }
` + drawChartsScript("sigmax report");

const STYLE = pageStyle(300);

function table(headers: string[], rows: string[][], numeric: boolean[]): string {
  const head = headers.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const body = rows.map((row) =>
    `<tr>${
      row.map((cell, i) => `<td${numeric[i] ? ' class="num"' : ""}>${cell}</td>`).join("")
    }</tr>`
  ).join("\n");
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

const DASH = "—";

function maxSeqLenTable(rows: readonly MaxSeqLenRecord[]): string {
  if (rows.length === 0) return `<p class="note">No longest-sequence records.</p>`;
  return table(
    ["implementation", "activation", "D", "longest seqLen", "failed at", "reason", "memory bound"],
    sortMaxSeqLen(rows).map((m) => [
      escapeHtml(IMPL_NAMES[m.impl]),
      escapeHtml(m.activation),
      String(m.headDim),
      String(m.maxSeqLen),
      m.failedAt === undefined ? DASH : String(m.failedAt),
      m.reason === undefined ? DASH : escapeHtml(m.reason),
      escapeHtml(fmtBytes(m.boundBytes)),
    ]),
    [false, false, true, true, true, false, true],
  );
}

function failureTable(rows: readonly SweepFailure[]): string {
  if (rows.length === 0) return `<p>No case failed.</p>`;
  return table(
    [
      "pass",
      "implementation",
      "activation",
      "precision",
      "B",
      "H",
      "seqLen",
      "D",
      "causal",
      "error",
    ],
    rows.map((f) => [
      escapeHtml(f.pass),
      escapeHtml(IMPL_NAMES[f.impl]),
      escapeHtml(f.activation),
      escapeHtml(f.precision),
      String(f.batch),
      String(f.heads),
      String(f.seqLen),
      String(f.headDim),
      f.causal ? "yes" : "no",
      escapeHtml(f.error),
    ]),
    [false, false, false, false, true, true, true, true, false, false],
  );
}

function trainingTable(rows: readonly TrainingStepRecord[]): string {
  if (rows.length === 0) return `<p class="note">No training step records.</p>`;
  return table(
    ["implementation", "activation", "tokens/s", "ms/step (median)", "model"],
    rows.map((t) => [
      escapeHtml(t.impl === "tfjs" ? "TF.js" : t.impl),
      escapeHtml(t.activation),
      fmtNumber(t.tokensPerSecond),
      t.msMedian.toFixed(2),
      escapeHtml(modelText(t.model)),
    ]),
    [false, false, true, true, false],
  );
}

function modelText(m: TrainingStepRecord["model"]): string {
  return `width ${m.width}, ${m.layers} layers, ${m.heads} heads, seqLen ${m.seqLen}, batch ${m.batch}`;
}

function sortMaxSeqLen(rows: readonly MaxSeqLenRecord[]): MaxSeqLenRecord[] {
  return [...rows].sort((a, b) =>
    a.headDim - b.headDim || IMPLEMENTATIONS.indexOf(a.impl) - IMPLEMENTATIONS.indexOf(b.impl) ||
    ACTIVATIONS.indexOf(a.activation) - ACTIVATIONS.indexOf(b.activation)
  );
}

function clocks(records: readonly SweepRecord[]): string {
  const counts = new Map<string, number>();
  for (const r of records) counts.set(r.clock, (counts.get(r.clock) ?? 0) + 1);
  if (counts.size === 0) return DASH;
  return [...counts].map(([clock, n]) =>
    `${clock === "timestamp" ? "GPU timestamps" : "wall clock"} (${n} records)`
  ).join(", ");
}

/**
 * The report as one self-contained HTML page: Chart.js inlined (the UMD build
 * of `npm:chart.js@4.6.1`, or `options.chartJs` when given: its source text),
 * the results embedded as JSON (`<script id="sigmax-results">`), and no
 * external URL, so it opens offline. Each chart's canvas has a stable id,
 * `chart-KIND-PASS-PRECISION-dHEADDIM-(full|causal)-bBATCHhHEADS`, KIND being
 * throughput, activation, implementation, roofline or memory; a chart
 * without data is a note instead. The page sets `window.__sigmaxCharts` to
 * the number of charts it drew and logs nothing when every chart drew.
 * Validates `results` first (see {@linkcode validateResults}).
 */
export async function reportHtml(
  results: SweepResults,
  options: { chartJs?: string } = {},
): Promise<string> {
  validateResults(results);
  const chartJs = options.chartJs ?? await loadChartJs();
  if (/<\/script/i.test(chartJs) || /<!--/.test(chartJs)) {
    throw new Error("the Chart.js source contains </script or <!-- and cannot be inlined");
  }
  const charts = buildCharts(results);
  const specs = charts.filter(isChart);
  const a = results.adapter;
  const roof = results.roofline;
  const meta: [string, string][] = [
    [
      "adapter",
      `${escapeHtml(a.description || "(no description)")}${a.software ? " (software)" : ""}`,
    ],
    ["shader-f16", a.shaderF16 ? "yes" : "no"],
    ["date", escapeHtml(results.date)],
    ["preset", escapeHtml(results.preset)],
    ["duration", fmtDuration(results.seconds)],
    [
      "cases",
      `${results.records.length} timed, ${results.failures.length} failed; timed with ${
        escapeHtml(clocks(results.records))
      }`,
    ],
    [
      "matmul roofline",
      roof
        ? `${fmtNumber(roof.gflops)} GFLOP/s at ${roof.size}³` +
          (roof.tfjsGflops === undefined
            ? ""
            : ` (TF.js's matmul at that size: ${fmtNumber(roof.tfjsGflops)} GFLOP/s)`)
        : `<span class="muted">not measured</span>`,
    ],
  ];
  const sections = SECTIONS.map(({ kind, heading, about: text }) => {
    let about = text;
    const mine = charts.filter((c) => c.kind === kind);
    const figures = mine.filter(isChart).map((c) =>
      `<figure class="chart"><canvas id="${c.id}" role="img" aria-label="${
        escapeHtml(`${heading}: ${c.title}`)
      }"></canvas></figure>`
    );
    // Notes with the same reason are one paragraph listing the groups.
    const reasons = new Map<string, string[]>();
    for (const c of mine) {
      if (isChart(c)) continue;
      const titles = reasons.get(c.note) ?? [];
      if (c.title) titles.push(c.title);
      reasons.set(c.note, titles);
    }
    const notes = [...reasons].map(([reason, titles]) =>
      `<p class="note">${
        escapeHtml(
          titles.length > 0
            ? `Not drawn (${reason}): ${titles.join("; ")}.`
            : `Not drawn: ${reason}.`,
        )
      }</p>`
    );
    if (mine.length === 0) {
      notes.push(`<p class="note">Not drawn: the results have no timed records.</p>`);
    }
    const body = (figures.length > 0 ? `<div class="grid">\n${figures.join("\n")}\n</div>\n` : "") +
      notes.join("\n");
    if (kind === "roofline" && results.roofline) {
      about += ` Roofline: ${fmtNumber(results.roofline.gflops)} GFLOP/s at ` +
        `${results.roofline.size}³.`;
    }
    const extra = kind === "memory"
      ? `\n<h3>Longest sequence within the memory bound</h3>\n${maxSeqLenTable(results.maxSeqLen)}`
      : "";
    return `<section id="${kind}">\n<h2>${escapeHtml(heading)}</h2>\n<p class="about">${
      escapeHtml(about)
    }</p>\n${body}${extra}\n</section>`;
  });
  const nav = [
    ...SECTIONS.map((s) => `<a href="#${s.kind}">${escapeHtml(s.heading)}</a>`),
    `<a href="#failures">Failures</a>`,
    `<a href="#training">Training step</a>`,
  ].join("\n");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sigmax sweep ${escapeHtml(results.preset)} — ${escapeHtml(a.description)}</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
<!-- Chart.js ${CHART_JS_VERSION} (MIT License), inlined so that the page opens offline. -->
<script>
${chartJs}
</script>
</head>
<body>
<h1>sigmax attention sweep</h1>
<p id="page-error" hidden></p>
<dl class="meta">
${meta.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("\n")}
</dl>
<nav>
${nav}
</nav>
${sections.join("\n")}
<section id="failures">
<h2>Failures</h2>
<p class="about">Cases that did not run (a device limit, out of memory, a kernel error): recorded, not fatal.</p>
${failureTable(results.failures)}
</section>
<section id="training">
<h2>Training step</h2>
<p class="about">A training step of the same model in sigmax and in TF.js.</p>
${trainingTable(results.training)}
</section>
<script type="application/json" id="sigmax-results">${scriptJson(results)}</script>
<script type="application/json" id="sigmax-charts">${scriptJson(specs)}</script>
<script>
${PAGE_SCRIPT}
</script>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------
// Markdown

/** A shape the Markdown tables can be taken at. */
interface Shape {
  batch: number;
  heads: number;
  headDim: number;
  seqLen: number;
  precision: "f32" | "f16";
  causal: boolean;
}

function shapeKey(s: Shape): string {
  return `${s.batch}/${s.heads}/${s.headDim}/${s.seqLen}/${s.precision}/${s.causal}`;
}

function sameShape(r: SweepRecord, s: Shape): boolean {
  return r.batch === s.batch && r.heads === s.heads && r.headDim === s.headDim &&
    r.seqLen === s.seqLen && r.precision === s.precision && r.causal === s.causal;
}

/**
 * The pass's reference shape: B=1, H=4, D=64, S=1024 (f32 if measured, else
 * f16; non-causal if measured, else causal); else the shape measured by the
 * most implementation × activation series, the largest of those.
 */
function referenceShape(records: readonly SweepRecord[]): Shape | undefined {
  const shapes = new Map<string, { shape: Shape; series: Set<string> }>();
  for (const r of records) {
    const shape: Shape = {
      batch: r.batch,
      heads: r.heads,
      headDim: r.headDim,
      seqLen: r.seqLen,
      precision: r.precision,
      causal: r.causal,
    };
    const key = shapeKey(shape);
    let entry = shapes.get(key);
    if (!entry) shapes.set(key, entry = { shape, series: new Set() });
    entry.series.add(seriesKey(r.impl, r.activation));
  }
  for (const precision of PRECISIONS) {
    for (const causal of [false, true]) {
      const key = shapeKey({ batch: 1, heads: 4, headDim: 64, seqLen: 1024, precision, causal });
      const found = shapes.get(key);
      if (found) return found.shape;
    }
  }
  const size = (s: Shape) => s.batch * s.heads * s.seqLen * s.headDim;
  const ranked = [...shapes.values()].sort((a, b) =>
    b.series.size - a.series.size || size(b.shape) - size(a.shape) ||
    PRECISIONS.indexOf(a.shape.precision) - PRECISIONS.indexOf(b.shape.precision) ||
    Number(a.shape.causal) - Number(b.shape.causal)
  );
  return ranked[0]?.shape;
}

function mdCell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/</g, "&lt;").replace(/\r?\n/g, " ");
}

function mdTable(headers: string[], align: ("l" | "r")[], rows: string[][]): string {
  return [
    `| ${headers.map(mdCell).join(" | ")} |`,
    `| ${align.map((a) => (a === "r" ? "---:" : "---")).join(" | ")} |`,
    ...rows.map((row) => `| ${row.map(mdCell).join(" | ")} |`),
  ].join("\n");
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * The report as Markdown for the README: the adapter and the sweep; per pass,
 * a table at the reference shape (B=1, H=4, D=64, S=1024, f32 when measured;
 * else the shape most implementations share, the largest) with GFLOP/s per
 * implementation and activation, sigmoid/softmax and the fraction of the
 * matmul roofline, and a table of fused/unfused and fused/TF.js (two cases
 * timed on different clocks compared by their wall-clock medians); then the
 * longest sequences within the memory bound and the training steps. Missing
 * data is "—". Validates `results` first (see {@linkcode validateResults}).
 */
export function reportMarkdown(results: SweepResults): string {
  validateResults(results);
  const out: string[] = [];
  const a = results.adapter;
  const roof = results.roofline && results.roofline.gflops > 0 ? results.roofline : undefined;
  out.push(`## Attention sweep: \`${mdCell(results.preset)}\`, ${mdCell(results.date)}`);
  out.push("");
  out.push(
    `Adapter: ${mdCell(a.description || "(no description)")}${a.software ? " (software)" : ""}, ` +
      `shader-f16 ${a.shaderF16 ? "yes" : "no"}. Sweep time ${fmtDuration(results.seconds)}; ` +
      `${results.records.length} cases timed, ${results.failures.length} failed. ` +
      (roof
        ? `Matmul roofline: ${fmtNumber(roof.gflops)} GFLOP/s at ${roof.size}³` +
          (roof.tfjsGflops === undefined ? "" : ` (TF.js: ${fmtNumber(roof.tfjsGflops)} GFLOP/s)`) +
          "."
        : "No matmul roofline measured."),
  );
  for (const pass of PASSES) {
    const records = results.records.filter((r) => r.pass === pass);
    out.push("");
    const shape = referenceShape(records);
    if (!shape) {
      out.push(`### ${capitalize(pass)}`);
      out.push("");
      out.push(`No ${pass} records.`);
      continue;
    }
    out.push(
      `### ${capitalize(pass)}: B=${shape.batch}, H=${shape.heads}, S=${shape.seqLen}, ` +
        `D=${shape.headDim}, ${shape.precision}, ${shape.causal ? "causal" : "non-causal"}`,
    );
    out.push("");
    const at = records.filter((r) => sameShape(r, shape));
    const record = (impl: Implementation, activation: Activation): SweepRecord | undefined => {
      let best: SweepRecord | undefined;
      for (const r of at) {
        if (r.impl !== impl || r.activation !== activation) continue;
        if (best === undefined || r.gflops > best.gflops) best = r;
      }
      return best;
    };
    const ratio = (num: SweepRecord | undefined, den: SweepRecord | undefined) => {
      const v = num && den && speedRatio(num, den);
      return v === undefined ? DASH : fmtRatio(v);
    };
    const value = (r: SweepRecord | undefined) => (r === undefined ? DASH : fmtNumber(r.gflops));
    // The operation-count model's prediction for this pass and head dim, shown beside a ratio.
    const predicted = results.model?.find((m) => m.pass === pass && m.headDim === shape.headDim);
    const withModel = (text: string, model: number | undefined) =>
      model === undefined || text === DASH ? text : `${text} (model ${fmtRatio(model)})`;
    const ofRoof = (r: SweepRecord | undefined) =>
      r === undefined || !roof ? DASH : fmtPercent(100 * r.gflops / roof.gflops);
    out.push(mdTable(
      [
        "implementation",
        "softmax GFLOP/s",
        "sigmoid GFLOP/s",
        "sigmoid / softmax",
        "softmax % of roofline",
        "sigmoid % of roofline",
      ],
      ["l", "r", "r", "r", "r", "r"],
      IMPLEMENTATIONS.map((impl) => {
        const soft = record(impl, "softmax");
        const sig = record(impl, "sigmoid");
        return [
          IMPL_NAMES[impl],
          value(soft),
          value(sig),
          impl === "fused"
            ? withModel(ratio(sig, soft), predicted?.sigmoidOverSoftmax)
            : ratio(sig, soft),
          ofRoof(soft),
          ofRoof(sig),
        ];
      }),
    ));
    out.push("");
    out.push(mdTable(
      ["ratio", "softmax", "sigmoid"],
      ["l", "r", "r"],
      (["unfused", "tfjs"] as const).map((other) => [
        `fused / ${IMPL_NAMES[other]}`,
        ...ACTIVATIONS.map((act) => {
          const text = ratio(record("fused", act), record(other, act));
          if (other !== "unfused") return text;
          return withModel(
            text,
            act === "softmax"
              ? predicted?.fusedOverUnfusedSoftmax
              : predicted?.fusedOverUnfusedSigmoid,
          );
        }),
      ]),
    ));
    const mixed = ACTIVATIONS.some((act) =>
      (["unfused", "tfjs"] as const).some((other) => {
        const f = record("fused", act);
        const o = record(other, act);
        return f !== undefined && o !== undefined && f.clock !== o.clock;
      })
    );
    if (mixed) {
      out.push("");
      out.push(
        "Cases timed on different clocks (TF.js: the wall clock; sigmax: GPU timestamps) are " +
          "compared by their wall-clock medians.",
      );
    }
  }
  out.push("");
  out.push("### Longest sequence within the memory bound");
  out.push("");
  if (results.maxSeqLen.length === 0) out.push("No longest-sequence records.");
  else {
    out.push(mdTable(
      [
        "implementation",
        "activation",
        "D",
        "longest seqLen",
        "failed at",
        "reason",
        "memory bound",
      ],
      ["l", "l", "r", "r", "r", "l", "r"],
      sortMaxSeqLen(results.maxSeqLen).map((m) => [
        IMPL_NAMES[m.impl],
        m.activation,
        String(m.headDim),
        String(m.maxSeqLen),
        m.failedAt === undefined ? DASH : String(m.failedAt),
        m.reason ?? DASH,
        fmtBytes(m.boundBytes),
      ]),
    ));
  }
  if (results.training.length > 0) {
    out.push("");
    out.push("### Training step");
    out.push("");
    out.push(mdTable(
      ["implementation", "activation", "tokens/s", "ms/step", "model"],
      ["l", "l", "r", "r", "l"],
      results.training.map((t) => [
        t.impl === "tfjs" ? "TF.js" : t.impl,
        t.activation,
        fmtNumber(t.tokensPerSecond),
        t.msMedian.toFixed(2),
        modelText(t.model),
      ]),
    ));
  }
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------------------
// CLI

const USAGE = `usage: deno task report -- RESULTS.json [--out FILE] [--markdown FILE]

Makes the throughput sweep's report from its results (deno task bench -- --preset …):
a self-contained HTML page (Chart.js inlined: it opens offline) and a Markdown
summary for the README.

RESULTS.json     the sweep's results document
--out FILE       where the HTML page goes (default: report.html next to RESULTS.json)
--markdown FILE  write the Markdown summary to FILE (default: print it on stdout)
-h, --help       this help

Exit status: 0 done; 2 bad arguments, or a results file that is missing,
unreadable or not a valid results document; 1 the report could not be written.`;

/** Runs `deno task report` (the `report` command of cli.ts); returns the exit code. */
export async function reportMain(args: string[]): Promise<number> {
  let values: { out?: string; markdown?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        out: { type: "string" },
        markdown: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    console.error(`error: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(
      `error: ${
        positionals.length === 0 ? "no results file given" : "give exactly one results file"
      }\n\n${USAGE}`,
    );
    return 2;
  }
  const input = positionals[0];
  let text: string;
  try {
    text = await Deno.readTextFile(input);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound ? "no such file" : (err as Error).message;
    console.error(`error: cannot read the results file ${input}: ${why}`);
    return 2;
  }
  let results: SweepResults;
  try {
    results = validateResults(JSON.parse(text));
  } catch (err) {
    if (err instanceof SyntaxError) {
      console.error(`error: ${input} is not JSON: ${err.message}`);
    } else if (err instanceof ResultsError) {
      console.error(`error: ${input} is not a sweep results document: ${err.message}`);
    } else throw err;
    return 2;
  }
  const out = values.out ?? join(dirname(input), "report.html");
  try {
    const html = await reportHtml(results);
    await Deno.writeTextFile(out, html);
    const drawn = buildCharts(results).filter(isChart).length;
    console.error(`report: wrote ${out} (${drawn} charts, ${fmtBytes(html.length)})`);
    const markdown = reportMarkdown(results);
    if (values.markdown !== undefined) {
      await Deno.writeTextFile(values.markdown, markdown);
      console.error(`report: wrote ${values.markdown}`);
    } else {
      await Deno.stdout.write(new TextEncoder().encode(markdown));
    }
  } catch (err) {
    console.error(`error: cannot write the report: ${(err as Error).message}`);
    return 1;
  }
  return 0;
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
