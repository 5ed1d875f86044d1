/**
 * `deno task train`: trains one model on one task from the command line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { planRun, train, type TrainConfig, type TrainResult } from "./trainer.ts";
import { TASK_NAMES, type TaskName } from "./tasks/index.ts";

/** Usage text of `deno task train`. */
export const TRAIN_USAGE = `usage: deno task train --task NAME [options]

Trains a small transformer (or, for --task teacher, the paper's single
attention layer) on WebGPU with softmax or sigmoid attention, and reports its
test metric. Same seed and adapter → the same loss curve.

task and data:
  --task NAME          ${TASK_NAMES.join(" | ")} (required)
  --n N                training sequences (default 2000; mnist at most 9000)
  --seed N             seed of data, initialisation and batch order (default 1)
  --test-size N        held-out sequences (task default)
  --opt KEY=VALUE      a task option, repeatable (e.g. --opt pairs=8 for mqar,
                       --opt teacherActivation=sigmoid --opt expert=relu for teacher)

model:
  --attention A        softmax | sigmoid (default softmax)
  --arch A             transformer | attention (default: attention for teacher)
  --width N            residual width (default 32; teacher: the input dim)
  --heads N            attention heads (default 2; attention arch 1)
  --layers N           transformer blocks (default 2)
  --qk-norm            LayerNorm on queries and keys (Apple's stabiliser)
  --causal BOOL        true | false (default: the task's setting)

optimisation:
  --steps N            optimisation steps; with a convergence criterion, the cap
                       (default 1000)
  --batch-size N       sequences per step (default 32)
  --full-batch         every step uses the whole training set (batch = n)
  --lr X               peak learning rate (default 3e-3; attention arch 1e-2)
  --warmup N           warmup steps (default 5% of --schedule-steps)
  --schedule-steps N   steps the cosine spans, the floor after it (default --steps)
  --min-lr-ratio X     cosine floor as a fraction of lr (default 0.1)
  --weight-decay X     AdamW weight decay on matrices (default 0.01)
  --clip X             global grad-norm clip, 0 = off (default 1)
  --eval-every N       evaluate on the test set every N steps (default 100)
  --patience N         stop after N evaluations without improvement (default 0 = never)
  --target X           stop once the test metric reaches X

convergence (training as an estimator; a run that ends at the --steps cap
without meeting the criterion is reported as not converged):
  --plateau-tol X      stop when the mean training loss of the last window
                       changed by at most X relative to the window before
                       (default 0 = off)
  --grad-tol X         stop when the gradient norm stayed at most X over the
                       last window (default 0 = off; with both set, both must hold)
  --plateau-window N   steps per window (default 100); checked every 32 steps
  For unpenalised least squares add --weight-decay 0 --clip 0.

output:
  --log FILE           JSON-lines log, one line per step and per evaluation
                       (a new run overwrites it; a resumed run continues it)
  --checkpoint FILE    write a checkpoint every --checkpoint-every steps (default:
                       --eval-every) and resume from it when it exists
  --checkpoint-every N
  --no-resume          ignore an existing checkpoint (it is overwritten)
  On resume, --steps may change (not below the checkpoint's step): the run keeps
  the checkpoint's schedule (--warmup, --schedule-steps), so a longer run goes
  on at the cosine's floor; the stopping rules, --log, --checkpoint-every and
  --quiet may change too. Any other setting that differs is refused (exit 2).
  --json               print the result as JSON on stdout instead of a summary
  --quiet              no progress line
  -h, --help           this help

Exit codes: 0 done, 1 a failure while training, 2 bad options.

example:
  deno task train --task mqar --attention sigmoid --n 2000 --seed 1 --steps 600
  deno task train --task teacher --n 256 --full-batch --weight-decay 0 --clip 0 \
    --min-lr-ratio 1 --warmup 0 --steps 20000 --plateau-tol 1e-4 --plateau-window 200`;

/** Thrown for bad command-line input: printed with a usage hint, exit code 2. */
export class TrainUsageError extends Error {}

function parseNumber(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n)) {
    throw new TrainUsageError(`--${name} must be a number, got "${text}"`);
  }
  return n;
}

function parseValue(text: string): unknown {
  if (text === "true") return true;
  if (text === "false") return false;
  const n = Number(text);
  return text.trim() !== "" && Number.isFinite(n) ? n : text;
}

/** Turns `deno task train` arguments into a training config (throws TrainUsageError). */
export function parseTrainArgs(
  args: string[],
): Partial<TrainConfig> & { task: TaskName; json: boolean } | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: false,
      options: {
        task: { type: "string" },
        n: { type: "string" },
        seed: { type: "string" },
        "test-size": { type: "string" },
        opt: { type: "string", multiple: true },
        attention: { type: "string" },
        arch: { type: "string" },
        width: { type: "string" },
        heads: { type: "string" },
        layers: { type: "string" },
        "qk-norm": { type: "boolean" },
        causal: { type: "string" },
        steps: { type: "string" },
        "batch-size": { type: "string" },
        "full-batch": { type: "boolean" },
        "plateau-tol": { type: "string" },
        "grad-tol": { type: "string" },
        "plateau-window": { type: "string" },
        lr: { type: "string" },
        warmup: { type: "string" },
        "schedule-steps": { type: "string" },
        "min-lr-ratio": { type: "string" },
        "weight-decay": { type: "string" },
        clip: { type: "string" },
        "eval-every": { type: "string" },
        patience: { type: "string" },
        target: { type: "string" },
        log: { type: "string" },
        checkpoint: { type: "string" },
        "checkpoint-every": { type: "string" },
        "no-resume": { type: "boolean" },
        json: { type: "boolean" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    throw new TrainUsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return "help";
  if (!v.task) throw new TrainUsageError(`--task is required (${TASK_NAMES.join(", ")})`);
  if (!TASK_NAMES.includes(v.task as TaskName)) {
    throw new TrainUsageError(`unknown task "${v.task}"; tasks: ${TASK_NAMES.join(", ")}`);
  }
  const taskOptions: Record<string, unknown> = {};
  for (const kv of v.opt ?? []) {
    const eq = kv.indexOf("=");
    if (eq < 1) throw new TrainUsageError(`--opt needs KEY=VALUE, got "${kv}"`);
    taskOptions[kv.slice(0, eq)] = parseValue(kv.slice(eq + 1));
  }
  let causal: boolean | undefined;
  if (v.causal !== undefined) {
    if (v.causal !== "true" && v.causal !== "false") {
      throw new TrainUsageError(`--causal must be true or false, got "${v.causal}"`);
    }
    causal = v.causal === "true";
  }
  if (v.arch !== undefined && v.arch !== "transformer" && v.arch !== "attention") {
    throw new TrainUsageError(`--arch must be transformer or attention, got "${v.arch}"`);
  }
  return {
    task: v.task as TaskName,
    n: parseNumber("n", v.n),
    seed: parseNumber("seed", v.seed),
    testSize: parseNumber("test-size", v["test-size"]),
    taskOptions,
    attention: v.attention as TrainConfig["attention"] | undefined,
    arch: v.arch as TrainConfig["arch"],
    width: parseNumber("width", v.width),
    heads: parseNumber("heads", v.heads),
    layers: parseNumber("layers", v.layers),
    qkNorm: v["qk-norm"] ?? false,
    causal,
    steps: parseNumber("steps", v.steps),
    batchSize: parseNumber("batch-size", v["batch-size"]),
    fullBatch: v["full-batch"] ?? false,
    plateauTol: parseNumber("plateau-tol", v["plateau-tol"]),
    gradTol: parseNumber("grad-tol", v["grad-tol"]),
    plateauWindow: parseNumber("plateau-window", v["plateau-window"]),
    lr: parseNumber("lr", v.lr),
    warmup: parseNumber("warmup", v.warmup),
    scheduleSteps: parseNumber("schedule-steps", v["schedule-steps"]),
    minLrRatio: parseNumber("min-lr-ratio", v["min-lr-ratio"]),
    weightDecay: parseNumber("weight-decay", v["weight-decay"]),
    clip: parseNumber("clip", v.clip),
    evalEvery: parseNumber("eval-every", v["eval-every"]),
    patience: parseNumber("patience", v.patience),
    target: parseNumber("target", v.target),
    log: v.log,
    checkpoint: v.checkpoint,
    checkpointEvery: parseNumber("checkpoint-every", v["checkpoint-every"]),
    resume: !v["no-resume"],
    progress: !v.quiet,
    json: v.json ?? false,
  };
}

/** A few lines that sum up a run. */
export function formatResult(r: TrainResult): string {
  const m = (x: number) => (r.metricName.includes("accuracy") ? x.toFixed(4) : x.toExponential(3));
  const lines = [
    `task ${r.task}  attention ${r.attention}  n ${r.n}  seed ${r.seed}  ` +
    `model ${r.model.arch} (${r.parameterCount} parameters)`,
    `steps ${r.steps} (${
      r.stopReason === "converged"
        ? "converged"
        : `stopped by ${r.stopReason}; ${r.converged ? "converged" : "not converged"}`
    })  ` +
    `batch ${r.batchSize}  final train loss ${r.losses.at(-1)?.toFixed(4)}  ` +
    `test loss ${r.final.loss.toFixed(4)}`,
    `final gradient norm ${r.finalGradNorm.toExponential(3)}  relative loss change over the ` +
    `last window ${r.relativeChange === null ? "n/a" : r.relativeChange.toExponential(3)}`,
    `test ${r.metricName} ${m(r.final.metric)} (best ${m(r.best.metric)} at step ${r.best.step}; ` +
    `chance ${m(r.chance)})`,
  ];
  const pe = r.final.parameterErrors;
  if (pe) {
    lines.push(
      `parameter error: gating ${pe.gating.toFixed(4)}  value ${pe.value.toFixed(4)}  ` +
        `voronoi ${pe.voronoi.toExponential(3)}`,
    );
  }
  if (r.stepsToTarget !== undefined) lines.push(`reached the target at step ${r.stepsToTarget}`);
  lines.push(
    `${r.tokensPerSecond.toFixed(0)} tokens/s  ${r.seconds.toFixed(1)} s  on ${r.adapter}` +
      (r.resumedFrom !== undefined ? `  (resumed from step ${r.resumedFrom})` : ""),
  );
  return lines.join("\n");
}

/** Runs `deno task train`; returns the exit code. */
export async function trainMain(args: string[]): Promise<number> {
  let options;
  try {
    options = parseTrainArgs(args);
    if (options === "help") {
      console.log(TRAIN_USAGE);
      return 0;
    }
    // Resolve the config, the task and the model before any GPU work, so bad options exit with 2.
    const { json: _json, ...config } = options;
    await planRun(config);
  } catch (err) {
    if (err instanceof TrainUsageError || err instanceof RangeError) {
      console.error(`error: ${err.message}\nrun with --help for the options`);
      return 2;
    }
    throw err;
  }
  const { json, ...config } = options;
  const result = await train(config);
  console.log(json ? JSON.stringify(result) : formatResult(result));
  return 0;
}
