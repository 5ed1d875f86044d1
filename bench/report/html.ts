/**
 * The sweep report's HTML page ({@linkcode reportHtml}): one self-contained
 * document with Chart.js inlined, the results embedded and the charts of
 * bench/report/charts.ts drawn by the shared page script
 * (bench/page_script.js); tables of the longest sequences, what the peers
 * ran, the failures and the training steps.
 *
 * @module
 */

import type {
  MaxSeqLenRecord,
  RooflineRecord,
  SweepFailure,
  SweepRecord,
  SweepResults,
  TrainingStepRecord,
} from "../results.ts";
import {
  chartJsScript,
  escapeHtml,
  htmlTable as table,
  loadChartJs,
  type PageConfig,
  pageScripts,
  pageStyle,
  scriptJson,
} from "../page.ts";
import { ACTIVATIONS, PASSES, PEERS, validateResults } from "./schema.ts";
import { buildCharts, IMPL_NAMES, isChart, SECTIONS } from "./charts.ts";
import { DASH, fmtBytes, fmtDuration, fmtNumber, modelText, sortMaxSeqLen } from "./format.ts";

const STYLE = pageStyle(300);

const PAGE: PageConfig = { tag: "sigmax report", noteClass: "note", legendPointStyle: false };

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
      escapeHtml(t.impl === "sigmax" ? "sigmax" : IMPL_NAMES[t.impl]),
      escapeHtml(t.activation),
      fmtNumber(t.tokensPerSecond),
      t.msMedian.toFixed(2),
      escapeHtml(modelText(t.model)),
    ]),
    [false, false, true, true, false],
  );
}

/** The peers' matmul at the roofline's size, in words (empty when none ran). */
function peerMatmul(roof: RooflineRecord): string {
  const parts = [
    roof.tfjsGflops === undefined ? "" : `TF.js ${fmtNumber(roof.tfjsGflops)} GFLOP/s`,
    roof.jaxGflops === undefined ? "" : `jax-js ${fmtNumber(roof.jaxGflops)} GFLOP/s`,
  ].filter(Boolean);
  return parts.length ? ` (the peers' matmul at that size: ${parts.join(", ")})` : "";
}

function peerTable(records: readonly SweepRecord[]): string {
  const rows = records.filter((r) => PEERS.includes(r.impl)).sort((a, b) =>
    PEERS.indexOf(a.impl) - PEERS.indexOf(b.impl) || PASSES.indexOf(a.pass) -
      PASSES.indexOf(b.pass) ||
    a.headDim - b.headDim || a.seqLen - b.seqLen ||
    Number(a.causal) - Number(b.causal) ||
    ACTIVATIONS.indexOf(a.activation) - ACTIVATIONS.indexOf(b.activation)
  );
  if (rows.length === 0) return `<p class="note">No peer ran.</p>`;
  return table(
    ["peer", "pass", "activation", "B", "H", "seqLen", "D", "causal", "ms", "GFLOP/s", "ran"],
    rows.map((r) => [
      escapeHtml(IMPL_NAMES[r.impl]),
      escapeHtml(r.pass),
      escapeHtml(r.activation),
      String(r.batch),
      String(r.heads),
      String(r.seqLen),
      String(r.headDim),
      r.causal ? "yes" : "no",
      `${r.msMedian.toFixed(2)} [${r.msMin.toFixed(2)}–${r.msMax.toFixed(2)}]`,
      fmtNumber(r.gflops),
      r.ran === undefined ? DASH : escapeHtml(r.ran),
    ]),
    [false, false, false, true, true, true, true, false, true, true, false],
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
  const chartJs = chartJsScript(options.chartJs ?? await loadChartJs());
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
          peerMatmul(roof)
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
    `<a href="#peers">Peers</a>`,
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
${chartJs}
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
<section id="peers">
<h2>What the peers ran</h2>
<p class="about">Every timed peer figure (wall clock, median [fastest–slowest run]) with what the peer actually ran: ONNX Runtime Web's operator, the kernel its programs amount to (FlashAttention or its unfused fallback) and its device; jax-js's jitted function and device; TF.js's unfused ops.</p>
${peerTable(results.records)}
${
    (results.peersSkipped ?? []).map((p) =>
      `<p class="note">Not run: ${escapeHtml(IMPL_NAMES[p.impl])}: ${escapeHtml(p.reason)}</p>`
    ).join("\n")
  }
</section>
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
${pageScripts(specs, PAGE)}
</body>
</html>
`;
}
