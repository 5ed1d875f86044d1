/**
 * `deno bench bench/training_bench.ts`: one full training step (upload,
 * forward, loss, backward, grad norm, AdamW) of the default transformer on
 * two tasks, softmax attention (baseline) against sigmoid, and on mqar the
 * same model written in TF.js on its WebGPU backend (bench/peers/tfjs.ts; same
 * device, same shapes). Each timed iteration queues
 * {@linkcode STEPS_PER_ITERATION} steps back to back, as the trainer does, and
 * waits for the GPU to finish them. A summary with tokens/s, the
 * sigmoid/softmax ratio and sigmax/TF.js is printed when the run ends, with
 * the compute passes, dispatches and bind groups that one sigmax step records
 * (counted at the encoder level by {@linkcode countEncoding}).
 *
 * @module
 */

import { summarize } from "../kernels/device.ts";
import { prepareTrainingStep } from "../training/trainer.ts";
import { loadTfjs, prepareTfjsTrainingStep } from "./peers/tfjs.ts";
import type { TaskName } from "../training/tasks/index.ts";

interface Case {
  label: string;
  task: TaskName;
  taskOptions?: Record<string, unknown>;
  /** The same model in TF.js (token input, per-token classes), when it has one. */
  tfjs?: { seqLen: number; vocab: number; classes: number };
}

const CASES: Case[] = [
  {
    label: "mqar (S=18, C=32, 2 layers, batch 32)",
    task: "mqar",
    taskOptions: { pairs: 6 },
    tfjs: { seqLen: 18, vocab: 32, classes: 32 },
  },
  { label: "mnist (S=16 patches, C=32, 2 layers, batch 32)", task: "mnist" },
];

/** Steps queued per timed iteration (the trainer never waits between steps). */
const STEPS_PER_ITERATION = 4;

/** What one step records, counted at the encoder level. */
interface Counts {
  passes: number;
  dispatches: number;
  bindGroups: number;
}

/**
 * Runs `fn` with the WebGPU encoder methods wrapped so that every compute pass
 * begun, every dispatch and every bind group created is counted, and restores
 * them afterwards (recording is synchronous, so one call sees one step).
 */
function countEncoding(device: GPUDevice, fn: () => void): Counts {
  const counts: Counts = { passes: 0, dispatches: 0, bindGroups: 0 };
  const encoderProto = GPUCommandEncoder.prototype;
  const passProto = GPUComputePassEncoder.prototype;
  const begin = encoderProto.beginComputePass;
  const dispatch = passProto.dispatchWorkgroups;
  const dispatchIndirect = passProto.dispatchWorkgroupsIndirect;
  const createBindGroup = device.createBindGroup;
  encoderProto.beginComputePass = function (this: GPUCommandEncoder, ...a) {
    counts.passes++;
    return begin.apply(this, a);
  };
  passProto.dispatchWorkgroups = function (this: GPUComputePassEncoder, ...a) {
    counts.dispatches++;
    return dispatch.apply(this, a);
  };
  passProto.dispatchWorkgroupsIndirect = function (this: GPUComputePassEncoder, ...a) {
    counts.dispatches++;
    return dispatchIndirect.apply(this, a);
  };
  device.createBindGroup = function (this: GPUDevice, ...a) {
    counts.bindGroups++;
    return createBindGroup.apply(this, a);
  };
  try {
    fn();
  } finally {
    encoderProto.beginComputePass = begin;
    passProto.dispatchWorkgroups = dispatch;
    passProto.dispatchWorkgroupsIndirect = dispatchIndirect;
    device.createBindGroup = createBindGroup;
  }
  return counts;
}

const results: {
  group: string;
  impl: string;
  attention: string;
  ms: number[];
  tokens: number;
  counts?: Counts;
}[] = [];
const tfjs = await loadTfjs();

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
    for (let t = 0; t < 2; t++) step.run(t);
    const counts = countEncoding(step.device, () => step.run(2));
    await step.done();
    const tokens = step.tokensPerStep * STEPS_PER_ITERATION;
    const record = {
      group: c.label,
      impl: "sigmax",
      attention,
      ms: [] as number[],
      tokens,
      counts,
    };
    results.push(record);
    let t = 3;
    Deno.bench({
      name: `sigmax ${attention}`,
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
  if (!c.tfjs || "error" in tfjs) continue;
  for (const attention of ["softmax", "sigmoid"] as const) {
    const step = prepareTfjsTrainingStep(tfjs, {
      width: 32,
      layers: 2,
      heads: 2,
      batch: 32,
      ...c.tfjs,
      activation: attention,
      causal: true,
      kTranspose: "explicit",
      stepsPerCall: STEPS_PER_ITERATION,
    });
    await step.call(); // builds and compiles
    const record = {
      group: c.label,
      impl: "tfjs",
      attention,
      ms: [] as number[],
      tokens: step.tokensPerCall,
    };
    results.push(record);
    Deno.bench({
      name: `tfjs ${attention}`,
      group: c.label,
      async fn(b) {
        b.start();
        const t0 = performance.now();
        await step.call();
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
  if ("error" in tfjs) lines.push(`tfjs: not run (${tfjs.error})`);
  const median = (r: (typeof results)[number]) => summarize(r.ms).msMedian;
  for (const r of results) {
    if (r.ms.length === 0) continue;
    const ms = median(r);
    const peer = (impl: string, attention: string) =>
      results.find((s) => s.group === r.group && s.impl === impl && s.attention === attention);
    const softmax = peer(r.impl, "softmax");
    const notes: string[] = [];
    if (r.attention === "sigmoid" && softmax?.ms.length) {
      notes.push(`sigmoid/softmax ${(median(softmax) / ms).toFixed(2)}×`);
    }
    const theirs = peer("tfjs", r.attention);
    if (r.impl === "sigmax" && theirs?.ms.length) {
      const ratio = (r.tokens / ms) / (theirs.tokens / median(theirs));
      notes.push(`sigmax/tfjs ${ratio.toFixed(2)}×`);
    }
    lines.push(
      `  ${r.group.padEnd(48)} ${r.impl.padEnd(6)} ${r.attention.padEnd(8)} ` +
        `${(ms / STEPS_PER_ITERATION).toFixed(1).padStart(7)} ms/step ` +
        `${(r.tokens / ms * 1000).toFixed(0).padStart(7)} tokens/s  ` +
        (r.counts
          ? `${r.counts.passes} passes ${r.counts.dispatches} dispatches ` +
            `${r.counts.bindGroups} bind groups per step  `
          : "") +
        notes.join("  "),
    );
  }
  console.log(lines.join("\n"));
});
