/**
 * The training config: every option with its default, its validation, and
 * what a config resolves to (the task, the model config, and the schedule a
 * resumed run adopts from its checkpoint) before any GPU work.
 *
 * @module
 */

import type { Activation } from "../kernels/attention_options.ts";
import { loadCheckpoint } from "./checkpoint.ts";
import { type ExpertFn, type ModelConfig, resolveModelConfig } from "./model.ts";
import { resumedConfig } from "./resume.ts";
import { createTask, TASK_NAMES, type TaskName } from "./tasks/index.ts";
import type { Task } from "./tasks/task.ts";

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
  /** Linear warmup steps. Default 5% of `scheduleSteps`. */
  warmup?: number;
  /**
   * Steps the learning-rate schedule spans: warmup, then the cosine reaches
   * `lr·minLrRatio` at this step and stays there. Default `steps`. A resumed
   * run keeps its checkpoint's schedule (see `training/resume.ts`).
   */
  scheduleSteps?: number;
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

/** The default of every option that has a fixed one. */
export const DEFAULTS = {
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
  scheduleSteps: number;
  checkpointEvery: number;
};

/** Fills in defaults and rejects impossible values with a RangeError naming the option. */
export function resolveTrainConfig(
  config: Partial<TrainConfig> & { task: TaskName },
  task?: Pick<Task, "model">,
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
  const scheduleSteps = c.scheduleSteps ?? c.steps;
  if (!Number.isInteger(scheduleSteps) || scheduleSteps < 1) {
    throw new RangeError(`scheduleSteps must be an integer ≥ 1, got ${scheduleSteps}`);
  }
  const warmup = c.warmup ?? Math.round(scheduleSteps * 0.05);
  if (!Number.isInteger(warmup) || warmup < 0 || warmup > scheduleSteps) {
    throw new RangeError(`warmup must be an integer in [0, scheduleSteps], got ${warmup}`);
  }
  const checkpointEvery = c.checkpointEvery ?? c.evalEvery;
  if (!Number.isInteger(checkpointEvery) || checkpointEvery < 1) {
    throw new RangeError(`checkpointEvery must be a positive integer, got ${checkpointEvery}`);
  }
  if (c.target !== undefined && !Number.isFinite(c.target)) {
    throw new RangeError(`target must be a finite number, got ${c.target}`);
  }
  const arch = c.arch ?? task?.model?.arch ?? "transformer";
  const lr = c.lr ?? (arch === "attention" ? 1e-2 : 3e-3);
  return { ...c, lr, warmup, scheduleSteps, checkpointEvery, resume: config.resume ?? true };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Model config for a task and a training config. */
export function modelConfigFor(task: Task, c: TrainConfig): ModelConfig {
  const arch = c.arch ?? task.model?.arch ?? "transformer";
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
    expert: c.expert ?? task.model?.expert,
    headDim: arch === "attention" && task.output.kind === "regression"
      ? task.output.dim
      : undefined,
  });
}

/**
 * Checks a config, builds its task and model config, touching no GPU: every
 * impossible setting (unknown task, n over the data set, heads that do not
 * divide the width, …) throws a RangeError here, and so does a checkpoint to
 * resume that was written with settings this run may not change (its
 * schedule is adopted; see `training/resume.ts`).
 */
export async function planRun(
  config: Partial<TrainConfig> & { task: TaskName },
): Promise<{ config: ResolvedTrainConfig; task: Task; model: ModelConfig }> {
  const first = resolveTrainConfig(config);
  const task = await createTask(first.task, {
    n: first.n,
    seed: first.seed,
    testSize: first.testSize,
    ...first.taskOptions,
  });
  let c = resolveTrainConfig(config, task);
  if (c.checkpoint && c.resume) {
    const saved = await loadCheckpoint(c.checkpoint);
    if (saved) c = resumedConfig(saved.meta, c, config, DEFAULTS);
  }
  return { config: c, task, model: modelConfigFor(task, c) };
}
