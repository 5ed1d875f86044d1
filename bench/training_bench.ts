/**
 * `deno bench bench/training_bench.ts`: one full training step (upload,
 * forward, loss, backward, grad norm, AdamW) of the default transformer on
 * two tasks, softmax attention (baseline) against sigmoid. Each timed
 * iteration queues {@linkcode STEPS_PER_ITERATION} steps back to back, as the
 * trainer does, and waits for the GPU to finish them. A summary with tokens/s
 * and the sigmoid/softmax ratio is printed when the run ends.
 *
 * @module
 */

import { summarize } from "../kernels/device.ts";
import { prepareTrainingStep } from "../training/trainer.ts";
import type { TaskName } from "../training/tasks/index.ts";

interface Case {
  label: string;
  task: TaskName;
  taskOptions?: Record<string, unknown>;
}

const CASES: Case[] = [
  { label: "mqar (S=18, C=32, 2 layers, batch 32)", task: "mqar", taskOptions: { pairs: 6 } },
  { label: "mnist (S=16 patches, C=32, 2 layers, batch 32)", task: "mnist" },
];

/** Steps queued per timed iteration (the trainer never waits between steps). */
const STEPS_PER_ITERATION = 4;

const results: { group: string; attention: string; ms: number[]; tokens: number }[] = [];

for (const c of CASES) {
  for (const attention of ["softmax", "sigmoid"] as const) {
    const step = await prepareTrainingStep({
      task: c.task,
      taskOptions: c.taskOptions ?? {},
      attention,
      n: 1024,
      progress: false,
    });
    // The first steps compile every pipeline: keep them out of the timing.
    for (let t = 0; t < 3; t++) step.run(t);
    await step.done();
    const tokens = step.tokensPerStep * STEPS_PER_ITERATION;
    const record = { group: c.label, attention, ms: [] as number[], tokens };
    results.push(record);
    let t = 3;
    Deno.bench({
      name: `${STEPS_PER_ITERATION} train steps ${attention}`,
      group: c.label,
      baseline: attention === "softmax",
      async fn(b) {
        b.start();
        const t0 = performance.now();
        for (let i = 0; i < STEPS_PER_ITERATION; i++) step.run(t++);
        await step.done();
        record.ms.push(performance.now() - t0);
        b.end();
      },
    });
  }
}

globalThis.addEventListener("unload", () => {
  const lines = [
    "",
    `training, ${STEPS_PER_ITERATION} steps queued per iteration, wall clock to GPU done (medians):`,
  ];
  for (const r of results) {
    if (r.ms.length === 0) continue;
    const { msMedian } = summarize(r.ms);
    const softmax = results.find((s) => s.group === r.group && s.attention === "softmax")!;
    const ratio = r.attention === "sigmoid" && softmax.ms.length
      ? `  sigmoid/softmax throughput ${(summarize(softmax.ms).msMedian / msMedian).toFixed(2)}×`
      : "";
    lines.push(
      `  ${r.group.padEnd(48)} ${r.attention.padEnd(8)} ${msMedian.toFixed(1).padStart(7)} ms` +
        `  ${(r.tokens / msMedian * 1000).toFixed(0).padStart(7)} tokens/s${ratio}`,
    );
  }
  console.log(lines.join("\n"));
});
