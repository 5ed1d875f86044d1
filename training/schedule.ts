/**
 * What each step of a run is: its learning rate, its batch, and whether the
 * run has converged (the statistics of the module doc of `training/trainer.ts`).
 *
 * @module
 */

import type { TrainConfig } from "./config.ts";
import { Rng } from "./rng.ts";

/**
 * Learning rate of step t (0-based): linear warmup, then a cosine from lr down
 * to lr·minLrRatio at step `scheduleSteps` (default `steps`), the floor after it.
 */
export function learningRate(
  t: number,
  c: { lr: number; warmup: number; steps: number; scheduleSteps?: number; minLrRatio: number },
): number {
  if (t < c.warmup) return (c.lr * (t + 1)) / c.warmup;
  const span = Math.max(1, (c.scheduleSteps ?? c.steps) - c.warmup);
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
