/**
 * The sweep report as Markdown for the README ({@linkcode reportMarkdown}).
 *
 * @module
 */

import type { Implementation, RooflineRecord, SweepRecord, SweepResults } from "../results.ts";
import {
  ACTIVATIONS,
  IMPLEMENTATIONS,
  PASSES,
  PEERS,
  PRECISIONS,
  validateResults,
} from "./schema.ts";
import { IMPL_NAMES, seriesKey, speedRatio } from "./charts.ts";
import {
  DASH,
  fmtBytes,
  fmtDuration,
  fmtNumber,
  fmtPercent,
  fmtRatio,
  modelText,
  sortMaxSeqLen,
} from "./format.ts";

type Activation = "softmax" | "sigmoid";

/** The peers' matmul at the roofline's size: ` (TF.js: 1.0 GFLOP/s, jax-js: 2.0 GFLOP/s)`. */
function peerMatmul(roof: RooflineRecord): string {
  const parts = [
    roof.tfjsGflops === undefined ? "" : `TF.js: ${fmtNumber(roof.tfjsGflops)} GFLOP/s`,
    roof.jaxGflops === undefined ? "" : `jax-js: ${fmtNumber(roof.jaxGflops)} GFLOP/s`,
  ].filter(Boolean);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

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
 * matmul roofline, and a table of fused/unfused and fused/peer for each peer
 * (TF.js, ONNX Runtime Web, jax-js; two cases timed on different clocks
 * compared by their wall-clock medians) with what each peer ran; then the
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
          peerMatmul(roof) +
          "."
        : "No matmul roofline measured."),
  );
  for (const p of results.peersSkipped ?? []) {
    out.push("");
    out.push(`Not run: ${IMPL_NAMES[p.impl]}: ${mdCell(p.reason)}`);
  }
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
      return v === undefined ? DASH : fmtRatio(v.value);
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
      (["unfused", ...PEERS] as const).map((other) => [
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
      (["unfused", ...PEERS] as const).some((other) => {
        const f = record("fused", act);
        const o = record(other, act);
        return f !== undefined && o !== undefined && f.clock !== o.clock;
      })
    );
    if (mixed) {
      out.push("");
      out.push(
        "Cases timed on different clocks (the peers: the wall clock; sigmax: GPU timestamps) are " +
          "compared by their wall-clock medians.",
      );
    }
    const ran = PEERS.flatMap((peer) =>
      ACTIVATIONS.map((act) => record(peer, act)).filter((r) => r?.ran !== undefined)
    );
    if (ran.length > 0) {
      out.push("");
      out.push("What the peers ran at this shape:");
      out.push("");
      for (const r of ran) {
        out.push(`- ${IMPL_NAMES[r!.impl]} ${r!.activation}: ${mdCell(r!.ran!)}`);
      }
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
        t.impl === "sigmax" ? "sigmax" : IMPL_NAMES[t.impl],
        t.activation,
        fmtNumber(t.tokensPerSecond),
        t.msMedian.toFixed(2),
        modelText(t.model),
      ]),
    ));
  }
  return out.join("\n") + "\n";
}
