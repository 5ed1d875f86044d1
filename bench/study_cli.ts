/**
 * `deno task study`: the sample-efficiency study.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  isPaperPreset,
  type MoeRunSpec,
  PAPER_PRESETS,
  paperGrid,
  parseShard,
  type RunSpec,
  shardOf,
  STUDY_PRESETS,
  studyGrid,
} from "../training/study/grid.ts";
import { readMoeRuns, readRuns, runStudy } from "../training/study/runner.ts";
import { writePaperReport, writeStudyReport } from "./study_report.ts";

const USAGE = `usage: deno task study -- --preset paper-quick|paper|quick|full [options]

The paper study (paper-quick, paper, paper-tiny): the least-squares estimator
of the papers' quadratic-gating mixture of experts (arXiv 2502.00281,
2405.13997, 2410.11222), fitted in f64 with the same gate as the truth
(sigmoid on sigmoid, softmax on softmax), over-specified (k* + 1 experts) and
exact-specified (the control), over n and seeds; reports the Voronoi loss
against n for both gates, log-log slopes, the paired slope difference
sigmoid − softmax with t and BCa intervals, Holm-adjusted tests, local slopes,
and convergence diagnostics.

The attention study (quick, full, tiny, paper-attention): trains softmax and sigmoid attention
over a grid of training-set sizes n and seeds (paired: the same data and
initial weights for both), then analyses the runs (means and paired differences
with t 95% intervals over seeds, log-log slopes, samples-to-target with misses
counted as censored, steps-to-target, the runs that met the convergence rule).

Both write study.json, study.md and study.html in the output folder.

  --preset NAME       paper-quick (this 2-core machine: well under 60 minutes),
                      paper (a bigger machine or --shard: roughly 50-100x the
                      work of paper-quick, estimated, not measured),
                      paper-quick-lownoise (paper-quick at noise 0.01: a
                      sensitivity check); paper-quick-bound20 (paper-quick
                      with the parameter box [-20, 20]: a sensitivity
                      check); paper-tiny (seconds; tests);
                      paper-attention (the
                      attention-native estimator study on the WebGPU kernels:
                      full batch, no weight decay or clipping, trained to a
                      plateau; sized for a GPU or --shard); quick (this
                      machine: under 45 minutes), full (a GPU: hours), tiny
                      (tests)
  --task LIST         only these cells or tasks, comma-separated (e.g. count,mqar
                      or teacher-sigmoid-relu, or over-dense-linear-partially)
  --shard i/n         run only every n-th run of the grid, starting at the i-th;
                      shards can run on different machines into copies of the
                      same folder, then merge the runs/ folders and run
                      --analyze
  --out DIR           the study folder (default results/study-PRESET)
  --checkpoint-every N  steps between a run's checkpoints (default 50)
  --analyze           only analyse the runs already in --out (no training)
  --quiet             no progress lines
  -h, --help          this help

Re-running the same command skips finished runs and resumes an interrupted
one from its checkpoint (a paper run, seconds long, is fitted again). The
paper study runs seed by seed, so a study cut short leaves whole seeds; its
report analyses the seeds whose runs are all done and says which are missing.
Exit codes: 0 done, 1 failure, 2 bad options.`;

class UsageError extends Error {}

/** Runs `deno task study` (the `study` command of cli.ts); returns the exit code. */
export async function studyMain(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        preset: { type: "string" },
        task: { type: "string" },
        shard: { type: "string" },
        out: { type: "string" },
        "checkpoint-every": { type: "string" },
        analyze: { type: "boolean" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    return usageError((err as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  let grid: (RunSpec | MoeRunSpec)[], dir: string, shard, checkpointEvery = 50;
  const paper = isPaperPreset(values.preset ?? "");
  try {
    const name = values.preset as keyof typeof STUDY_PRESETS;
    if (!values.preset || (!paper && !Object.hasOwn(STUDY_PRESETS, name))) {
      throw new UsageError(
        `--preset must be paper-quick, paper-quick-lownoise, paper-quick-bound20, paper, paper-tiny, paper-attention, quick, full or tiny, got ${
          JSON.stringify(values.preset)
        }`,
      );
    }
    const cells = values.task?.split(",").map((s) => s.trim()).filter(Boolean);
    const preset = paper
      ? PAPER_PRESETS[values.preset as keyof typeof PAPER_PRESETS]
      : STUDY_PRESETS[name];
    grid = paper
      ? paperGrid(PAPER_PRESETS[values.preset as keyof typeof PAPER_PRESETS], cells)
      : studyGrid(STUDY_PRESETS[name], cells);
    shard = values.shard ? parseShard(values.shard) : undefined;
    dir = values.out ?? `results/study-${preset.name}`;
    if (values["checkpoint-every"] !== undefined) {
      checkpointEvery = Number(values["checkpoint-every"]);
      if (!Number.isInteger(checkpointEvery) || checkpointEvery < 1) {
        throw new UsageError(
          `--checkpoint-every must be a positive integer, got "${values["checkpoint-every"]}"`,
        );
      }
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof RangeError) return usageError(err.message);
    throw err;
  }
  const log = (line: string) => {
    if (!values.quiet) console.error(line);
  };
  if (!values.analyze) {
    let runs = shard ? shardOf(grid, shard) : grid;
    // The paper study goes seed by seed (cheap n first), so a cut-short run leaves whole seeds.
    if (paper) {
      runs = [...runs].sort((a, b) =>
        a.seed - b.seed || (a.cell < b.cell ? -1 : a.cell > b.cell ? 1 : 0) || a.n - b.n ||
        (a.attention < b.attention ? -1 : 1)
      );
    }
    log(
      `study ${values.preset}: ${runs.length} runs` +
        (shard ? ` (shard ${shard.index}/${shard.count} of ${grid.length})` : "") + ` → ${dir}`,
    );
    const summary = await runStudy(runs, { dir, progress: !values.quiet, checkpointEvery });
    log(
      `study: ${summary.done.length} runs trained (${summary.resumed.length} resumed), ` +
        `${summary.skipped.length} already done, ${summary.seconds.toFixed(0)} s`,
    );
  }
  if (paper) {
    const records = await readMoeRuns(dir);
    if (records.length === 0) {
      console.error(`error: no finished runs in ${dir}/runs: nothing to analyse`);
      return 1;
    }
    const finished = new Set(records.map((r) => r.spec.id));
    const missing = grid.filter((r) => !finished.has(r.id)).length;
    if (missing > 0) {
      log(
        `study: ${missing} of ${grid.length} runs are not in ${dir}; the report analyses the ` +
          `seeds whose runs are all done`,
      );
    }
    const written = await writePaperReport(dir, values.preset!, records);
    log(`study: analysis → ${written.join(", ")}`);
    return 0;
  }
  const finished = new Set((await readRuns(dir)).map((r) => r.spec.id));
  const missing = grid.filter((r) => !finished.has(r.id));
  if (missing.length > 0) {
    log(
      `study: ${grid.length - missing.length} of ${grid.length} runs are in ${dir}; the analysis ` +
        `waits for all of them (run the other shards, merge their runs/ folders, then --analyze)`,
    );
    return values.analyze ? 1 : 0;
  }
  const written = await writeStudyReport(dir, values.preset!, grid as RunSpec[]);
  log(`study: analysis → ${written.join(", ")}`);
  return 0;
}

function usageError(message: string): number {
  console.error(`error: ${message}\nrun with --help for the options`);
  return 2;
}
