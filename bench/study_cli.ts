/**
 * `deno task study`: the sample-efficiency study.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseShard, shardOf, STUDY_PRESETS, studyGrid } from "../training/study/grid.ts";
import { readRuns, runStudy } from "../training/study/runner.ts";
import { writeStudyReport } from "./study_report.ts";

const USAGE = `usage: deno task study -- --preset quick|full [options]

Trains softmax and sigmoid attention over a grid of training-set sizes n and
seeds (paired: the same data and initial weights for both), then analyses the
runs (means with bootstrap 95% intervals, log-log slopes, samples- and
steps-to-target, paired differences) and writes study.json, study.md and
study.html in the output folder.

  --preset NAME       quick (this 2-core machine: under 45 minutes), full (sized
                      for a GPU: hours), or tiny (seconds; for tests)
  --task LIST         only these cells or tasks, comma-separated (e.g. count,mqar
                      or teacher-sigmoid-relu)
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
one from its checkpoint. Exit codes: 0 done, 1 failure, 2 bad options.`;

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
  let grid, dir: string, shard, checkpointEvery = 50;
  try {
    const name = values.preset as keyof typeof STUDY_PRESETS;
    if (!values.preset || !(name in STUDY_PRESETS)) {
      throw new UsageError(
        `--preset must be quick, full or tiny, got ${JSON.stringify(values.preset)}`,
      );
    }
    const preset = STUDY_PRESETS[name];
    grid = studyGrid(preset, values.task?.split(",").map((s) => s.trim()).filter(Boolean));
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
    const runs = shard ? shardOf(grid, shard) : grid;
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
  const finished = new Set((await readRuns(dir)).map((r) => r.spec.id));
  const missing = grid.filter((r) => !finished.has(r.id));
  if (missing.length > 0) {
    log(
      `study: ${grid.length - missing.length} of ${grid.length} runs are in ${dir}; the analysis ` +
        `waits for all of them (run the other shards, merge their runs/ folders, then --analyze)`,
    );
    return values.analyze ? 1 : 0;
  }
  const written = await writeStudyReport(dir, values.preset!, grid);
  log(`study: analysis → ${written.join(", ")}`);
  return 0;
}

function usageError(message: string): number {
  console.error(`error: ${message}\nrun with --help for the options`);
  return 2;
}
