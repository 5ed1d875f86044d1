/**
 * The sweep report without a browser: the HTML page (Chart.js inlined, the
 * data embedded, no external URL, a note for each chart without data), the
 * Markdown summary's numbers, the document validation and the CLI.
 * Every results document here is TEST DATA from tests/_report_fixture.ts.
 */

import assert from "node:assert/strict";
import {
  CHART_JS_VERSION,
  reportHtml,
  reportMarkdown,
  ResultsError,
  validateResults,
} from "../bench/report.ts";
import type { SweepResults } from "../bench/results.ts";
import { fixtureResults, recordOf } from "./_report_fixture.ts";

const ROOT = new URL("..", import.meta.url);

/** The JSON inside `<script type="application/json" id="ID">`. */
function embedded(html: string, id: string): unknown {
  const m = new RegExp(`<script type="application/json" id="${id}">([^<]*)</script>`).exec(html);
  assert.ok(m, `no <script id="${id}"> in the page`);
  return JSON.parse(m[1]);
}

/** The ids of the page's canvases. */
function canvasIds(html: string): string[] {
  return [...html.matchAll(/<canvas id="([^"]+)"/g)].map((m) => m[1]);
}

Deno.test("report HTML inlines Chart.js, embeds the results and references no URL", async () => {
  const results = fixtureResults();
  const html = await reportHtml(results);
  // Chart.js's UMD build, inline: its banner and the factory that sets the global Chart.
  assert.ok(html.includes(`Chart.js v${CHART_JS_VERSION}`), "Chart.js banner missing");
  assert.match(html, /\.Chart\s*=\s*e\(\)/, "Chart.js UMD factory missing");
  assert.ok(html.length > 200_000, `page is only ${html.length} characters: Chart.js not inlined?`);
  // No external resources: no src/href to http(s) or protocol-relative URLs, no <script src>.
  assert.doesNotMatch(html, /(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i);
  assert.doesNotMatch(html, /<script[^>]*\ssrc\s*=/i);
  assert.doesNotMatch(html, /<link[^>]*rel=["']?stylesheet/i);
  assert.doesNotMatch(html, /@import|url\(\s*["']?https?:/i);
  // The results, embedded and intact.
  assert.deepEqual(embedded(html, "sigmax-results"), JSON.parse(JSON.stringify(results)));
  // Header fields, escaped.
  assert.ok(html.includes("TEST FIXTURE &lt;not a measurement&gt; &amp; made-up numbers"));
  assert.ok(html.includes("test-fixture") && html.includes("2026-01-02T03:04:05.000Z"));
  assert.ok(html.includes("12 min 34 s"), "duration");
  assert.ok(html.includes("612.4 GFLOP/s at 2048³"), "roofline");
  // Tables: failures, training, longest sequence.
  assert.ok(html.includes("TEST DATA: out of memory allocating the S×S gradient buffers"));
  assert.ok(html.includes("41234.5"), "training tokens/s");
  assert.match(
    html,
    /<td>fused<\/td><td>softmax<\/td><td class="num">32<\/td><td class="num">65536</,
  );
  // The shared page script (bench/page_script.js), inlined, with the page's settings.
  assert.ok(html.includes("__sigmaxCharts: drawn"));
  assert.deepEqual(embedded(html, "sigmax-page"), {
    tag: "sigmax report",
    noteClass: "note",
    legendPointStyle: false,
  });
});

Deno.test("report HTML: one canvas per chart spec, stable ids, every chart kind per group", async () => {
  const results = fixtureResults();
  const html = await reportHtml(results);
  const ids = canvasIds(html);
  const specs = embedded(html, "sigmax-charts") as { id: string; series: unknown[] }[];
  assert.deepEqual(ids, specs.map((s) => s.id));
  assert.equal(new Set(ids).size, ids.length, "canvas ids are unique");
  for (const spec of specs) assert.ok(spec.series.length > 0, `${spec.id} has data`);
  // 2 passes × 2 precisions × 2 head dims × 2 masks = 16 groups.
  const groups = 16;
  const count = (kind: string) => ids.filter((id) => id.startsWith(`chart-${kind}-`)).length;
  assert.equal(count("throughput"), groups);
  assert.equal(count("memory"), groups);
  assert.equal(count("roofline"), groups);
  assert.equal(count("activation"), groups);
  // f16 has only the fused kernel: no fused/unfused or fused/TF.js ratio there, a note instead.
  assert.equal(count("implementation"), groups / 2);
  assert.match(html, /Not drawn \(needs fused records and unfused or peer records/);
  for (
    const id of [
      "chart-throughput-forward-f32-d64-full-b1h4",
      "chart-activation-backward-f16-d32-causal-b1h4",
      "chart-implementation-forward-f32-d32-causal-b1h4",
      "chart-roofline-backward-f32-d64-full-b1h4",
      "chart-memory-forward-f16-d64-full-b1h4",
    ]
  ) assert.ok(ids.includes(id), `${id} missing`);
  assert.equal(ids.length, 72);
  // The same results give the same page (stable ids and order).
  assert.equal(await reportHtml(fixtureResults()), html);
});

Deno.test("report HTML: the plotted values are the records' (ratios, roofline %, MiB)", async () => {
  const results = fixtureResults();
  const specs = embedded(await reportHtml(results), "sigmax-charts") as {
    id: string;
    series: { label: string; points: { x: number; y: number }[] }[];
  }[];
  const line = (id: string, label: string) => {
    const spec = specs.find((s) => s.id === id);
    assert.ok(spec, `${id} missing`);
    const series = spec.series.find((s) => s.label === label);
    assert.ok(series, `${id} has no "${label}"`);
    return new Map(series.points.map((p) => [p.x, p.y]));
  };
  const at = { pass: "forward", precision: "f32", headDim: 64, causal: false } as const;
  const r = (impl: "fused" | "unfused" | "tfjs", activation: "softmax" | "sigmoid") =>
    recordOf(results, { ...at, seqLen: 1024, impl, activation });
  const key = "forward-f32-d64-full-b1h4";
  assert.equal(
    line(`chart-throughput-${key}`, "fused sigmoid").get(1024),
    r("fused", "sigmoid").gflops,
  );
  assert.equal(
    line(`chart-activation-${key}`, "unfused sigmoid / softmax").get(1024),
    r("unfused", "sigmoid").gflops / r("unfused", "softmax").gflops,
  );
  assert.equal(
    line(`chart-implementation-${key}`, "fused / unfused sigmoid").get(1024),
    r("fused", "sigmoid").gflops / r("unfused", "sigmoid").gflops,
  );
  // TF.js is timed on the wall clock, fused on GPU timestamps: the wall-clock medians' ratio.
  assert.equal(
    line(`chart-implementation-${key}`, "fused / TF.js softmax").get(1024),
    r("tfjs", "softmax").msWallMedian / r("fused", "softmax").msWallMedian,
  );
  assert.notEqual(
    r("tfjs", "softmax").msWallMedian / r("fused", "softmax").msWallMedian,
    r("fused", "softmax").gflops / r("tfjs", "softmax").gflops,
    "the fixture tells the two rules apart",
  );
  assert.equal(
    line(`chart-roofline-${key}`, "TF.js sigmoid").get(1024),
    100 * r("tfjs", "sigmoid").gflops / results.roofline!.gflops,
  );
  assert.equal(
    line(`chart-memory-${key}`, "unfused softmax").get(1024),
    r("unfused", "softmax").peakBytes / 2 ** 20,
  );
});

Deno.test("report HTML skips charts without data with a note, and never throws", async () => {
  // No TF.js, no roofline, no training, no failures, f32 only.
  const sparse = fixtureResults({
    tfjs: false,
    peers: false,
    roofline: false,
    training: false,
    failures: false,
    f16: false,
  });
  const html = await reportHtml(sparse);
  const ids = canvasIds(html);
  assert.equal(ids.filter((id) => id.startsWith("chart-roofline-")).length, 0);
  assert.match(html, /Not drawn: the results have no roofline measurement\./);
  assert.match(html, /not measured/);
  assert.match(html, /No training step records\./);
  assert.match(html, /No case failed\./);
  const specs = embedded(html, "sigmax-charts") as { series: { label: string }[] }[];
  assert.ok(specs.every((s) => s.series.every((l) => !/TF\.js|ORT|jax-js/.test(l.label))));
  assert.match(html, /No peer ran\./);
  assert.equal(ids.length, 8 * 4, "8 groups × (throughput, activation, implementation, memory)");

  // No records at all: notes only, no canvas.
  const empty: SweepResults = {
    ...sparse,
    records: [],
    failures: [],
    maxSeqLen: [],
    training: [],
  };
  const bare = await reportHtml(empty);
  assert.deepEqual(canvasIds(bare), []);
  assert.match(bare, /Not drawn: the results have no timed records\./);
  assert.match(bare, /No longest-sequence records\./);
  assert.deepEqual(embedded(bare, "sigmax-charts"), []);

  // A lone seqLen still makes a chart (the page widens the axis around it).
  const one = await reportHtml(fixtureResults({ seqLens: [512], headDims: [64], causal: [true] }));
  assert.ok(canvasIds(one).includes("chart-throughput-forward-f32-d64-causal-b1h4"));
});

Deno.test("report HTML takes Chart.js's source from options and refuses one that breaks the page", async () => {
  const stub = "/* stub chart library */ window.Chart = function () {};";
  const html = await reportHtml(fixtureResults({ seqLens: [256] }), { chartJs: stub });
  assert.ok(html.includes(stub));
  assert.ok(!html.includes(`Chart.js v${CHART_JS_VERSION}\n`), "the bundled Chart.js is not read");
  await assert.rejects(
    Promise.resolve().then(() =>
      reportHtml(fixtureResults({ seqLens: [256] }), { chartJs: "var s = '</script>';" })
    ),
    /cannot be inlined/,
  );
  // Strings from the results cannot end the embedded JSON's script element.
  const results = fixtureResults({ seqLens: [256] });
  results.failures[0] = { ...recordFailure(results), error: "</script><script>alert(1)</script>" };
  const page = await reportHtml(results, { chartJs: stub });
  assert.ok(!page.includes("<script>alert(1)"));
  assert.equal(
    (embedded(page, "sigmax-results") as SweepResults).failures[0].error,
    "</script><script>alert(1)</script>",
  );
});

function recordFailure(results: SweepResults) {
  const { impl, activation, pass, precision, batch, heads, seqLen, headDim, causal } =
    results.records[0];
  return { impl, activation, pass, precision, batch, heads, seqLen, headDim, causal, error: "" };
}

/** The cells of the Markdown table row that starts with `| first |`, after `heading`. */
function mdRow(md: string, heading: RegExp, first: string): string[] {
  const from = md.search(heading);
  assert.ok(from >= 0, `no heading ${heading}`);
  const line = md.slice(from).split("\n").find((l) => l.startsWith(`| ${first} |`));
  assert.ok(line, `no row "${first}" after ${heading}`);
  return line.split("|").slice(2, -1).map((c) => c.trim());
}

Deno.test("report Markdown: GFLOP/s and ratios at the reference shape, computed from the records", () => {
  const results = fixtureResults();
  const md = reportMarkdown(results);
  const roof = results.roofline!.gflops;
  for (const pass of ["forward", "backward"] as const) {
    const heading = new RegExp(
      `### ${pass[0].toUpperCase()}${pass.slice(1)}: B=1, H=4, S=1024, D=64, f32, non-causal`,
    );
    const rec = (impl: "fused" | "unfused" | "tfjs", activation: "softmax" | "sigmoid") =>
      recordOf(results, {
        pass,
        impl,
        activation,
        precision: "f32",
        batch: 1,
        heads: 4,
        seqLen: 1024,
        headDim: 64,
        causal: false,
      });
    const g = (impl: "fused" | "unfused" | "tfjs", activation: "softmax" | "sigmoid") =>
      rec(impl, activation).gflops;
    const wall = (impl: "fused" | "unfused" | "tfjs", activation: "softmax" | "sigmoid") =>
      rec(impl, activation).msWallMedian;
    for (
      const [impl, name] of [["fused", "fused"], ["unfused", "unfused"], ["tfjs", "TF.js"]] as const
    ) {
      const soft = g(impl, "softmax");
      const sig = g(impl, "sigmoid");
      assert.deepEqual(mdRow(md, heading, name), [
        soft.toFixed(1),
        sig.toFixed(1),
        `${(sig / soft).toFixed(2)}×`,
        `${(100 * soft / roof).toFixed(1)}%`,
        `${(100 * sig / roof).toFixed(1)}%`,
      ]);
    }
    // The numbers the README quotes: fused sigmoid / fused softmax, fused/unfused, fused/TF.js.
    assert.equal(
      mdRow(md, heading, "fused")[2],
      `${(g("fused", "sigmoid") / g("fused", "softmax")).toFixed(2)}×`,
    );
    assert.deepEqual(mdRow(md, heading, "fused / unfused"), [
      `${(g("fused", "softmax") / g("unfused", "softmax")).toFixed(2)}×`,
      `${(g("fused", "sigmoid") / g("unfused", "sigmoid")).toFixed(2)}×`,
    ]);
    // Different clocks (TF.js: wall): the ratio of the wall-clock medians.
    assert.deepEqual(mdRow(md, heading, "fused / TF.js"), [
      `${(wall("tfjs", "softmax") / wall("fused", "softmax")).toFixed(2)}×`,
      `${(wall("tfjs", "sigmoid") / wall("fused", "sigmoid")).toFixed(2)}×`,
    ]);
  }
  assert.match(md, /compared by their wall-clock medians/);
  // Hand-checked once against the fixture's formula (forward, fused): 119.7 and 134.1 GFLOP/s.
  assert.ok(md.includes("| fused | 119.7 | 134.1 | 1.12× | 19.5% | 21.9% |"), md);
  // The longest-sequence table, and the adapter with its "<" escaped for Markdown.
  assert.deepEqual(mdRow(md, /### Longest sequence/, "unfused"), [
    "softmax",
    "32",
    "16384",
    "32768",
    "TEST DATA: needs about 1.00 GiB, over the 1 GiB bound",
    "1.00 GiB",
  ]);
  assert.deepEqual(mdRow(md, /### Longest sequence/, "fused").slice(0, 5), [
    "softmax",
    "32",
    "65536",
    "—",
    "—",
  ]);
  assert.ok(md.includes("TEST FIXTURE &lt;not a measurement> & made-up numbers"));
  assert.match(
    md,
    /Matmul roofline: 612\.4 GFLOP\/s at 2048³ \(TF\.js: 433\.9 GFLOP\/s, jax-js: 287\.6 GFLOP\/s\)\./,
  );
  assert.match(md, /\| sigmax \| sigmoid \| 41234\.5 \| 24\.84 \|/);
});

Deno.test("report Markdown: — for missing data, the largest common shape without the reference one", () => {
  const results = fixtureResults({
    tfjs: false,
    roofline: false,
    seqLens: [256, 512],
    headDims: [32],
  });
  const md = reportMarkdown(results);
  // No S=1024, D=64: the largest shape every series has.
  const heading = /### Forward: B=1, H=4, S=512, D=32, f32, non-causal/;
  assert.deepEqual(mdRow(md, heading, "TF.js"), ["—", "—", "—", "—", "—"]);
  const fused = mdRow(md, heading, "fused");
  assert.deepEqual(fused.slice(3), ["—", "—"], "no roofline: no fraction");
  assert.deepEqual(mdRow(md, heading, "fused / TF.js"), ["—", "—"]);
  assert.notEqual(mdRow(md, heading, "fused / unfused")[0], "—");
  assert.match(md, /No matmul roofline measured\./);
  assert.doesNotMatch(md, /### Training step\n\n\| implementation[^\n]*\n[^\n]*\n\| TF\.js/);

  // f16 only where f32 is missing at the reference shape.
  const f16 = fixtureResults({ seqLens: [1024], headDims: [64], causal: [true] });
  f16.records = f16.records.filter((r) => r.precision === "f16");
  assert.match(reportMarkdown(f16), /### Forward: B=1, H=4, S=1024, D=64, f16, causal/);

  // Nothing measured for a pass.
  const none = fixtureResults();
  none.records = none.records.filter((r) => r.pass === "forward");
  assert.match(reportMarkdown(none), /### Backward\n\nNo backward records\./);
});

Deno.test("validateResults names the first bad field", () => {
  assert.equal(validateResults(fixtureResults()).version, 1);
  const cases: [string, (d: Record<string, unknown>) => void, RegExp][] = [
    ["", () => {}, /the document must be an object/],
    ["version", (d) => d.version = 2, /version must be 1, got 2/],
    ["preset", (d) => delete d.preset, /preset must be a string, got nothing/],
    ["adapter", (d) => d.adapter = null, /adapter must be an object, got null/],
    [
      "adapter.shaderF16",
      (d) => (d.adapter as Record<string, unknown>).shaderF16 = "yes",
      /true or false/,
    ],
    ["seconds", (d) => d.seconds = "12", /seconds must be a finite number, got "12"/],
    ["records", (d) => delete d.records, /records must be an array, got nothing/],
    ["failures", (d) => d.failures = {}, /failures must be an array, got an object/],
    ["maxSeqLen", (d) => d.maxSeqLen = "none", /maxSeqLen must be an array/],
    ["training", (d) => delete d.training, /training must be an array/],
    ["records[3].gflops", (d) => rec(d, 3).gflops = null, /must be a finite number, got null/],
    ["records[0].msMedian", (d) => rec(d, 0).msMedian = NaN, /finite number, got NaN/],
    ["records[2].peakBytes", (d) => rec(d, 2).peakBytes = Infinity, /finite number, got Infinity/],
    [
      "records[1].impl",
      (d) => rec(d, 1).impl = "cuda",
      /one of "fused", "unfused", "tfjs", "ort", "jax", got "cuda"/,
    ],
    ["records[8].msWallMin", (d) => rec(d, 8).msWallMin = "1", /finite number, got "1"/],
    [`records[${ORT}].ran`, (d) => delete rec(d, ORT).ran, /must be a string, got nothing/],
    [
      "peersSkipped[0].impl",
      (d) => d.peersSkipped = [{ impl: "fused", reason: "x" }],
      /one of "tfjs", "ort", "jax", got "fused"/,
    ],
    ["records[4].seqLen", (d) => rec(d, 4).seqLen = 0, /positive integer, got 0/],
    ["records[5].causal", (d) => delete rec(d, 5).causal, /true or false, got nothing/],
    ["records[6].clock", (d) => rec(d, 6).clock = "gpu", /one of "timestamp", "wall"/],
    ["records[7].msWallMedian", (d) => rec(d, 7).msWallMedian = -1, /≥ 0, got -1/],
    ["failures[0].error", (d) => item(d, "failures", 0).error = 42, /must be a string, got 42/],
    ["maxSeqLen[1].failedAt", (d) => item(d, "maxSeqLen", 1).failedAt = "x", /finite number/],
    ["roofline.gflops", (d) => d.roofline = { size: 1024 }, /finite number, got nothing/],
    ["training[0].model.width", (d) => {
      (item(d, "training", 0).model as Record<string, unknown>).width = undefined;
    }, /finite number/],
  ];
  for (const [field, mutate, message] of cases) {
    const doc = field === "" ? [] : JSON.parse(JSON.stringify(fixtureResults()));
    if (field !== "") mutate(doc);
    assert.throws(
      () => validateResults(doc),
      (err: unknown) => {
        assert.ok(err instanceof ResultsError, `${field}: not a ResultsError: ${err}`);
        assert.equal(err.field, field);
        if (field !== "") assert.ok(err.message.startsWith(`${field} must be`), err.message);
        assert.match(err.message, message);
        return true;
      },
    );
  }
  // A jax-js record may leave out what it ran; an ORT record may not (above).
  const noRan = JSON.parse(JSON.stringify(fixtureResults()));
  delete noRan.records[JAX].ran;
  assert.equal(validateResults(noRan).version, 1);
  // The renderers validate too.
  const bad = JSON.parse(JSON.stringify(fixtureResults()));
  bad.records[0].gflops = "fast";
  assert.throws(() => reportMarkdown(bad), /records\[0\]\.gflops/);
});

/** The index of the fixture's first ORT record and first jax-js record. */
const ORT = fixtureResults().records.findIndex((r) => r.impl === "ort");
const JAX = fixtureResults().records.findIndex((r) => r.impl === "jax");

function item(d: Record<string, unknown>, key: string, i: number): Record<string, unknown> {
  return (d[key] as Record<string, unknown>[])[i];
}

function rec(d: Record<string, unknown>, i: number): Record<string, unknown> {
  return item(d, "records", i);
}

/** Runs `cli.ts report` in a child Deno (the task's permissions); returns code and output. */
async function report(...args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      new URL("cli.ts", ROOT).pathname,
      "report",
      ...args,
    ],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code, stdout: decode(stdout), stderr: decode(stderr) };
}

Deno.test("report CLI: --help, exit code 2 with a clear message for bad arguments and files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigmax-report-" });
  try {
    const notJson = `${dir}/not.json`;
    await Deno.writeTextFile(notJson, "{ version: 1");
    const invalid = `${dir}/invalid.json`;
    const doc = JSON.parse(JSON.stringify(fixtureResults({ seqLens: [256] })));
    doc.records[2].gflops = null;
    await Deno.writeTextFile(invalid, JSON.stringify(doc));
    const [help, none, missing, directory, parse, shape, unknown] = await Promise.all([
      report("--help"),
      report(),
      report(`${dir}/missing.json`),
      report(dir),
      report(notJson),
      report(invalid),
      report(notJson, "--frobnicate"),
    ]);
    assert.equal(help.code, 0);
    assert.match(
      help.stdout,
      /usage: deno task report -- RESULTS\.json \[--out FILE\] \[--markdown FILE\]/,
    );
    assert.equal(none.code, 2);
    assert.match(none.stderr, /error: no results file given/);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read the results file .*missing\.json: no such file/);
    assert.equal(directory.code, 2);
    assert.match(directory.stderr, /cannot read the results file/);
    assert.equal(parse.code, 2);
    assert.match(parse.stderr, /not\.json is not JSON/);
    assert.equal(shape.code, 2);
    assert.match(
      shape.stderr,
      /invalid\.json is not a sweep results document: records\[2\]\.gflops must be a finite number, got null/,
    );
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /frobnicate/);
    for (const r of [none, missing, directory, parse, shape, unknown]) {
      assert.equal(r.stdout, "", "errors go to stderr");
      assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
    }
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "invalid.json",
      "not.json",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report CLI writes report.html next to the input and the Markdown to stdout or a file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigmax-report-" });
  try {
    const results = fixtureResults({ seqLens: [512, 1024], headDims: [64] });
    const input = `${dir}/results.json`;
    await Deno.writeTextFile(input, JSON.stringify(results, null, 1));
    const [plain, chosen] = await Promise.all([
      report(input),
      report("--", input, "--out", `${dir}/page.html`, "--markdown", `${dir}/summary.md`),
    ]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout, reportMarkdown(results));
    assert.match(plain.stderr, /report: wrote .*report\.html \(\d+ charts, /);
    const html = await Deno.readTextFile(`${dir}/report.html`);
    assert.equal(html, await reportHtml(results));

    assert.equal(chosen.code, 0, chosen.stderr);
    assert.equal(chosen.stdout, "", "with --markdown FILE nothing goes to stdout");
    assert.equal(await Deno.readTextFile(`${dir}/summary.md`), reportMarkdown(results));
    assert.equal(await Deno.readTextFile(`${dir}/page.html`), html);

    // An output that cannot be written: exit code 1.
    const unwritable = await report(input, "--out", `${dir}/no/such/dir/page.html`);
    assert.equal(unwritable.code, 1);
    assert.match(unwritable.stderr, /cannot write the report/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the Markdown puts the operation-count model's prediction beside each measured ratio", () => {
  const results = fixtureResults();
  results.model = (["forward", "backward"] as const).map((pass) => ({
    pass,
    headDim: 64,
    sigmoidOverSoftmax: 1.0432,
    fusedOverUnfusedSoftmax: 1.2,
    fusedOverUnfusedSigmoid: 1.25,
  }));
  const md = reportMarkdown(results);
  assert.equal(md.match(/\(model 1\.04×\)/g)?.length, 2); // fused sigmoid/softmax, both passes
  assert.equal(md.match(/\(model 1\.20×\)/g)?.length, 2);
  assert.equal(md.match(/\(model 1\.25×\)/g)?.length, 2);
  const noModel = reportMarkdown(fixtureResults());
  assert.ok(!noModel.includes("(model"));
  assert.throws(
    () => validateResults({ ...results, model: [{ pass: "forward", headDim: 64 }] }),
    /model\[0\]\.sigmoidOverSoftmax/,
  );
});

Deno.test("report shows ORT and jax-js beside TF.js: ratio lines, what ran, skipped peers", async () => {
  const results = fixtureResults();
  results.peersSkipped = [{ impl: "tfjs", reason: "TEST DATA: no <WebGPU> backend" }];
  const html = await reportHtml(results);
  type Spec = {
    id: string;
    series: { label: string; band?: string; points: { x: number; y: number }[] }[];
  };
  const specs = embedded(html, "sigmax-charts") as Spec[];
  const labels = (id: string) => specs.find((s) => s.id === id)!.series.map((s) => s.label);
  const fwd = "forward-f32-d64-full-b1h4", bwd = "backward-f32-d64-full-b1h4";
  for (const label of ["ORT softmax", "ORT sigmoid", "jax-js softmax", "jax-js sigmoid"]) {
    assert.ok(labels(`chart-throughput-${fwd}`).includes(label), label);
    assert.ok(labels(`chart-roofline-${fwd}`).includes(label), label);
  }
  assert.ok(labels(`chart-activation-${fwd}`).includes("ORT sigmoid / softmax"));
  assert.ok(labels(`chart-implementation-${fwd}`).includes("fused / ORT softmax"));
  assert.ok(labels(`chart-implementation-${fwd}`).includes("fused / jax-js sigmoid"));
  // ORT has no backward; jax-js has.
  assert.ok(!labels(`chart-implementation-${bwd}`).some((l) => l.includes("ORT")));
  assert.ok(labels(`chart-implementation-${bwd}`).includes("fused / jax-js softmax"));
  // Their devices are their own: no peak memory, so no memory line.
  assert.ok(!labels(`chart-memory-${fwd}`).some((l) => /ORT|jax-js/.test(l)));
  // The ratio is on the wall clock (ORT has no other), its value the records'.
  const at = {
    pass: "forward",
    precision: "f32",
    headDim: 64,
    causal: false,
    seqLen: 1024,
  } as const;
  const ort = recordOf(results, { ...at, impl: "ort", activation: "softmax" });
  const fused = recordOf(results, { ...at, impl: "fused", activation: "softmax" });
  const ratio = specs.find((s) => s.id === `chart-implementation-${fwd}`)!.series
    .find((s) => s.label === "fused / ORT softmax")!.points.find((p) => p.x === 1024)!;
  assert.equal(ratio.y, ort.msWallMedian / fused.msWallMedian);
  // The peers' table: every peer record, with the kernel ORT ran, escaped.
  const section = html.slice(
    html.indexOf('<section id="peers">'),
    html.indexOf('<section id="failures">'),
  );
  const rows = [...section.matchAll(/<tr><td>(TF\.js|ORT|jax-js)<\/td>/g)].length;
  assert.equal(rows, results.records.filter((r) => ["tfjs", "ort", "jax"].includes(r.impl)).length);
  assert.ok(section.includes("FlashAttention (fused; programs: CopyKVCache, FlashAttention)"));
  assert.ok(section.includes("jit(nn.dotProductAttention)"));
  assert.ok(section.includes("Not run: TF.js: TEST DATA: no &lt;WebGPU&gt; backend"));
  assert.ok(html.includes("jax-js 287.6 GFLOP/s"), "jax-js's matmul beside the roofline");

  // Markdown: a fused/peer row per peer, what each peer ran at the shape, the skipped peer.
  const md = reportMarkdown(results);
  const heading = /### Forward: B=1, H=4, S=1024, D=64, f32, non-causal/;
  const jax = recordOf(results, { ...at, impl: "jax", activation: "sigmoid" });
  const fusedSig = recordOf(results, { ...at, impl: "fused", activation: "sigmoid" });
  assert.deepEqual(mdRow(md, heading, "fused / ORT"), [
    `${(ort.msWallMedian / fused.msWallMedian).toFixed(2)}×`,
    `${
      (recordOf(results, { ...at, impl: "ort", activation: "sigmoid" }).msWallMedian /
        fusedSig.msWallMedian).toFixed(2)
    }×`,
  ]);
  assert.equal(
    mdRow(md, heading, "fused / jax-js")[1],
    `${(jax.msWallMedian / fusedSig.msWallMedian).toFixed(2)}×`,
  );
  assert.deepEqual(mdRow(md, /### Backward/, "fused / ORT"), ["—", "—"]);
  assert.match(md, /- ORT softmax: TEST DATA: MultiHeadAttention; FlashAttention \(fused;/);
  assert.match(md, /Not run: TF\.js: TEST DATA: no &lt;WebGPU> backend/);
});

Deno.test("report charts carry each figure's spread: the slowest to the fastest run, as a band", async () => {
  const results = fixtureResults();
  type Point = { x: number; y: number; low: number | null; high: number | null };
  const specs = embedded(await reportHtml(results), "sigmax-charts") as {
    id: string;
    series: { label: string; band?: string; points: Point[] }[];
  }[];
  const point = (id: string, label: string, x: number) => {
    const s = specs.find((c) => c.id === id)!.series.find((l) => l.label === label)!;
    assert.ok(s.band, `${id} ${label} has a band`);
    return s.points.find((p) => p.x === x)!;
  };
  const key = "forward-f32-d64-full-b1h4";
  const at = {
    pass: "forward",
    precision: "f32",
    headDim: 64,
    causal: false,
    seqLen: 512,
  } as const;
  const r = (impl: "fused" | "ort" | "unfused", activation: "softmax" | "sigmoid") =>
    recordOf(results, { ...at, impl, activation });
  const close = (a: number | null, b: number) =>
    assert.ok(a !== null && Math.abs(a - b) <= 1e-12 * Math.abs(b), `${a} ≠ ${b}`);
  // Throughput: flops / ms, so the slowest run gives the low bound.
  const f = r("fused", "softmax");
  const t = point(`chart-throughput-${key}`, "fused softmax", 512);
  assert.equal(t.y, f.gflops);
  close(t.low, f.gflops * f.msMedian / f.msMax);
  close(t.high, f.gflops * f.msMedian / f.msMin);
  assert.ok(t.low! < t.y && t.y < t.high!);
  // Same clock: fused's slowest against unfused's fastest, to the reverse.
  const u = r("unfused", "sigmoid"), fs = r("fused", "sigmoid");
  const same = point(`chart-implementation-${key}`, "fused / unfused sigmoid", 512);
  close(same.low, u.msMin / fs.msMax);
  close(same.high, u.msMax / fs.msMin);
  // Across clocks: the wall-clock extremes.
  const o = r("ort", "softmax");
  const across = point(`chart-implementation-${key}`, "fused / ORT softmax", 512);
  close(across.low, o.msWallMin! / f.msWallMax!);
  close(across.high, o.msWallMax! / f.msWallMin!);
  // Without a recorded wall-clock spread, the ratio has no band, and the page draws none.
  const bare = fixtureResults({ seqLens: [512], headDims: [64], causal: [false], f16: false });
  for (const rec of bare.records) delete rec.msWallMin, delete rec.msWallMax;
  const bareSpecs = embedded(await reportHtml(bare), "sigmax-charts") as typeof specs;
  const s = bareSpecs.find((c) => c.id === `chart-implementation-${key}`)!.series
    .find((l) => l.label === "fused / ORT softmax")!;
  assert.equal(s.band, undefined);
  assert.deepEqual([s.points[0].low, s.points[0].high], [null, null]);
  // Memory is not a timing: no band.
  assert.ok(
    specs.filter((c) => c.id.startsWith("chart-memory-")).every((c) =>
      c.series.every((l) => l.band === undefined)
    ),
  );
});
