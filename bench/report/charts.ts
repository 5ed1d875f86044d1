/**
 * The sweep report's charts: the records grouped by (pass, precision, head
 * dim, causal, batch × heads), and per group one chart of each kind
 * (throughput, sigmoid/softmax, fused/unfused and fused/peers, fraction of
 * the matmul roofline, peak memory) against the sequence length, as
 * {@linkcode PageChart} specs for bench/page_script.js, or a note where a
 * chart has no data. Every timed figure carries its spread: the band from
 * the slowest to the fastest timed run.
 *
 * @module
 */

import type { Implementation, SweepRecord, SweepResults } from "../results.ts";
import type { PageChart, PagePoint, PageSeries } from "../page.ts";
import { ACTIVATIONS, IMPLEMENTATIONS, PASSES, PEERS, PRECISIONS } from "./schema.ts";

/** What one chart shows: one pass at one precision, head dim, mask, batch and heads. */
export interface Group {
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

/** How the report names each implementation. */
export const IMPL_NAMES: Record<Implementation, string> = {
  fused: "fused",
  unfused: "unfused",
  tfjs: "TF.js",
  ort: "ORT",
  jax: "jax-js",
};
const IMPL_COLORS: Record<Implementation, string> = {
  fused: "#1f77b4",
  unfused: "#d62728",
  tfjs: "#2ca02c",
  ort: "#9467bd",
  jax: "#ff7f0e",
};
/** The band's fill: the line's colour, mostly transparent (#RRGGBBAA). */
const band = (impl: Implementation) => `${IMPL_COLORS[impl]}2e`;

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

/** The key of an implementation × activation series. */
export function seriesKey(impl: Implementation, activation: Activation): string {
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

/** The fastest and slowest wall-clock run of a record, where it has them. */
function wallSpread(r: SweepRecord): [number, number] | undefined {
  if (r.clock === "wall") return [r.msMin, r.msMax];
  return r.msWallMin !== undefined && r.msWallMax !== undefined
    ? [r.msWallMin, r.msWallMax]
    : undefined;
}

/**
 * How much faster `num` ran than `den`, two records of the same shape (so of
 * the same FLOPs): the ratio of their GFLOP/s when both were timed on the same
 * clock; when the clocks differ (the peers are timed on the wall clock, sigmax
 * on GPU timestamps where the adapter has them), the ratio of their
 * wall-clock medians, which the sweep records for every case. With it, its
 * spread: from `num`'s slowest run against `den`'s fastest to the reverse
 * (on the same clock as the ratio; absent when a wall-clock spread is not
 * recorded).
 */
export function speedRatio(
  num: SweepRecord,
  den: SweepRecord,
): { value: number; low?: number; high?: number } | undefined {
  const same = num.clock === den.clock;
  const value = same ? num.gflops / den.gflops : den.msWallMedian / num.msWallMedian;
  if (!(Number.isFinite(value) && value > 0)) return undefined;
  const n = same ? [num.msMin, num.msMax] : wallSpread(num);
  const d = same ? [den.msMin, den.msMax] : wallSpread(den);
  if (!n || !d || !(n[0] > 0 && n[1] > 0)) return { value };
  return { value, low: d[0] / n[1], high: d[1] / n[0] };
}

/** Points where both series have the seqLen: their speed ratio and its spread. */
function ratioPoints(num: Series | undefined, den: Series | undefined): PagePoint[] {
  if (!num || !den) return [];
  const out: PagePoint[] = [];
  for (const [seqLen, r] of num) {
    const d = den.get(seqLen);
    const v = d && speedRatio(r, d);
    if (v) out.push({ x: seqLen, y: v.value, low: v.low ?? null, high: v.high ?? null });
  }
  return out.sort((a, b) => a.x - b.x);
}

/**
 * Points of a series: `value(r)` and, with `spread`, the band from the
 * slowest to the fastest run (a throughput is `flops / ms`, so it scales by
 * `msMedian / ms`).
 */
function points(
  s: Series | undefined,
  value: (r: SweepRecord) => number,
  spread: boolean,
): PagePoint[] {
  if (!s) return [];
  return [...s.entries()].map(([seqLen, r]): PagePoint => {
    const y = value(r);
    if (!spread || !(r.msMin > 0 && r.msMax > 0)) return { x: seqLen, y };
    return { x: seqLen, y, low: y * r.msMedian / r.msMax, high: y * r.msMedian / r.msMin };
  }).filter((p) => Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
}

/** The kinds of chart, in the page's order. */
export type ChartKind = "throughput" | "activation" | "implementation" | "roofline" | "memory";

/** A chart the page draws (`series` non-empty), with its kind. */
export interface ChartSpec extends PageChart {
  kind: ChartKind;
}

/** A chart that has no data: a note in its place. */
export interface ChartNote {
  kind: ChartKind;
  title: string;
  note: string;
}

/** The page's sections, one per chart kind, with what each shows. */
export const SECTIONS: { kind: ChartKind; heading: string; about: string }[] = [
  {
    kind: "throughput",
    heading: "Throughput",
    about: "GFLOP/s (useful attention FLOPs, backward counted as 2.5 × forward, over the median " +
      "time) against the sequence length, per implementation and activation. Solid: sigmoid; " +
      "dashed: softmax. Shaded: from the slowest to the fastest timed run.",
  },
  {
    kind: "activation",
    heading: "Sigmoid / softmax",
    about: "Each implementation's sigmoid GFLOP/s over its softmax GFLOP/s at the same shape " +
      "(above 1: sigmoid is faster). Shaded: the slowest sigmoid run against the fastest " +
      "softmax run, to the reverse.",
  },
  {
    kind: "implementation",
    heading: "Fused / unfused and fused / peers",
    about: "The fused kernel's GFLOP/s over the unfused baseline's and over each peer's (TF.js, " +
      "ONNX Runtime Web, jax-js), per activation (above 1: fused is faster). Two cases timed on " +
      "different clocks (the peers: the wall clock) are compared by their wall-clock medians. " +
      "Shaded: the slowest fused run against the peer's fastest, to the reverse.",
  },
  {
    kind: "roofline",
    heading: "Fraction of the matmul roofline",
    about: "GFLOP/s over our matmul's best GFLOP/s on this adapter; shaded: the timed runs' range.",
  },
  {
    kind: "memory",
    heading: "Peak memory",
    about: "GPU memory each case allocated (inputs, outputs and scratch), log scale.",
  },
];

/** Solid for sigmoid, dashed for softmax. */
function dash(activation: Activation): number[] | undefined {
  return activation === "softmax" ? [6, 4] : undefined;
}

/** Every chart of the report, in the page's order, or a note where one has no data. */
export function buildCharts(results: SweepResults): (ChartSpec | ChartNote)[] {
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
      const lines: PageSeries[] = [];
      const line = (impl: Implementation, label: string, p: PagePoint[], d?: number[]) => {
        if (p.length === 0) return;
        const spread = p.some((q) => q.low != null || q.high != null);
        lines.push({
          label,
          color: IMPL_COLORS[impl],
          ...(spread ? { band: band(impl) } : {}),
          ...(d ? { dash: d } : {}),
          points: p,
        });
      };
      const perSeries = (value: (r: SweepRecord) => number, spread: boolean) => {
        for (const impl of IMPLEMENTATIONS) {
          for (const activation of ACTIVATIONS) {
            const p = points(series.get(seriesKey(impl, activation)), value, spread);
            line(impl, `${IMPL_NAMES[impl]} ${activation}`, p, dash(activation));
          }
        }
      };
      let spec: Pick<PageChart, "yTitle" | "format" | "yLog" | "yRange"> | undefined;
      let note = "";
      switch (kind) {
        case "throughput":
          perSeries((r) => r.gflops, true);
          spec = { yTitle: "GFLOP/s", format: "gflops", yLog: false, yRange: "zero" };
          note = "no records";
          break;
        case "activation":
          for (const impl of IMPLEMENTATIONS) {
            const p = ratioPoints(
              series.get(seriesKey(impl, "sigmoid")),
              series.get(seriesKey(impl, "softmax")),
            );
            line(impl, `${IMPL_NAMES[impl]} sigmoid / softmax`, p);
          }
          spec = {
            yTitle: "sigmoid / softmax GFLOP/s",
            format: "ratio",
            yLog: false,
            yRange: "one",
          };
          note = "no implementation ran both sigmoid and softmax here";
          break;
        case "implementation":
          for (const other of ["unfused", ...PEERS] as const) {
            for (const activation of ACTIVATIONS) {
              const p = ratioPoints(
                series.get(seriesKey("fused", activation)),
                series.get(seriesKey(other, activation)),
              );
              line(other, `fused / ${IMPL_NAMES[other]} ${activation}`, p, dash(activation));
            }
          }
          spec = { yTitle: "ratio of GFLOP/s", format: "ratio", yLog: false, yRange: "one" };
          note = "needs fused records and unfused or peer records at the same shape";
          break;
        case "roofline":
          if (roof) perSeries((r) => 100 * r.gflops / roof.gflops, true);
          spec = {
            yTitle: "% of matmul roofline",
            format: "percent",
            yLog: false,
            yRange: "zero",
          };
          note = "no records";
          break;
        case "memory":
          perSeries((r) => (r.peakBytes > 0 ? r.peakBytes / 2 ** 20 : NaN), false);
          spec = {
            yTitle: "peak memory (MiB, log scale)",
            format: "mib",
            yLog: true,
            yRange: "zero",
          };
          note = "no record has a peak memory size";
          break;
      }
      if (lines.length > 0 && spec) {
        out.push({
          id,
          kind,
          title,
          xTitle: "sequence length (log\u2082 scale)",
          xName: "seqLen",
          series: lines,
          lines: [],
          ...spec,
        });
      } else out.push({ kind, title, note });
    }
  }
  return out;
}

/** Whether `c` is a chart (not a note). */
export function isChart(c: ChartSpec | ChartNote): c is ChartSpec {
  return "series" in c;
}
