/**
 * The trainer: AdamW with linear warmup and a cosine decay, global grad-norm
 * clipping, evaluation every k steps, early stopping, a plateau (convergence)
 * criterion, full-batch training, a JSON-lines log, resumable checkpoints,
 * and a progress line on stderr.
 *
 * A training step is one command buffer: upload the batch, forward, loss,
 * backward, the squared norm of every gradient, their sum, AdamW on every
 * parameter, and a copy of the loss and the squared norm into a history
 * buffer that is read back every {@linkcode HISTORY_STEPS} steps. The CPU
 * only draws the batch and writes the step's learning rate.
 *
 * Determinism: initialisation comes from `seed`, and the batch order is a
 * pure function of `(seed, step)`: step t takes positions `t·B … t·B + B` of
 * an endless sequence of epochs, each a seeded shuffle of the training set.
 * Nothing else is random, so the same seed on the same adapter gives the same
 * loss curve, and a run resumed from a checkpoint continues the exact curve of
 * an uninterrupted one. With `fullBatch`, every step uses the whole training
 * set in index order (uploaded once), so each step's loss is the full-batch
 * training loss at the parameters before that step's update.
 *
 * Training as an estimator (`plateauTol`, `gradTol`): instead of a fixed
 * budget, a run stops when it has converged, with `steps` only a cap. With
 * W = `plateauWindow`, L̄₁ the mean training loss of steps t−2W … t−W−1 and
 * L̄₂ that of steps t−W … t−1, the loss criterion holds when
 * |L̄₁ − L̄₂| / L̄₁ ≤ `plateauTol` (the relative change over one window; 0/0
 * counts as 0); the gradient criterion holds when the global gradient norm
 * (before clipping) stayed ≤ `gradTol` on each of the last W steps. The run
 * has converged when every criterion that is on (tolerance > 0) holds; it is
 * checked whenever the loss history is read back (every
 * {@linkcode HISTORY_STEPS} steps and at every evaluation and checkpoint), so
 * it stops at most that many steps after the criterion first holds.
 * `TrainResult.converged` records whether it held when the run ended; a run
 * that ends at the step cap without it (or with no criterion on) is not
 * converged. With `fullBatch` the windows are means of exact full-batch
 * losses and the norms are full-batch gradient norms; with minibatches they
 * average minibatch losses (choose W of at least an epoch, n / batchSize steps).
 * For unpenalised least squares set `weightDecay: 0` and `clip: 0`.
 *
 * @module
 */

import { adapterReport, getDevice, gpuDone, readFloat32 } from "../kernels/device.ts";
import { AdamWPlan, createAdamWStepBuffer, writeAdamWStep } from "../kernels/adamw.ts";
import type { Activation } from "../kernels/attention_options.ts";
import { SumPlan } from "../kernels/reduce.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import {
  type ExpertFn,
  type Graph,
  Model,
  type ModelConfig,
  outputRows,
  outputWidth,
  resolveModelConfig,
} from "./model.ts";
import { formatSeconds } from "./format.ts";
import { Rng } from "./rng.ts";
import { createTask, TASK_NAMES, type TaskName } from "./tasks/index.ts";
import type { Batch, Task } from "./tasks/task.ts";
import { parameterErrors, type TeacherTask } from "./tasks/teacher.ts";

/** Steps whose loss is kept on the GPU between read-backs. */
export const HISTORY_STEPS = 32;

/** Everything a training run needs. Only `task` is required. */
export interface TrainConfig {
  /** One of {@linkcode TASK_NAMES}. */
  task: TaskName;
  /** Training sequences (the sample size the study varies). Default 2000 (the task may cap it). */
  n: number;
  /** Seed of the data, the initialisation and the batch order. Default 1. */
  seed: number;
  /** The attention activation. Default softmax. */
  attention: Activation;
  /** Held-out sequences (each task has a default). */
  testSize?: number;
  /** Task-specific options (e.g. `{ pairs: 8 }` for mqar). */
  taskOptions: Record<string, unknown>;
  /** Model: `"transformer"` for every task, `"attention"` (the paper's single layer) by default for teacher. */
  arch?: "transformer" | "attention";
  /** Residual width. Default 32 (teacher: the input dim). */
  width?: number;
  /** Attention heads. Default 2 (attention arch: 1). */
  heads?: number;
  /** Transformer blocks. Default 2. */
  layers?: number;
  /** QK-norm. Default false. */
  qkNorm: boolean;
  /** Causal masking. Default: the task's own setting. */
  causal?: boolean;
  /** Expert non-linearity of the attention arch. Default: the teacher's. */
  expert?: ExpertFn;
  /** Optimisation steps. Default 1000. */
  steps: number;
  /** Sequences per step. Default 32 (capped at n). Ignored when `fullBatch` is set. */
  batchSize: number;
  /** Every step uses the whole training set (batch = n, index order, uploaded once). Default false. */
  fullBatch: boolean;
  /** Peak learning rate. Default 3e-3 for the transformer, 1e-2 for the attention arch. */
  lr?: number;
  /** Linear warmup steps. Default 5% of the steps. */
  warmup?: number;
  /** The cosine decays to `lr·minLrRatio`. Default 0.1. */
  minLrRatio: number;
  /** AdamW decoupled weight decay on matrices. Default 0.01. */
  weightDecay: number;
  /** AdamW's first-moment decay. Default 0.9. */
  beta1: number;
  /** AdamW's second-moment decay. Default 0.999. */
  beta2: number;
  /** AdamW's denominator epsilon. Default 1e-8. */
  eps: number;
  /** Clip the global gradient norm to this; 0 turns clipping off. Default 1. */
  clip: number;
  /** Evaluate on the test set every this many steps (and at the end). Default 100. */
  evalEvery: number;
  /** Stop after this many evaluations without improvement; 0 = never. Default 0. */
  patience: number;
  /** Stop once the test metric reaches this value. Default: none. */
  target?: number;
  /**
   * Steps per window of the convergence criterion (see the module doc): the
   * mean loss of the last window is compared with the window before, and the
   * gradient norm must stay under `gradTol` for the last window. Default 100.
   */
  plateauWindow: number;
  /** Stop (converged) when the relative change of the window-mean training loss is ≤ this; 0 = off. Default 0. */
  plateauTol: number;
  /** Stop (converged) when the gradient norm stayed ≤ this over the last window; 0 = off. Default 0. */
  gradTol: number;
  /** Sequences per evaluation batch. Default 256 (capped at the test size). */
  evalBatchSize: number;
  /** Write a JSON-lines log here. */
  log?: string;
  /** Write checkpoints to this file (atomically) every `checkpointEvery` steps and at the end. */
  checkpoint?: string;
  /** Steps between checkpoints. Default: `evalEvery`. */
  checkpointEvery?: number;
  /** Continue from `checkpoint` if it exists. Default true when `checkpoint` is set. */
  resume: boolean;
  /** Progress line on stderr. Default true. */
  progress: boolean;
  /** Device to train on. Default: the shared device. */
  device?: GPUDevice;
}

/** One evaluation on the test set. */
export interface EvalRecord {
  /** Steps completed when it ran (0 = the untrained model). */
  step: number;
  /** Mean test loss (cross-entropy, or mean squared error per element). */
  loss: number;
  /** The task's metric on the test set. */
  metric: number;
  /** Teacher task only: parameter recovery (the Voronoi loss uses the teacher's expert type). */
  parameterErrors?: {
    gating: number;
    value: number;
    voronoi: number;
    voronoiParts?: { mass: number; single: number; multi: number };
  };
}

/** What {@linkcode train} returns. */
export interface TrainResult {
  /** The task's name. */
  task: string;
  /** The attention activation trained with. */
  attention: Activation;
  /** Training sequences. */
  n: number;
  /** The run's seed. */
  seed: number;
  /** The task's metric, e.g. "accuracy". */
  metricName: string;
  /** Whether a larger metric is better. */
  higherIsBetter: boolean;
  /** The metric of a model that learned nothing. */
  chance: number;
  /** The resolved model config. */
  model: ModelConfig;
  /** Trainable scalars. */
  parameterCount: number;
  /** Steps taken: the step the run stopped at (≤ the configured steps, the cap, when stopped early). */
  steps: number;
  /** Sequences per step actually used (n with `fullBatch`). */
  batchSize: number;
  /**
   * Why training stopped: the step cap, no improvement for `patience`
   * evaluations, `target` reached, or the convergence criterion (`plateauTol`
   * / `gradTol`) met.
   */
  stopReason: "steps" | "patience" | "target" | "converged";
  /**
   * Whether the convergence criterion held when the run ended. False when no
   * criterion is on, and for a run stopped by the step cap (or by patience or
   * target) before the criterion held.
   */
  converged: boolean;
  /**
   * The loss criterion's statistic at the end: |L̄₁ − L̄₂| / L̄₁ over the last
   * two windows of `plateauWindow` steps; null with fewer than 2 windows of steps.
   */
  relativeChange: number | null;
  /** Global gradient norm (before clipping) of the last step; NaN if no step ran. */
  finalGradNorm: number;
  /** Training loss of every step. */
  losses: number[];
  /** Global gradient norm of every step (before clipping). */
  gradNorms: number[];
  /** Every evaluation, the untrained model's (step 0) first. */
  evals: EvalRecord[];
  /** The last evaluation. */
  final: EvalRecord;
  /** The best evaluation by the metric. */
  best: EvalRecord;
  /** First step whose evaluation reached `target`, if one did. */
  stepsToTarget?: number;
  /** Training tokens per second (sequences × positions), excluding evaluation. */
  tokensPerSecond: number;
  /** Wall-clock seconds of the whole run (this process). */
  seconds: number;
  /** Step the run resumed from, when it did. */
  resumedFrom?: number;
  /** The WebGPU adapter that trained it. */
  adapter: string;
}

const DEFAULTS = {
  n: 2000,
  seed: 1,
  attention: "softmax" as Activation,
  taskOptions: {},
  qkNorm: false,
  steps: 1000,
  batchSize: 32,
  minLrRatio: 0.1,
  weightDecay: 0.01,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  clip: 1,
  evalEvery: 100,
  patience: 0,
  fullBatch: false,
  plateauWindow: 100,
  plateauTol: 0,
  gradTol: 0,
  evalBatchSize: 256,
  progress: true,
};

/** A config with every default filled in (checked). */
export type ResolvedTrainConfig = TrainConfig & {
  lr: number;
  warmup: number;
  checkpointEvery: number;
};

/** Fills in defaults and rejects impossible values with a RangeError naming the option. */
export function resolveTrainConfig(
  config: Partial<TrainConfig> & { task: TaskName },
): ResolvedTrainConfig {
  const c = { ...DEFAULTS, ...stripUndefined(config) } as TrainConfig;
  if (!TASK_NAMES.includes(c.task)) {
    throw new RangeError(`unknown task ${JSON.stringify(c.task)}; tasks: ${TASK_NAMES.join(", ")}`);
  }
  if (c.attention !== "softmax" && c.attention !== "sigmoid") {
    throw new RangeError(
      `attention must be "softmax" or "sigmoid", got ${JSON.stringify(c.attention)}`,
    );
  }
  const int = (name: keyof TrainConfig, min: number) => {
    const v = c[name];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      throw new RangeError(`${name} must be an integer ≥ ${min}, got ${String(v)}`);
    }
  };
  const num = (name: keyof TrainConfig, ok: (v: number) => boolean, range: string) => {
    const v = c[name];
    if (typeof v !== "number" || !ok(v)) {
      throw new RangeError(`${name} must be ${range}, got ${String(v)}`);
    }
  };
  int("n", 1);
  int("steps", 1);
  int("batchSize", 1);
  int("evalEvery", 1);
  int("patience", 0);
  int("evalBatchSize", 1);
  if (!Number.isFinite(c.seed)) throw new RangeError(`seed must be a finite number, got ${c.seed}`);
  if (c.lr !== undefined) num("lr", (v) => v > 0 && Number.isFinite(v), "a positive number");
  num("minLrRatio", (v) => v >= 0 && v <= 1, "in [0, 1]");
  num("weightDecay", (v) => v >= 0 && Number.isFinite(v), "≥ 0");
  num("beta1", (v) => v >= 0 && v < 1, "in [0, 1)");
  num("beta2", (v) => v >= 0 && v < 1, "in [0, 1)");
  num("eps", (v) => v > 0, "positive");
  num("clip", (v) => v >= 0, "≥ 0 (0 turns clipping off)");
  if (typeof c.fullBatch !== "boolean") {
    throw new RangeError(`fullBatch must be true or false, got ${String(c.fullBatch)}`);
  }
  int("plateauWindow", 1);
  num("plateauTol", (v) => v >= 0 && Number.isFinite(v), "≥ 0 (0 turns it off)");
  num("gradTol", (v) => v >= 0 && Number.isFinite(v), "≥ 0 (0 turns it off)");
  const warmup = c.warmup ?? Math.round(c.steps * 0.05);
  if (!Number.isInteger(warmup) || warmup < 0 || warmup > c.steps) {
    throw new RangeError(`warmup must be an integer in [0, steps], got ${warmup}`);
  }
  const checkpointEvery = c.checkpointEvery ?? c.evalEvery;
  if (!Number.isInteger(checkpointEvery) || checkpointEvery < 1) {
    throw new RangeError(`checkpointEvery must be a positive integer, got ${checkpointEvery}`);
  }
  if (c.target !== undefined && !Number.isFinite(c.target)) {
    throw new RangeError(`target must be a finite number, got ${c.target}`);
  }
  const arch = c.arch ?? (c.task === "teacher" ? "attention" : "transformer");
  const lr = c.lr ?? (arch === "attention" ? 1e-2 : 3e-3);
  return { ...c, lr, warmup, checkpointEvery, resume: config.resume ?? true };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Learning rate of step t (0-based): linear warmup, then cosine from lr down to lr·minLrRatio. */
export function learningRate(
  t: number,
  c: { lr: number; warmup: number; steps: number; minLrRatio: number },
): number {
  if (t < c.warmup) return (c.lr * (t + 1)) / c.warmup;
  const span = Math.max(1, c.steps - c.warmup);
  const progress = Math.min(1, (t - c.warmup) / span);
  const floor = c.lr * c.minLrRatio;
  return floor + (c.lr - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** Training-set indices of step t: positions t·B … t·B+B of an endless run of seeded epochs. */
export function batchIndices(seed: number, step: number, batch: number, n: number): Int32Array {
  const out = new Int32Array(batch);
  let epoch = -1;
  let order: Int32Array = new Int32Array(0);
  for (let i = 0; i < batch; i++) {
    const position = step * batch + i;
    const e = Math.floor(position / n);
    if (e !== epoch) {
      epoch = e;
      order = new Rng(seed).fork(0xe90c + e).shuffle(Int32Array.from({ length: n }, (_, j) => j));
    }
    out[i] = order[position - e * n];
  }
  return out;
}

/** Sequences per step: the whole training set with `fullBatch`, else `batchSize` capped at n. */
export function effectiveBatchSize(c: Pick<TrainConfig, "batchSize" | "fullBatch">, n: number) {
  return c.fullBatch ? n : Math.min(c.batchSize, n);
}

/** The convergence statistics of a loss and gradient-norm history (see the module doc). */
export function convergenceState(
  losses: readonly number[],
  gradNorms: readonly number[],
  c: Pick<TrainConfig, "plateauWindow" | "plateauTol" | "gradTol">,
): { converged: boolean; relativeChange: number | null; windowMaxGradNorm: number | null } {
  const w = c.plateauWindow;
  let relativeChange: number | null = null;
  if (losses.length >= 2 * w) {
    let first = 0;
    let last = 0;
    for (let i = losses.length - 2 * w; i < losses.length - w; i++) first += losses[i];
    for (let i = losses.length - w; i < losses.length; i++) last += losses[i];
    first /= w;
    last /= w;
    const change = Math.abs(first - last);
    relativeChange = change === 0 ? 0 : change / Math.abs(first);
  }
  let windowMaxGradNorm: number | null = null;
  if (gradNorms.length >= w) {
    windowMaxGradNorm = 0;
    for (let i = gradNorms.length - w; i < gradNorms.length; i++) {
      windowMaxGradNorm = Math.max(windowMaxGradNorm, gradNorms[i]);
    }
  }
  const lossOk = c.plateauTol === 0 ||
    (relativeChange !== null && relativeChange <= c.plateauTol);
  const gradOk = c.gradTol === 0 ||
    (windowMaxGradNorm !== null && windowMaxGradNorm <= c.gradTol);
  const on = c.plateauTol > 0 || c.gradTol > 0;
  return { converged: on && lossOk && gradOk, relativeChange, windowMaxGradNorm };
}

/** Model config for a task and a training config. */
export function modelConfigFor(task: Task, c: TrainConfig): ModelConfig {
  const teacher = task.name === "teacher" ? (task as TeacherTask) : undefined;
  const arch = c.arch ?? (teacher ? "attention" : "transformer");
  return resolveModelConfig({
    arch,
    input: task.input,
    output: task.output,
    seqLen: task.seqLen,
    width: c.width,
    heads: c.heads,
    layers: c.layers,
    attention: c.attention,
    causal: c.causal ?? task.causal,
    qkNorm: c.qkNorm,
    expert: c.expert ?? teacher?.config.expert,
    headDim: arch === "attention" && task.output.kind === "regression"
      ? task.output.dim
      : undefined,
  });
}

/**
 * Checks a config, builds its task and model config, touching no GPU: every
 * impossible setting (unknown task, n over the data set, heads that do not
 * divide the width, …) throws a RangeError here.
 */
export async function planRun(
  config: Partial<TrainConfig> & { task: TaskName },
): Promise<{ config: ResolvedTrainConfig; task: Task; model: ModelConfig }> {
  const c = resolveTrainConfig(config);
  const task = await createTask(c.task, {
    n: c.n,
    seed: c.seed,
    testSize: c.testSize,
    ...c.taskOptions,
  });
  return { config: c, task, model: modelConfigFor(task, c) };
}

/** Trains a model on a task and returns its metrics. See {@linkcode TrainConfig} for the options. */
export async function train(
  config: Partial<TrainConfig> & { task: TaskName },
): Promise<TrainResult> {
  const started = performance.now();
  const { config: c, task, model: modelConfig } = await planRun(config);
  const device = c.device ?? await getDevice();
  const adapter = c.device ? "(caller's device)" : (await adapterReport()).description;
  const model = Model.create(device, modelConfig, c.seed);
  const batchSize = effectiveBatchSize(c, task.trainSize);
  const evalBatch = Math.min(c.evalBatchSize, task.testSize);
  const [graph, evalGraph] = [
    await model.graph(batchSize, { backward: true }),
    await model.graph(evalBatch, { backward: false }),
  ];
  const optimizer = await Optimizer.create(device, model, c);
  const log = c.log ? await JsonLog.open(c.log) : undefined;
  const losses: number[] = [];
  const gradNorms: number[] = [];
  const evals: EvalRecord[] = [];
  let startStep = 0;
  let resumedFrom: number | undefined;
  try {
    if (c.checkpoint && c.resume) {
      const saved = await loadCheckpoint(c.checkpoint);
      if (saved) {
        checkResumable(saved.meta.config, c);
        for (const p of model.params) {
          const t = saved.tensors.get(p.name);
          if (!t) throw new Error(`checkpoint ${c.checkpoint} has no parameter ${p.name}`);
          for (const [key, data] of [["value", t.value], ["m", t.m], ["v", t.v]] as const) {
            if (data.length !== p.value.size) {
              throw new Error(
                `checkpoint ${c.checkpoint}: ${p.name}.${key} has ${data.length} values, expected ${p.value.size}`,
              );
            }
            device.queue.writeBuffer(p[key].buffer, 0, data);
          }
        }
        startStep = resumedFrom = saved.meta.step;
        losses.push(...saved.meta.losses);
        gradNorms.push(...saved.meta.gradNorms);
        evals.push(...(saved.meta.evals as EvalRecord[]));
      }
    }
    if (log) {
      await log.rewind(startStep);
      await log.write(
        startStep === 0
          ? {
            type: "start",
            config: publicConfig(c),
            model: modelConfig,
            parameters: model.parameterCount,
            adapter,
          }
          : { type: "resume", step: startStep },
      );
    }

    const progress = new Progress(c.progress, c.steps, startStep);
    let trainSeconds = 0;
    let stopReason: TrainResult["stopReason"] = "steps";
    let stepsToTarget = evals.find((e) => reached(e.metric, c.target, task))?.step;
    let sinceBest = countSinceBest(evals, task);
    let step = startStep;
    const evaluateNow = async () => {
      const record = await evaluate(task, model, evalGraph, step);
      evals.push(record);
      await log?.write({ type: "eval", ...record });
      if (stepsToTarget === undefined && reached(record.metric, c.target, task)) {
        stepsToTarget = step;
      }
      sinceBest = countSinceBest(evals, task);
      progress.eval(record, task.metric.name);
      return record;
    };
    const flush = async () => {
      const fresh = await optimizer.readHistory();
      for (const [loss, sumSq] of fresh) {
        losses.push(loss);
        gradNorms.push(Math.sqrt(sumSq));
      }
      if (log) {
        for (let i = losses.length - fresh.length; i < losses.length; i++) {
          await log.write({
            type: "step",
            step: i + 1,
            loss: losses[i],
            gradNorm: gradNorms[i],
            lr: learningRate(i, c),
          });
        }
      }
      for (const [loss] of fresh) {
        if (!Number.isFinite(loss)) {
          throw new Error(
            `training diverged: the loss became ${loss} by step ${losses.length}; lower --lr or enable --clip`,
          );
        }
      }
    };
    const save = async () => {
      if (!c.checkpoint) return;
      await saveCheckpoint(c.checkpoint, {
        meta: { config: publicConfig(c), step, losses, gradNorms, evals },
        params: model.params,
        device,
      });
    };

    // The untrained model's test metric: the baseline every curve starts from.
    if (startStep === 0) await evaluateNow();
    const criterionOn = c.plateauTol > 0 || c.gradTol > 0;
    // A resumed run that had already converged takes no further step.
    if (criterionOn && convergenceState(losses, gradNorms, c).converged) stopReason = "converged";
    // Full batch: the whole training set in index order, uploaded once for every step.
    if (c.fullBatch && stopReason === "steps" && step < c.steps) {
      graph.upload(task.batch("train", Int32Array.from({ length: task.trainSize }, (_, i) => i)));
    }
    while (step < c.steps && stopReason === "steps") {
      const t0 = performance.now();
      if (!c.fullBatch) {
        const indices = batchIndices(c.seed, step, batchSize, task.trainSize);
        graph.upload(task.batch("train", indices));
      }
      optimizer.encodeStep(graph, step, learningRate(step, c));
      step++;
      const due = (k: number) => step % k === 0 || step === c.steps;
      if (optimizer.pending === HISTORY_STEPS || due(c.evalEvery) || due(c.checkpointEvery)) {
        await flush();
        if (criterionOn && convergenceState(losses, gradNorms, c).converged) {
          stopReason = "converged";
        }
      }
      trainSeconds += (performance.now() - t0) / 1000;
      progress.step(
        step,
        losses.at(-1),
        (step - startStep) * batchSize * task.seqLen / trainSeconds,
      );
      if (due(c.evalEvery)) {
        const record = await evaluateNow();
        if (stopReason !== "steps") {
          // converged: keep that reason
        } else if (c.target !== undefined && reached(record.metric, c.target, task)) {
          stopReason = "target";
        } else if (c.patience > 0 && sinceBest >= c.patience) stopReason = "patience";
      }
      if (due(c.checkpointEvery) || stopReason !== "steps") await save();
      if (stopReason !== "steps") break;
    }
    if (evals.length === 0 || evals.at(-1)!.step !== step) await evaluateNow();
    progress.done();
    const final = evals.at(-1)!;
    const best = bestEval(evals, task);
    const convergence = convergenceState(losses, gradNorms, c);
    const result: TrainResult = {
      task: task.name,
      attention: c.attention,
      n: task.trainSize,
      seed: c.seed,
      metricName: task.metric.name,
      higherIsBetter: task.metric.higherIsBetter,
      chance: task.metric.chance,
      model: modelConfig,
      parameterCount: model.parameterCount,
      steps: step,
      batchSize,
      stopReason,
      converged: convergence.converged,
      relativeChange: convergence.relativeChange,
      finalGradNorm: gradNorms.at(-1) ?? NaN,
      losses,
      gradNorms,
      evals,
      final,
      best,
      stepsToTarget,
      tokensPerSecond: trainSeconds > 0
        ? (step - startStep) * batchSize * task.seqLen / trainSeconds
        : 0,
      seconds: (performance.now() - started) / 1000,
      resumedFrom,
      adapter,
    };
    await log?.write({ type: "end", ...summaryOf(result) });
    return result;
  } finally {
    await log?.close();
    optimizer.destroy();
    graph.destroy();
    evalGraph.destroy();
    model.destroy();
  }
}

/** One training step ready to run again and again, for benchmarks. */
export interface TrainingStep {
  /** The device it runs on. */
  device: GPUDevice;
  /** Sequences × positions per step. */
  tokensPerStep: number;
  /** Trainable scalars of the model. */
  parameterCount: number;
  /** Uploads step t's batch, records forward, backward and AdamW, and submits (no wait). */
  run(t: number): void;
  /** Resolves when the GPU has finished every submitted step. */
  done(): Promise<void>;
  /** Frees the model, graph and optimiser. */
  destroy(): void;
}

/** Builds the model, graph and optimiser of `config` and returns its step, untimed. */
export async function prepareTrainingStep(
  config: Partial<TrainConfig> & { task: TaskName },
): Promise<TrainingStep> {
  const { config: c, task, model: modelConfig } = await planRun(config);
  const device = c.device ?? await getDevice();
  const model = Model.create(device, modelConfig, c.seed);
  const batchSize = effectiveBatchSize(c, task.trainSize);
  const graph = await model.graph(batchSize, { backward: true });
  const optimizer = await Optimizer.create(device, model, c);
  return {
    device,
    tokensPerStep: batchSize * task.seqLen,
    parameterCount: model.parameterCount,
    run(t: number) {
      if (optimizer.pending === HISTORY_STEPS) optimizer.pending = 0; // nobody reads the losses here
      graph.upload(task.batch("train", batchIndices(c.seed, t, batchSize, task.trainSize)));
      optimizer.encodeStep(graph, t, learningRate(t, c));
    },
    done: () => gpuDone(device),
    destroy() {
      optimizer.destroy();
      graph.destroy();
      model.destroy();
    },
  };
}

/** The config as stored in logs and checkpoints (no device). */
function publicConfig(c: TrainConfig): Record<string, unknown> {
  const { device: _device, ...rest } = c;
  return rest;
}

/** Options that must match for a checkpoint to be resumed (steps may grow; logging may change). */
const RESUME_KEYS: (keyof TrainConfig)[] = [
  "task",
  "n",
  "seed",
  "attention",
  "testSize",
  "taskOptions",
  "arch",
  "width",
  "heads",
  "layers",
  "qkNorm",
  "causal",
  "expert",
  "batchSize",
  "fullBatch",
  "lr",
  "warmup",
  "minLrRatio",
  "weightDecay",
  "beta1",
  "beta2",
  "eps",
  "clip",
  "evalEvery",
];

function checkResumable(saved: Record<string, unknown>, c: TrainConfig): void {
  const now = publicConfig(c);
  for (const key of RESUME_KEYS) {
    // A checkpoint from before an option existed holds that option's default.
    const was = key in saved ? saved[key] : (DEFAULTS as Record<string, unknown>)[key];
    if (JSON.stringify(was) !== JSON.stringify(now[key])) {
      throw new Error(
        `the checkpoint was written with ${key} = ${JSON.stringify(was)}, this run has ` +
          `${JSON.stringify(now[key])}; resume with the same settings or use a new checkpoint path`,
      );
    }
  }
}

function reached(metric: number, target: number | undefined, task: Task): boolean {
  if (target === undefined) return false;
  return task.metric.higherIsBetter ? metric >= target : metric <= target;
}

function better(a: number, b: number, task: Task): boolean {
  return task.metric.higherIsBetter ? a > b : a < b;
}

function bestEval(evals: EvalRecord[], task: Task): EvalRecord {
  return evals.reduce((best, e) => (better(e.metric, best.metric, task) ? e : best));
}

/** Evaluations since the best one. */
function countSinceBest(evals: EvalRecord[], task: Task): number {
  if (evals.length === 0) return 0;
  return evals.length - 1 - evals.indexOf(bestEval(evals, task));
}

function summaryOf(r: TrainResult): Record<string, unknown> {
  const { losses: _l, gradNorms: _g, evals: _e, ...rest } = r;
  return rest;
}

/** Mean test loss and metric over the whole test set, in evaluation batches. */
async function evaluate(task: Task, model: Model, graph: Graph, step: number): Promise<EvalRecord> {
  const device = model.device;
  const c = model.config;
  const B = graph.batch;
  const width = outputWidth(c.output);
  let total = 0;
  let count = 0;
  let lossSum = 0;
  let lossCount = 0;
  for (let start = 0; start < task.testSize; start += B) {
    const real = Math.min(B, task.testSize - start);
    // The last batch is padded with repeats of its last sequence; only `real` are scored.
    const indices = Array.from({ length: B }, (_, i) => start + Math.min(i, real - 1));
    const batch = task.batch("test", indices.slice(0, real));
    graph.upload(real === B ? batch : task.batch("test", indices));
    const enc = device.createCommandEncoder({ label: "sigmax.eval" });
    graph.encodeForward(enc);
    device.queue.submit([enc.finish()]);
    const rows = outputRows(c.output, real, c.seqLen);
    const outputs = await readFloat32(device, graph.output.buffer, rows * width);
    const score = task.score(batch, outputs);
    total += score.total;
    count += score.count;
    const l = lossOf(batch, outputs, c.output.kind, width);
    lossSum += l.sum;
    lossCount += l.count;
  }
  const record: EvalRecord = {
    step,
    loss: lossCount ? lossSum / lossCount : 0,
    metric: count ? total / count : 0,
  };
  if (task.name === "teacher" && c.arch === "attention") {
    record.parameterErrors = parameterErrors(
      (task as TeacherTask).heads,
      await studentHeads(model),
      {
        dim: c.width,
        outDim: c.headDim,
        expert: (task as TeacherTask).config.expert,
      },
    );
  }
  return record;
}

/** The test loss in f64 on the CPU: cross-entropy per labelled row, or squared error per element. */
function lossOf(
  batch: Batch,
  outputs: Float32Array,
  kind: string,
  width: number,
): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  if (kind === "regression") {
    const t = batch.targets!;
    for (let i = 0; i < t.length; i++) sum += (outputs[i] - t[i]) ** 2;
    return { sum, count: t.length };
  }
  const labels = batch.labels!;
  for (let r = 0; r < labels.length; r++) {
    if (labels[r] < 0) continue;
    let max = -Infinity;
    for (let j = 0; j < width; j++) max = Math.max(max, outputs[r * width + j]);
    let z = 0;
    for (let j = 0; j < width; j++) z += Math.exp(outputs[r * width + j] - max);
    sum += Math.log(z) + max - outputs[r * width + labels[r]];
    count++;
  }
  return { sum, count };
}

/** The student's heads as `[dim, headDim]` row-major matrices, read back from the GPU. */
async function studentHeads(
  model: Model,
): Promise<{ wq: Float32Array; wk: Float32Array; wv: Float32Array }[]> {
  const { width: d, heads: H, headDim: D } = model.config;
  const read = (name: string) =>
    readFloat32(model.device, model.param(name).value.buffer, d * H * D);
  const [wq, wk, wv] = await Promise.all([read("wq"), read("wk"), read("wv")]);
  const head = (w: Float32Array, h: number) => {
    const out = new Float32Array(d * D);
    for (let i = 0; i < d; i++) {
      out.set(w.subarray(i * H * D + h * D, i * H * D + h * D + D), i * D);
    }
    return out;
  };
  return Array.from(
    { length: H },
    (_, h) => ({ wq: head(wq, h), wk: head(wk, h), wv: head(wv, h) }),
  );
}

/**
 * Everything after the backward pass: squared gradient norms, their sum,
 * AdamW on every parameter, and the on-GPU loss history.
 */
export class Optimizer {
  /** Steps recorded since the last {@linkcode Optimizer.readHistory}. */
  pending = 0;

  private constructor(
    readonly device: GPUDevice,
    readonly model: Model,
    readonly config: TrainConfig,
    readonly norms: SumPlan[],
    readonly total: SumPlan,
    readonly adam: AdamWPlan[],
    readonly slots: GPUBuffer,
    readonly gradSumSq: GPUBuffer,
    readonly stepBuffer: GPUBuffer,
    readonly history: GPUBuffer,
  ) {}

  static async create(device: GPUDevice, model: Model, c: TrainConfig): Promise<Optimizer> {
    const params = model.params;
    const norms = await Promise.all(
      params.map((p, i) =>
        SumPlan.create(device, { length: p.value.size, square: true, outIndex: i })
      ),
    );
    const total = await SumPlan.create(device, { length: params.length });
    const adam = await Promise.all(
      params.map((p) =>
        AdamWPlan.create(device, { length: p.value.size, weightDecay: p.decay ? c.weightDecay : 0 })
      ),
    );
    const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const slots = device.createBuffer({
      label: "sigmax.grad_norm_slots",
      size: params.length * 4,
      usage: storage,
    });
    const gradSumSq = device.createBuffer({ label: "sigmax.grad_sumsq", size: 16, usage: storage });
    const history = device.createBuffer({
      label: "sigmax.history",
      size: HISTORY_STEPS * 8,
      usage: storage,
    });
    return new Optimizer(
      device,
      model,
      c,
      norms,
      total,
      adam,
      slots,
      gradSumSq,
      createAdamWStepBuffer(device),
      history,
    );
  }

  /** Records forward, loss, backward and the update of step t (0-based) and submits them. */
  encodeStep(graph: Graph, t: number, lr: number): void {
    const c = this.config;
    writeAdamWStep(this.device, this.stepBuffer, {
      lr,
      beta1: c.beta1,
      beta2: c.beta2,
      eps: c.eps,
      step: t + 1,
      maxNorm: c.clip > 0 ? c.clip : Infinity,
    });
    const enc = this.device.createCommandEncoder({ label: "sigmax.step" });
    graph.encodeForward(enc);
    graph.encodeLoss(enc);
    graph.encodeBackward(enc);
    const params = this.model.params;
    params.forEach((p, i) => this.norms[i].encode(enc, { x: p.grad.buffer, out: this.slots }));
    this.total.encode(enc, { x: this.slots, out: this.gradSumSq });
    params.forEach((p, i) =>
      this.adam[i].encode(enc, {
        param: p.value.buffer,
        grad: p.grad.buffer,
        m: p.m.buffer,
        v: p.v.buffer,
        step: this.stepBuffer,
        gradSumSq: this.gradSumSq,
      })
    );
    enc.copyBufferToBuffer(graph.loss.buffer, 0, this.history, this.pending * 8, 4);
    enc.copyBufferToBuffer(this.gradSumSq, 0, this.history, this.pending * 8 + 4, 4);
    this.device.queue.submit([enc.finish()]);
    this.pending++;
  }

  /** `[loss, Σ grad²]` of every step since the last read. */
  async readHistory(): Promise<[number, number][]> {
    if (this.pending === 0) return [];
    const data = await readFloat32(this.device, this.history, this.pending * 2);
    const out: [number, number][] = [];
    for (let i = 0; i < this.pending; i++) out.push([data[2 * i], data[2 * i + 1]]);
    this.pending = 0;
    return out;
  }

  destroy(): void {
    for (const p of [...this.norms, this.total, ...this.adam]) p.destroy();
    for (const b of [this.slots, this.gradSumSq, this.stepBuffer, this.history]) b.destroy();
  }
}

/** An append-only JSON-lines file; a resumed run first drops the lines after its checkpoint. */
class JsonLog {
  private constructor(readonly path: string, readonly file: Deno.FsFile) {}

  static async open(path: string): Promise<JsonLog> {
    const file = await Deno.open(path, { create: true, append: true });
    return new JsonLog(path, file);
  }

  /** Keeps only what a run resumed at `step` had logged up to it (nothing when step is 0). */
  async rewind(step: number): Promise<void> {
    const text = await Deno.readTextFile(this.path);
    const kept = step === 0 ? [] : text.split("\n").filter((line) => {
      if (!line.trim()) return false;
      try {
        const rec = JSON.parse(line) as { type?: string; step?: number };
        return rec.type === "start" || rec.type === "resume"
          ? true
          : (rec.step ?? 0) <= step && rec.type !== "end";
      } catch {
        return false; // a line cut short by a kill
      }
    });
    await Deno.writeTextFile(this.path, kept.map((l) => l + "\n").join(""));
  }

  async write(record: Record<string, unknown>): Promise<void> {
    await this.file.write(new TextEncoder().encode(JSON.stringify(record) + "\n"));
  }

  async close(): Promise<void> {
    await this.file.sync().catch(() => {});
    this.file.close();
  }
}

/** The progress line: step, loss, last metric, tokens/s, ETA. On a terminal it rewrites one line. */
class Progress {
  #lastPrint = 0;
  #metric = "";
  readonly #tty: boolean;
  readonly #started = performance.now();

  constructor(readonly enabled: boolean, readonly steps: number, readonly startStep: number) {
    this.#tty = Deno.stderr.isTerminal();
  }

  step(step: number, loss: number | undefined, tokensPerSecond: number): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.#lastPrint < (this.#tty ? 250 : 5000) && step !== this.steps) return;
    this.#lastPrint = now;
    const done = step - this.startStep;
    const perStep = (now - this.#started) / 1000 / Math.max(1, done);
    const eta = formatSeconds(perStep * (this.steps - step));
    const line = `step ${step}/${this.steps}  loss ${loss === undefined ? "…" : loss.toFixed(4)}` +
      `${this.#metric}  ${formatRate(tokensPerSecond)} tok/s  ETA ${eta}`;
    this.#print(line);
  }

  eval(record: EvalRecord, name: string): void {
    this.#metric = `  test ${name} ${record.metric.toFixed(4)} @${record.step}`;
  }

  done(): void {
    if (this.enabled && this.#tty) Deno.stderr.writeSync(new TextEncoder().encode("\n"));
  }

  #print(line: string): void {
    const text = this.#tty ? `\r${line}\x1b[K` : `${line}\n`;
    Deno.stderr.writeSync(new TextEncoder().encode(text));
  }
}

function formatRate(r: number): string {
  return r >= 1e6
    ? `${(r / 1e6).toFixed(2)}M`
    : r >= 1e3
    ? `${(r / 1e3).toFixed(1)}k`
    : r.toFixed(0);
}
