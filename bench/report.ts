/**
 * The sweep's report: `deno task report -- RESULTS.json [--out FILE] [--markdown FILE]`.
 *
 * Reads the JSON document that `deno task bench -- --preset …` writes
 * ({@linkcode SweepResults}) and makes
 *
 * - a self-contained HTML page ({@linkcode reportHtml}): Chart.js inlined,
 *   the results embedded, opens offline. Charts per (pass, precision, head
 *   dim, causal, batch × heads) group: GFLOP/s, sigmoid/softmax, fused/unfused
 *   and fused/peer (TF.js, ONNX Runtime Web, jax-js), fraction of the matmul
 *   roofline, and peak memory, each against the sequence length on a log₂
 *   axis, every timed figure with its spread (slowest to fastest run) shaded;
 *   tables of the longest sequences, what the peers ran, the failures and
 *   the training steps. A chart without data is replaced by a note. The page
 *   sets `window.__sigmaxCharts` to the number of charts it drew and logs
 *   nothing when all went well;
 * - a Markdown summary for the README ({@linkcode reportMarkdown}).
 *
 * The parts: bench/report/schema.ts (the document's validation),
 * bench/report/charts.ts (the chart specs), bench/report/html.ts (the page;
 * its script is bench/page_script.js, shared with the study's page),
 * bench/report/markdown.ts (the summary). This file is the command line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import type { SweepResults } from "./results.ts";
import { ResultsError, validateResults } from "./report/schema.ts";
import { buildCharts, isChart } from "./report/charts.ts";
import { reportHtml } from "./report/html.ts";
import { reportMarkdown } from "./report/markdown.ts";
import { fmtBytes } from "./report/format.ts";

export { ResultsError, validateResults } from "./report/schema.ts";
export { reportHtml } from "./report/html.ts";
export { reportMarkdown } from "./report/markdown.ts";
export { CHART_JS_VERSION, escapeHtml, loadChartJs, scriptJson } from "./page.ts";

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
