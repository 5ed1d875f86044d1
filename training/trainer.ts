/**
 * The trainer: AdamW with linear warmup and a cosine decay, global grad-norm
 * clipping, evaluation every k steps, early stopping, a plateau (convergence)
 * criterion, full-batch training, a JSON-lines log, resumable checkpoints,
 * and a progress line on stderr.
 *
 * This file is the loop ({@linkcode train}); the rest lives beside it: the
 * options and their validation in `config.ts`, the learning rate, batch
 * order and convergence statistics in `schedule.ts`, the optimiser's
 * dispatches in `optimizer.ts`, evaluation in `evaluate.ts`, the log and
 * progress line in `progress.ts`, and checkpoint/resume (with what may change
 * on resume) in `resume.ts`.
 *
 * A training step is one command buffer, its kernels in as few compute
 * passes as its buffer copies allow (`passes.ts`): upload the batch, forward,
 * loss, backward, every gradient copied into one flat buffer and its squared
 * norm (one reduction), AdamW on every parameter, and a copy of the loss and the squared norm into a history
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

import { adapterReport, getDevice, gpuDone } from "../kernels/device.ts";
import { planRun, type TrainConfig } from "./config.ts";
import { bestEval, countSinceBest, type EvalRecord, evaluate, reached } from "./evaluate.ts";
import { Model, type ModelConfig } from "./model.ts";
import type { Activation } from "../kernels/attention_options.ts";
import { HISTORY_STEPS, Optimizer } from "./optimizer.ts";
import { JsonLog, Progress } from "./progress.ts";
import { publicConfig, restore, type ResumeState, save } from "./resume.ts";
import { batchIndices, convergenceState, effectiveBatchSize, learningRate } from "./schedule.ts";
import type { TaskName } from "./tasks/index.ts";

export {
  DEFAULTS,
  modelConfigFor,
  planRun,
  type ResolvedTrainConfig,
  resolveTrainConfig,
  type TrainConfig,
} from "./config.ts";
export type { EvalRecord } from "./evaluate.ts";
export { HISTORY_STEPS, Optimizer } from "./optimizer.ts";
export { RESUME_KEYS } from "./resume.ts";
export { batchIndices, convergenceState, effectiveBatchSize, learningRate } from "./schedule.ts";

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
  const graph = await model.graph(batchSize, { backward: true });
  const evalGraph = await model.graph(Math.min(c.evalBatchSize, task.testSize), {
    backward: false,
  });
  const optimizer = await Optimizer.create(device, model, c);
  const log = c.log ? await JsonLog.open(c.log) : undefined;
  try {
    const resumed = c.checkpoint && c.resume ? await restore(c.checkpoint, model) : undefined;
    if (resumed) optimizer.load();
    const run: ResumeState = resumed ?? { step: 0, losses: [], gradNorms: [], evals: [] };
    const startStep = run.step;
    await log?.rewind(startStep);
    await log?.write(
      resumed ? { type: "resume", step: startStep } : {
        type: "start",
        config: publicConfig(c),
        model: modelConfig,
        parameters: model.parameterCount,
        adapter,
      },
    );
    const progress = new Progress(c.progress, c.steps, startStep);
    const criterionOn = c.plateauTol > 0 || c.gradTol > 0;
    const converged = () => criterionOn && convergenceState(run.losses, run.gradNorms, c).converged;
    const due = (k: number) => run.step % k === 0 || run.step === c.steps;

    /** Evaluates the model at the current step and returns why to stop, if it should. */
    const evaluateNow = async (): Promise<TrainResult["stopReason"] | undefined> => {
      const record = await evaluate(task, model, evalGraph, run.step);
      run.evals.push(record);
      await log?.write({ type: "eval", ...record });
      progress.eval(record, task.metric.name);
      if (reached(record.metric, c.target, task)) return "target";
      if (c.patience > 0 && countSinceBest(run.evals, task) >= c.patience) return "patience";
    };
    /** Reads the GPU's loss history into the run, logs it, and stops a diverged run. */
    const flush = async () => {
      for (const [loss, sumSq] of await optimizer.readHistory()) {
        run.losses.push(loss);
        run.gradNorms.push(Math.sqrt(sumSq));
        const i = run.losses.length - 1;
        await log?.write({
          type: "step",
          step: i + 1,
          loss,
          gradNorm: run.gradNorms[i],
          lr: learningRate(i, c),
        });
        if (!Number.isFinite(loss)) {
          throw new Error(
            `training diverged: the loss became ${loss} by step ${
              i + 1
            }; lower --lr or enable --clip`,
          );
        }
      }
    };

    // The untrained model's test metric is the baseline every curve starts from;
    // a resumed run that had already converged takes no further step.
    if (!resumed) await evaluateNow();
    let stopReason: TrainResult["stopReason"] = converged() ? "converged" : "steps";
    if (c.fullBatch) {
      graph.upload(task.batch("train", Int32Array.from({ length: task.trainSize }, (_, i) => i)));
    }
    let trainSeconds = 0;
    while (run.step < c.steps && stopReason === "steps") {
      const t0 = performance.now();
      if (!c.fullBatch) {
        graph.upload(
          task.batch("train", batchIndices(c.seed, run.step, batchSize, task.trainSize)),
        );
      }
      optimizer.encodeStep(graph, run.step, learningRate(run.step, c));
      run.step++;
      if (optimizer.pending === HISTORY_STEPS || due(c.evalEvery) || due(c.checkpointEvery)) {
        await flush();
        if (converged()) stopReason = "converged";
      }
      trainSeconds += (performance.now() - t0) / 1000;
      const tokensPerSecond = (run.step - startStep) * batchSize * task.seqLen / trainSeconds;
      progress.step(run.step, run.losses.at(-1), tokensPerSecond);
      if (due(c.evalEvery)) {
        const why = await evaluateNow();
        if (stopReason === "steps" && why) stopReason = why;
      }
      if (c.checkpoint && (due(c.checkpointEvery) || stopReason !== "steps")) {
        optimizer.store();
        await save(c.checkpoint, c, model, run);
      }
    }
    if (run.evals.at(-1)?.step !== run.step) await evaluateNow();
    progress.done();

    const convergence = convergenceState(run.losses, run.gradNorms, c);
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
      steps: run.step,
      batchSize,
      stopReason,
      converged: convergence.converged,
      relativeChange: convergence.relativeChange,
      finalGradNorm: run.gradNorms.at(-1) ?? NaN,
      losses: run.losses,
      gradNorms: run.gradNorms,
      evals: run.evals,
      final: run.evals.at(-1)!,
      best: bestEval(run.evals, task),
      stepsToTarget: run.evals.find((e) => reached(e.metric, c.target, task))?.step,
      tokensPerSecond: trainSeconds > 0
        ? (run.step - startStep) * batchSize * task.seqLen / trainSeconds
        : 0,
      seconds: (performance.now() - started) / 1000,
      resumedFrom: resumed ? startStep : undefined,
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
  /**
   * Uploads step t's batch, records forward, backward and AdamW, and submits
   * (no wait). `passes` wraps the step's command encoder (default: one
   * compute pass where the commands allow; see {@linkcode Optimizer.encodeStep}).
   */
  run(t: number, passes?: (encoder: GPUCommandEncoder) => GPUCommandEncoder): void;
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
    run(t: number, passes?: (encoder: GPUCommandEncoder) => GPUCommandEncoder) {
      if (optimizer.pending === HISTORY_STEPS) optimizer.pending = 0; // nobody reads the losses here
      graph.upload(task.batch("train", batchIndices(c.seed, t, batchSize, task.trainSize)));
      optimizer.encodeStep(graph, t, learningRate(t, c), passes);
    },
    done: () => gpuDone(device),
    destroy() {
      optimizer.destroy();
      graph.destroy();
      model.destroy();
    },
  };
}

function summaryOf(r: TrainResult): Record<string, unknown> {
  const { losses: _l, gradNorms: _g, evals: _e, ...rest } = r;
  return rest;
}
