/** The token tasks learn at tiny size with either activation (metric well above chance). */

import { assertLearns } from "./_training_helpers.ts";

const BASE = { n: 512, testSize: 200, seed: 1, evalEvery: 1000 };

for (const attention of ["softmax", "sigmoid"] as const) {
  Deno.test(`count learns with ${attention} attention`, async () => {
    await assertLearns(`count ${attention}`, {
      ...BASE,
      task: "count",
      taskOptions: { seqLen: 8, vocab: 4 },
      attention,
      width: 16,
      batchSize: 16,
      steps: 250,
    });
  });

  Deno.test(`sort learns with ${attention} attention`, async () => {
    await assertLearns(`sort ${attention}`, {
      ...BASE,
      task: "sort",
      taskOptions: { seqLen: 6, vocab: 8 },
      attention,
      width: 16,
      batchSize: 16,
      steps: 150,
    });
  });

  Deno.test(`mqar learns with ${attention} attention`, async () => {
    await assertLearns(`mqar ${attention}`, {
      ...BASE,
      task: "mqar",
      taskOptions: { vocab: 16, pairs: 2 },
      attention,
      steps: 200,
    });
  });
}
