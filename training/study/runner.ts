/**
 * Runs a study's grid (or one shard of it) into a directory:
 *
 * ```
 * DIR/runs/<id>.json     one finished run (written atomically): its spec and TrainResult
 * DIR/checkpoints/<id>   the checkpoint of the run in progress (removed when it finishes)
 * DIR/logs/<id>.jsonl    the run's JSON-lines training log
 * DIR/events.jsonl       what the runner did: start, resume, done, skip, per run
 * ```
 *
 * A re-run skips every run whose result file exists and resumes an
 * interrupted one from its checkpoint, so killing a study loses at most the
 * steps since that run's last checkpoint, and no run is ever done twice.
 * Paper-study runs (a least-squares fit in f64, seconds each) have no
 * checkpoint: an interrupted one is fitted again from the start.
 * Shards write into the same layout: copy the `runs/` folders of several
 * machines into one directory and analyse it.
 *
 * @module
 */

import { formatSeconds } from "../format.ts";
import { train, type TrainResult } from "../trainer.ts";
import { type MoeRunResult, runMoe } from "../moe/run.ts";
import type { MoeRunSpec, RunSpec } from "./grid.ts";

/** A finished run as stored in `runs/<id>.json`. */
export interface RunRecord {
  spec: RunSpec;
  result: TrainResult;
}

/** A finished paper-study run (training/moe/) as stored in `runs/<id>.json`. */
export interface MoeRunRecord {
  spec: MoeRunSpec;
  result: MoeRunResult;
}

/** Options of {@linkcode runStudy}. */
export interface RunStudyOptions {
  /** The study directory. */
  dir: string;
  /** Progress lines on stderr. Default true. */
  progress?: boolean;
  /** Steps between checkpoints of a run. Default 50. */
  checkpointEvery?: number;
}

/** What {@linkcode runStudy} did. */
export interface RunStudySummary {
  /** Runs trained to the end by this call. */
  done: string[];
  /** Runs skipped because their result already existed. */
  skipped: string[];
  /** Runs resumed from a checkpoint. */
  resumed: string[];
  seconds: number;
}

/** Path of a run's result file. */
export function runPath(dir: string, id: string): string {
  return `${dir}/runs/${id}.json`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Writes `text` to `path` through a temporary file in the same folder and a rename. */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/** Trains every run of `runs` that has no result yet; resumes interrupted ones. */
export async function runStudy(
  runs: (RunSpec | MoeRunSpec)[],
  options: RunStudyOptions,
): Promise<RunStudySummary> {
  const { dir } = options;
  const started = performance.now();
  for (const sub of ["runs", "checkpoints", "logs"]) {
    await Deno.mkdir(`${dir}/${sub}`, { recursive: true });
  }
  const events = await Deno.open(`${dir}/events.jsonl`, { create: true, append: true });
  const event = async (run: string, kind: string, extra: Record<string, unknown> = {}) => {
    const line = JSON.stringify({ time: new Date().toISOString(), run, event: kind, ...extra });
    await events.write(new TextEncoder().encode(line + "\n"));
  };
  const log = (line: string) => {
    if (options.progress !== false) console.error(line);
  };
  const summary: RunStudySummary = { done: [], skipped: [], resumed: [], seconds: 0 };
  try {
    const todo: (RunSpec | MoeRunSpec)[] = [];
    for (const run of runs) {
      if (await exists(runPath(dir, run.id))) {
        summary.skipped.push(run.id);
        await event(run.id, "skip");
        // A kill between writing the result and removing the checkpoint leaves it behind.
        await Deno.remove(`${dir}/checkpoints/${run.id}.ckpt`).catch(() => {});
      } else {
        todo.push(run);
      }
    }
    if (summary.skipped.length) {
      log(`study: ${summary.skipped.length} runs already done, ${todo.length} to go`);
    }
    let spent = 0;
    for (const [k, run] of todo.entries()) {
      const checkpoint = `${dir}/checkpoints/${run.id}.ckpt`;
      const resuming = await exists(checkpoint);
      await event(run.id, resuming ? "resume" : "start");
      if (resuming) summary.resumed.push(run.id);
      const t0 = performance.now();
      let line: string;
      if ("moe" in run) {
        const result = runMoe(run.moe);
        const record: MoeRunRecord = { spec: run, result };
        await writeAtomic(runPath(dir, run.id), JSON.stringify(record));
        await event(run.id, "done", {
          voronoi: result.voronoi,
          converged: result.converged,
          winner: result.winner,
        });
        line = `voronoi ${formatMetric(result.voronoi)}, ${
          result.converged ? "converged" : "NOT converged"
        } (${result.winner} won)`;
      } else {
        const result = await train({
          ...run.config,
          checkpoint,
          checkpointEvery: options.checkpointEvery ?? 50,
          log: `${dir}/logs/${run.id}.jsonl`,
          resume: true,
          progress: false,
        });
        const record: RunRecord = { spec: run, result };
        await writeAtomic(runPath(dir, run.id), JSON.stringify(record));
        await Deno.remove(checkpoint).catch(() => {});
        await event(run.id, "done", { metric: result.final.metric, steps: result.steps });
        line = `${result.metricName} ${formatMetric(result.final.metric)} (${result.steps} steps)`;
      }
      summary.done.push(run.id);
      spent += (performance.now() - t0) / 1000;
      const left = (spent / (k + 1)) * (todo.length - k - 1);
      log(
        `[${k + 1}/${todo.length}] ${run.id}: ${line}, ${
          ((performance.now() - t0) / 1000).toFixed(1)
        } s  ETA ${formatSeconds(left)}`,
      );
    }
  } finally {
    events.close();
  }
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

/** Reads every finished run of `dir` (training runs; see {@linkcode readMoeRuns} for paper runs). */
export async function readRuns(dir: string): Promise<RunRecord[]> {
  return await readRecords<RunRecord>(dir);
}

/** Reads every finished paper-study run of `dir`. */
export async function readMoeRuns(dir: string): Promise<MoeRunRecord[]> {
  return (await readRecords<MoeRunRecord>(dir)).filter((r) => r.result.kind === "moe");
}

async function readRecords<T extends { spec: { id: string } }>(dir: string): Promise<T[]> {
  const out: T[] = [];
  try {
    for await (const entry of Deno.readDir(`${dir}/runs`)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      out.push(JSON.parse(await Deno.readTextFile(`${dir}/runs/${entry.name}`)));
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort((a, b) => (a.spec.id < b.spec.id ? -1 : 1));
}

function formatMetric(x: number): string {
  return Math.abs(x) >= 0.01 && Math.abs(x) < 1000 ? x.toFixed(4) : x.toExponential(3);
}
