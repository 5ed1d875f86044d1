import assert from "node:assert/strict";
import { train, type TrainConfig, type TrainResult } from "../training/trainer.ts";

/**
 * Trains `config` and asserts that the final test accuracy covers at least
 * `fraction` of the distance from chance to perfect: a margin a model that
 * learned nothing cannot reach.
 */
export async function assertLearns(
  label: string,
  config: Partial<TrainConfig> & { task: TrainConfig["task"] },
  fraction = 0.5,
): Promise<TrainResult> {
  const result = await train({ progress: false, ...config });
  const { chance } = result;
  const bar = chance + fraction * (1 - chance);
  console.log(
    `  ${label.padEnd(34)} ${result.metricName} ${result.final.metric.toFixed(4)} ` +
      `(chance ${chance.toFixed(4)}, bar ${bar.toFixed(4)}) after ${result.steps} steps`,
  );
  assert.ok(result.higherIsBetter);
  assert.ok(
    result.final.metric >= bar,
    `${label}: test ${result.metricName} ${result.final.metric} is below ${bar} ` +
      `(chance ${chance} + ${fraction}·(1 − chance))`,
  );
  return result;
}
