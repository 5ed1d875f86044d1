/**
 * MNIST learns at tiny size with either activation, and the teacher task
 * recovers its teacher: the function error falls far below the untrained
 * student's, and further as n grows.
 */

import assert from "node:assert/strict";
import { train } from "../training/trainer.ts";
import { assertLearns } from "./_training_helpers.ts";

for (const attention of ["softmax", "sigmoid"] as const) {
  Deno.test(`mnist learns with ${attention} attention`, async () => {
    await assertLearns(`mnist ${attention}`, {
      task: "mnist",
      n: 512,
      testSize: 200,
      attention,
      width: 16,
      batchSize: 16,
      steps: 150,
      evalEvery: 1000,
    }, 0.4);
  });

  Deno.test(`teacher: a ${attention} student recovers a ${attention} teacher as n grows`, async () => {
    const errors: number[] = [];
    let untrained = 0;
    for (const n of [64, 1024]) {
      const r = await train({
        task: "teacher",
        n,
        testSize: 200,
        taskOptions: { noise: 1, teacherActivation: attention },
        attention,
        batchSize: 16,
        steps: 500,
        evalEvery: 1000,
        progress: false,
      });
      untrained = r.evals[0].metric; // the step-0 evaluation
      errors.push(r.final.metric);
      const pe = r.final.parameterErrors!;
      console.log(
        `  n ${String(n).padStart(4)}: function error ${r.final.metric.toExponential(3)} ` +
          `(untrained ${untrained.toExponential(3)}), gating ${pe.gating.toFixed(3)}, ` +
          `value ${pe.value.toFixed(3)}`,
      );
    }
    const [small, large] = errors;
    assert.ok(large < 0.05 * untrained, `n=1024 error ${large} is not ≪ untrained ${untrained}`);
    assert.ok(large < small / 4, `error does not fall with n: ${small} (n=64) → ${large} (n=1024)`);
  });
}
