/**
 * Evaluation on the test set: the mean loss and the task's metric in
 * evaluation batches, plus whatever the task scores of the parameters
 * themselves (`Task.parameterErrors`); and the bookkeeping of the best
 * evaluation for early stopping.
 *
 * @module
 */

import { readFloat32 } from "../kernels/device.ts";
import { type Graph, type Model, outputRows, outputWidth } from "./model.ts";
import { onePass } from "./passes.ts";
import type { Batch, ParameterErrors, Task } from "./tasks/task.ts";

/** One evaluation on the test set. */
export interface EvalRecord {
  /** Steps completed when it ran (0 = the untrained model). */
  step: number;
  /** Mean test loss (cross-entropy, or mean squared error per element). */
  loss: number;
  /** The task's metric on the test set. */
  metric: number;
  /** Parameter recovery, from tasks that score it (the teacher, for an attention-arch student). */
  parameterErrors?: ParameterErrors;
}

/** Mean test loss and metric over the whole test set, in evaluation batches. */
export async function evaluate(
  task: Task,
  model: Model,
  graph: Graph,
  step: number,
): Promise<EvalRecord> {
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
    const enc = onePass(device.createCommandEncoder({ label: "sigmax.eval" }), "sigmax.eval");
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
  const errors = await task.parameterErrors?.({
    config: c,
    read: (name) =>
      readFloat32(device, model.param(name).value.buffer, model.param(name).value.size),
  });
  if (errors) record.parameterErrors = errors;
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

/** Whether `metric` reached `target` (none: never). */
export function reached(metric: number, target: number | undefined, task: Task): boolean {
  if (target === undefined) return false;
  return task.metric.higherIsBetter ? metric >= target : metric <= target;
}

/** Whether metric `a` is better than `b` for the task. */
export function better(a: number, b: number, task: Task): boolean {
  return task.metric.higherIsBetter ? a > b : a < b;
}

/** The best evaluation by the task's metric (the first of equals). */
export function bestEval(evals: EvalRecord[], task: Task): EvalRecord {
  return evals.reduce((best, e) => (better(e.metric, best.metric, task) ? e : best));
}

/** Evaluations since the best one. */
export function countSinceBest(evals: EvalRecord[], task: Task): number {
  if (evals.length === 0) return 0;
  return evals.length - 1 - evals.indexOf(bestEval(evals, task));
}
