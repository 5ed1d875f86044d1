/**
 * Checkpoint and resume: what a run saves, how it restores, and which
 * settings a resumed run may change.
 *
 * A checkpoint holds every parameter with its AdamW moments, the step, the
 * loss and gradient-norm history, the evaluations and the config. Run the
 * same command again and it continues from the checkpoint; the curve is then
 * the uninterrupted run's, bit for bit (the batch order is a function of
 * (seed, step), and nothing else is random).
 *
 * What may change on resume, and what the curve then is:
 *
 * - `steps`, the cap, in either direction (not below the checkpoint's step).
 *   The learning-rate schedule is the checkpoint's: its `warmup` and
 *   `scheduleSteps` (the span of the cosine, which defaults to the first run's
 *   `steps`) are adopted, so a longer run continues the first run's curve
 *   exactly and, past `scheduleSteps`, trains on at the floor
 *   `lr·minLrRatio`. It equals an uninterrupted run with the longer `steps`
 *   and the first run's `scheduleSteps` and `warmup`. (For a fresh cosine over
 *   the new length, start a new checkpoint.)
 * - The stopping rules (`patience`, `target`, `plateauTol`, `gradTol`,
 *   `plateauWindow`), which only decide where the curve ends.
 * - Output and pacing: `log`, `checkpointEvery`, `progress`, `device`.
 *
 * Every other setting ({@linkcode RESUME_KEYS}, and `warmup` or
 * `scheduleSteps` when given and different) changes the curve itself, so a
 * resume with another value is refused with a `RangeError` that names the
 * setting (exit code 2 from the CLI).
 *
 * @module
 */

import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import type { TrainConfig } from "./config.ts";
import type { EvalRecord } from "./evaluate.ts";
import type { Model } from "./model.ts";
import type { CheckpointMeta } from "./checkpoint.ts";

/** Settings that must match the checkpoint's for it to be resumed. */
export const RESUME_KEYS: readonly (keyof TrainConfig)[] = [
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
  "minLrRatio",
  "weightDecay",
  "beta1",
  "beta2",
  "eps",
  "clip",
  "evalEvery",
  "evalBatchSize",
];

/** The config as stored in logs and checkpoints (no device). */
export function publicConfig(c: TrainConfig): Record<string, unknown> {
  const { device: _device, ...rest } = c;
  return rest;
}

/**
 * The config a run resumed from a checkpoint with `meta` runs under: `c`
 * with the checkpoint's schedule (`warmup`, `scheduleSteps`) where `given`
 * (what the caller set) left them open. Throws a RangeError naming the first
 * setting that may not change, or a `steps` below the checkpoint's step.
 * `defaults` stand in for options a checkpoint predates.
 */
export function resumedConfig<C extends TrainConfig & { warmup: number; scheduleSteps: number }>(
  meta: CheckpointMeta,
  c: C,
  given: Partial<TrainConfig>,
  defaults: Partial<TrainConfig>,
): C {
  const saved = meta.config;
  const was = (key: keyof TrainConfig) =>
    key in saved ? saved[key] : (defaults as Record<string, unknown>)[key];
  const now = publicConfig(c);
  const refuse = (key: string, before: unknown, after: unknown) =>
    new RangeError(
      `cannot resume ${c.checkpoint}: it was written with ${key} = ${JSON.stringify(before)}, ` +
        `this run has ${JSON.stringify(after)}; ${key} may not change on resume (it changes the ` +
        `curve): use the checkpoint's value or a new checkpoint path`,
    );
  for (const key of RESUME_KEYS) {
    if (JSON.stringify(was(key)) !== JSON.stringify(now[key])) {
      throw refuse(key, was(key), now[key]);
    }
  }
  // The schedule: a checkpoint from before scheduleSteps existed spanned its own steps.
  const schedule = {
    scheduleSteps: (saved.scheduleSteps ?? saved.steps) as number,
    warmup: saved.warmup as number,
  };
  for (const key of ["scheduleSteps", "warmup"] as const) {
    if (given[key] !== undefined && given[key] !== schedule[key]) {
      throw refuse(key, schedule[key], given[key]);
    }
  }
  if (c.steps < meta.step) {
    throw new RangeError(
      `cannot resume ${c.checkpoint}: it is at step ${meta.step}, past steps = ${c.steps}; ` +
        `give steps ≥ ${meta.step} or a new checkpoint path`,
    );
  }
  return { ...c, ...schedule };
}

/** What a run continues from. */
export interface ResumeState {
  step: number;
  losses: number[];
  gradNorms: number[];
  evals: EvalRecord[];
}

/**
 * Loads the checkpoint at `path` into the model's parameters and AdamW
 * moments; undefined when there is none.
 */
export async function restore(path: string, model: Model): Promise<ResumeState | undefined> {
  const saved = await loadCheckpoint(path);
  if (!saved) return undefined;
  for (const p of model.params) {
    const t = saved.tensors.get(p.name);
    if (!t) throw new Error(`checkpoint ${path} has no parameter ${p.name}`);
    for (const [key, data] of [["value", t.value], ["m", t.m], ["v", t.v]] as const) {
      if (data.length !== p.value.size) {
        throw new Error(
          `checkpoint ${path}: ${p.name}.${key} has ${data.length} values, expected ${p.value.size}`,
        );
      }
      model.device.queue.writeBuffer(p[key].buffer, 0, data);
    }
  }
  const { step, losses, gradNorms, evals } = saved.meta;
  return { step, losses: [...losses], gradNorms: [...gradNorms], evals: evals as EvalRecord[] };
}

/** Writes the run's state to its checkpoint atomically. */
export async function save(
  path: string,
  c: TrainConfig,
  model: Model,
  state: ResumeState,
): Promise<void> {
  await saveCheckpoint(path, {
    meta: { config: publicConfig(c), ...state },
    params: model.params,
    device: model.device,
  });
}
