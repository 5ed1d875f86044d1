/**
 * The trainer: determinism, checkpoint and resume after a kill, the JSON-lines
 * log, config errors, and the schedule.
 */

import assert from "node:assert/strict";
import {
  batchIndices,
  convergenceState,
  effectiveBatchSize,
  learningRate,
  Optimizer,
  resolveTrainConfig,
  train,
} from "../training/trainer.ts";
import { loadCheckpoint } from "../training/checkpoint.ts";
import { formatSeconds } from "../training/format.ts";
import { adamWReference } from "../kernels/adamw.ts";
import { getDevice, readFloat32 } from "../kernels/device.ts";
import { Model, resolveModelConfig } from "../training/model.ts";
import { createTask } from "../training/tasks/index.ts";

const SMALL = {
  task: "mqar" as const,
  n: 256,
  seed: 3,
  testSize: 64,
  taskOptions: { vocab: 16, pairs: 2 },
  width: 16,
  heads: 2,
  layers: 1,
  steps: 24,
  batchSize: 16,
  evalEvery: 12,
  progress: false,
};

/** `deno run … cli.ts train` with the settings of {@linkcode SMALL}. */
const SMALL_CLI = [
  "run",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "cli.ts",
  "train",
  ...["--task", "mqar", "--n", "256", "--seed", "3", "--test-size", "64"],
  ...["--opt", "vocab=16", "--opt", "pairs=2", "--width", "16", "--heads", "2", "--layers", "1"],
  ...["--steps", "24", "--batch-size", "16", "--eval-every", "12"],
];

Deno.test("the learning rate warms up linearly, then decays along a cosine to lr·minLrRatio", () => {
  const c = { lr: 1, warmup: 10, steps: 110, minLrRatio: 0.1 };
  assert.equal(learningRate(0, c), 0.1);
  assert.equal(learningRate(9, c), 1);
  assert.ok(Math.abs(learningRate(60, c) - 0.55) < 1e-12); // half way: the mean of 1 and 0.1
  assert.ok(Math.abs(learningRate(110, c) - 0.1) < 1e-12);
  for (let t = 11; t < 110; t++) assert.ok(learningRate(t, c) <= learningRate(t - 1, c));
});

Deno.test("batch order is a pure function of (seed, step) and visits every example once per epoch", () => {
  const n = 10;
  const seen = new Set<number>();
  for (let step = 0; step < 5; step++) for (const i of batchIndices(4, step, 2, n)) seen.add(i);
  assert.equal(seen.size, n); // steps 0..4 with batch 2 = exactly the first epoch
  assert.deepEqual(batchIndices(4, 7, 3, n), batchIndices(4, 7, 3, n));
  assert.notDeepEqual(
    [...Array(5).keys()].flatMap((s) => [...batchIndices(4, s, 2, n)]),
    [...Array(5).keys()].flatMap((s) => [...batchIndices(5, s, 2, n)]),
  );
});

Deno.test("bad training configs are rejected with the option's name", () => {
  assert.throws(() => resolveTrainConfig({ task: "nope" as "mqar" }), /unknown task "nope"/);
  assert.throws(() => resolveTrainConfig({ task: "mqar", n: 0 }), /n must be an integer ≥ 1/);
  assert.throws(() => resolveTrainConfig({ task: "mqar", lr: -1 }), /lr must be a positive number/);
  assert.throws(() => resolveTrainConfig({ task: "mqar", warmup: 5000 }), /warmup must be/);
  assert.throws(() => resolveTrainConfig({ task: "mqar", beta2: 1 }), /beta2 must be in \[0, 1\)/);
  assert.throws(() => resolveTrainConfig({ task: "mqar", plateauTol: -1 }), /plateauTol must be/);
  assert.throws(() => resolveTrainConfig({ task: "mqar", gradTol: NaN }), /gradTol must be/);
  assert.throws(() => resolveTrainConfig({ task: "mqar", plateauWindow: 0 }), /plateauWindow/);
  assert.throws(
    () => resolveTrainConfig({ task: "mqar", fullBatch: "yes" as unknown as boolean }),
    /fullBatch must be true or false/,
  );
  // Unpenalised least squares is expressible: no weight decay, no clipping.
  const ls = resolveTrainConfig({ task: "teacher", weightDecay: 0, clip: 0, fullBatch: true });
  assert.equal(ls.weightDecay, 0);
  assert.equal(ls.clip, 0);
  assert.equal(effectiveBatchSize(ls, 300), 300);
  assert.equal(effectiveBatchSize({ batchSize: 32, fullBatch: false }, 300), 32);
  assert.equal(effectiveBatchSize({ batchSize: 32, fullBatch: false }, 20), 20);
});

Deno.test("the convergence criterion: relative change of window means, gradient norm over the window", () => {
  const c = { plateauWindow: 3, plateauTol: 0.01, gradTol: 0 };
  // Fewer than 2 windows of steps: no statistic, not converged.
  assert.deepEqual(convergenceState([1, 1, 1, 1, 1], [1, 1, 1, 1, 1], c), {
    converged: false,
    relativeChange: null,
    windowMaxGradNorm: 1,
  });
  // Windows [2, 2, 2] then [1.99, 1.99, 1.99]: change 0.01/2 = 0.005 ≤ 0.01.
  const flat = convergenceState([9, 2, 2, 2, 1.99, 1.99, 1.99], [1, 1, 1, 1, 1, 1, 1], c);
  assert.ok(flat.converged);
  assert.ok(Math.abs(flat.relativeChange! - 0.005) < 1e-12, `${flat.relativeChange}`);
  // Still falling: 2 → 1.5 is a 25% change.
  const falling = convergenceState([2, 2, 2, 1.5, 1.5, 1.5], [1, 1, 1, 1, 1, 1], c);
  assert.ok(!falling.converged && Math.abs(falling.relativeChange! - 0.25) < 1e-12);
  // A rising loss counts by its absolute change too.
  assert.ok(!convergenceState([1, 1, 1, 2, 2, 2], [1, 1, 1, 1, 1, 1], c).converged);
  // Zero loss throughout: 0/0 counts as no change.
  assert.equal(convergenceState([0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], c).relativeChange, 0);
  // Gradient criterion: every step of the last window must be ≤ gradTol.
  const g = { plateauWindow: 3, plateauTol: 0, gradTol: 0.1 };
  assert.ok(convergenceState([5, 4, 3], [1, 0.05, 0.1], g).converged === false); // 1 > 0.1 in window
  assert.ok(convergenceState([5, 4, 3, 2], [1, 0.05, 0.1, 0.09], g).converged);
  // Both on: both must hold.
  const both = { plateauWindow: 3, plateauTol: 0.01, gradTol: 0.1 };
  assert.ok(!convergenceState([2, 2, 2, 2, 2, 2], [1, 1, 1, 1, 1, 1], both).converged);
  assert.ok(convergenceState([2, 2, 2, 2, 2, 2], [0, 0, 0, 0, 0, 0], both).converged);
  // No criterion on: never converged.
  const off = { plateauWindow: 3, plateauTol: 0, gradTol: 0 };
  assert.ok(!convergenceState([2, 2, 2, 2, 2, 2], [0, 0, 0, 0, 0, 0], off).converged);
});

/** Full-batch unpenalised least squares on a tiny teacher, constant learning rate. */
const PLATEAU = {
  task: "teacher" as const,
  n: 16,
  testSize: 16,
  taskOptions: { seqLen: 4, dim: 2 },
  fullBatch: true,
  weightDecay: 0,
  clip: 0,
  warmup: 0,
  minLrRatio: 1,
  plateauTol: 1e-2,
  plateauWindow: 20,
  evalEvery: 500,
  progress: false,
};

Deno.test("a run that plateaus stops converged; one stopped by the step cap is marked not converged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigmax-plateau-" });
  const checkpoint = `${dir}/run.ckpt`;
  const plateau = await train({ ...PLATEAU, steps: 3000, checkpoint });
  // Resuming a converged run takes no further step and reports the same stop.
  const again = await train({ ...PLATEAU, steps: 3000, checkpoint });
  await Deno.remove(dir, { recursive: true });
  assert.equal(again.resumedFrom, plateau.steps);
  assert.equal(again.steps, plateau.steps);
  assert.equal(again.stopReason, "converged");
  assert.deepEqual(again.losses, plateau.losses);
  assert.equal(plateau.stopReason, "converged");
  assert.equal(plateau.converged, true);
  assert.equal(plateau.batchSize, 16);
  assert.ok(plateau.steps < 3000 && plateau.steps >= 40, `stopped at ${plateau.steps}`);
  assert.equal(plateau.losses.length, plateau.steps);
  assert.ok(plateau.relativeChange !== null && plateau.relativeChange <= 1e-2);
  assert.equal(plateau.finalGradNorm, plateau.gradNorms.at(-1));
  // It stops at the first check where the criterion holds: checks come when the history is
  // read back, every 32 steps since the last read and at every evaluation (500 steps).
  const checks: number[] = [];
  for (let step = 1, pending = 0; step < plateau.steps; step++) {
    if (++pending === 32 || step % 500 === 0) {
      checks.push(step);
      pending = 0;
    }
  }
  const last = checks.at(-1)!;
  assert.ok(plateau.steps - last <= 32);
  const before = convergenceState(
    plateau.losses.slice(0, last),
    plateau.gradNorms.slice(0, last),
    { ...PLATEAU, gradTol: 0 },
  );
  assert.ok(!before.converged, `already converged at step ${last} (${before.relativeChange})`);
  assert.equal(plateau.final.step, plateau.steps);

  // The same run capped early: stopped by the cap, not converged, and (the schedule being
  // constant) the exact start of the same loss curve: full-batch training is deterministic.
  const capped = await train({ ...PLATEAU, steps: 48 });
  assert.equal(capped.stopReason, "steps");
  assert.equal(capped.converged, false);
  assert.equal(capped.steps, 48);
  assert.ok(capped.relativeChange !== null && capped.relativeChange > 1e-2);
  assert.deepEqual(capped.losses, plateau.losses.slice(0, 48));

  // Gradient criterion alone, with a threshold every norm meets: converged at the first check.
  const grad = await train({ ...PLATEAU, plateauTol: 0, gradTol: 1e6, steps: 3000 });
  assert.equal(grad.stopReason, "converged");
  assert.equal(grad.steps, 32);
  assert.deepEqual(grad.losses, plateau.losses.slice(0, 32));
});

Deno.test("training is deterministic: the same seed gives the same loss curve, another seed does not", async () => {
  const a = await train(SMALL);
  const b = await train(SMALL);
  const c = await train({ ...SMALL, seed: 4 });
  assert.equal(a.losses.length, SMALL.steps);
  assert.deepEqual(a.losses, b.losses);
  assert.deepEqual(a.evals, b.evals);
  assert.notDeepEqual(a.losses, c.losses);
  for (const loss of a.losses) assert.ok(Number.isFinite(loss) && loss > 0);
});

Deno.test("a run killed mid-way and resumed from its checkpoint continues the exact loss curve", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigmax-resume-" });
  try {
    const uninterrupted = await train({ ...SMALL, attention: "sigmoid" });
    const checkpoint = `${dir}/run.ckpt`;
    const log = `${dir}/run.jsonl`;
    // Kill a CLI run as soon as its first checkpoint (step 8) is on disk.
    const args = [
      ...SMALL_CLI,
      "--attention",
      "sigmoid",
      "--checkpoint",
      checkpoint,
      "--checkpoint-every",
      "8",
      "--log",
      log,
      "--quiet",
    ];
    const child = new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "piped" })
      .spawn();
    for (let i = 0; i < 1200 && !(await exists(checkpoint)); i++) await delay(50);
    child.kill("SIGKILL");
    await child.status;
    await child.stderr.cancel();
    const saved = await loadCheckpoint(checkpoint);
    assert.ok(saved, "the killed run wrote no checkpoint");
    assert.ok(saved.meta.step >= 8 && saved.meta.step < 24, `killed at step ${saved.meta.step}`);

    const resumed = await train({ ...SMALL, attention: "sigmoid", checkpoint, log });
    assert.equal(resumed.resumedFrom, saved.meta.step);
    assert.deepEqual(resumed.losses, uninterrupted.losses);
    assert.deepEqual(resumed.evals, uninterrupted.evals);

    // The log holds every step exactly once, and its losses are the run's.
    const records = (await Deno.readTextFile(log)).trim().split("\n").map((l) => JSON.parse(l));
    const steps = records.filter((r) => r.type === "step");
    assert.deepEqual(steps.map((r) => r.step), [...Array(24).keys()].map((i) => i + 1));
    assert.deepEqual(steps.map((r) => r.loss), uninterrupted.losses);
    assert.equal(records.at(-1).type, "end");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a resumed run may grow steps: it keeps the checkpoint's schedule and runs on at the floor", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigmax-resume-steps-" });
  try {
    const checkpoint = `${dir}/run.ckpt`;
    const first = await train({ ...SMALL, checkpoint }); // warmup: 5% of 24 steps = 1
    const longer = await train({ ...SMALL, steps: 36, checkpoint });
    assert.equal(longer.resumedFrom, 24);
    assert.deepEqual(longer.losses.slice(0, 24), first.losses);
    // The documented curve: an uninterrupted run with the first run's schedule.
    const uninterrupted = await train({ ...SMALL, steps: 36, scheduleSteps: 24, warmup: 1 });
    assert.deepEqual(longer.losses, uninterrupted.losses);
    assert.deepEqual(longer.evals, uninterrupted.evals);
    // A fresh cosine over 36 steps is another curve: the resumed run is not that one.
    const fresh = await train({ ...SMALL, steps: 36 });
    assert.notDeepEqual(longer.losses.slice(24), fresh.losses.slice(24));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resume refuses settings that change the curve, naming the setting, before any step", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigmax-resume-refuse-" });
  try {
    const checkpoint = `${dir}/run.ckpt`;
    await train({ ...SMALL, steps: 8, checkpoint });
    const refused = async (change: Record<string, unknown>, name: string) => {
      await assert.rejects(
        () => train({ ...SMALL, checkpoint, ...change }),
        (e: Error) => e instanceof RangeError && e.message.includes(`${name} = `),
        name,
      );
    };
    await refused({ lr: 1e-3 }, "lr");
    await refused({ batchSize: 8 }, "batchSize");
    await refused({ attention: "sigmoid" }, "attention");
    await refused({ warmup: 3 }, "warmup");
    await refused({ scheduleSteps: 48 }, "scheduleSteps");
    await assert.rejects(
      () => train({ ...SMALL, steps: 4, checkpoint }),
      /at step 8, past steps = 4/,
    );
    // The CLI exits with 2 and says which setting, with no stack trace.
    const cli = await new Deno.Command(Deno.execPath(), {
      args: [
        ...SMALL_CLI,
        "--checkpoint",
        checkpoint,
        "--lr",
        "0.001",
        "--quiet",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(cli.stderr);
    assert.equal(cli.code, 2, err);
    assert.match(err, /lr = 0\.003, this run has 0\.001; lr may not change on resume/);
    assert.doesNotMatch(err, /^\s+at /m); // no stack trace
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("a step's global gradient norm, clipping and AdamW (decay on matrices only) match a CPU computation", async () => {
  const device = await getDevice();
  const task = await createTask("sort", { n: 16, seed: 2, testSize: 8, seqLen: 5, vocab: 6 });
  const model = Model.create(
    device,
    resolveModelConfig({
      input: task.input,
      output: task.output,
      seqLen: task.seqLen,
      width: 8,
      heads: 2,
      layers: 1,
      attention: "sigmoid",
    }),
    5,
  );
  const graph = await model.graph(4, { backward: true });
  const config = resolveTrainConfig({
    task: "sort",
    beta1: 0.8,
    beta2: 0.9,
    eps: 1e-6,
    weightDecay: 0.5,
    clip: 0.05,
  });
  const optimizer = await Optimizer.create(device, model, config);
  try {
    graph.upload(task.batch("train", [0, 1, 2, 3]));
    const lr = 0.01;
    optimizer.encodeStep(graph, 0, lr);
    const [[loss, sumSq]] = await optimizer.readHistory();
    let cpuSumSq = 0;
    const grads = new Map<string, Float32Array>();
    for (const p of model.params) {
      const g = await readFloat32(device, p.grad.buffer, p.value.size);
      grads.set(p.name, g);
      for (const x of g) cpuSumSq += x * x;
    }
    assert.ok(loss > 0 && Number.isFinite(loss));
    assert.ok(Math.abs(sumSq - cpuSumSq) <= 1e-5 * cpuSumSq, `Σg² GPU ${sumSq} vs CPU ${cpuSumSq}`);
    assert.ok(Math.sqrt(cpuSumSq) > config.clip, "the test needs clipping to be active");
    const step = { lr, beta1: 0.8, beta2: 0.9, eps: 1e-6, step: 1, maxNorm: config.clip };
    for (const p of model.params) {
      const z = new Float32Array(p.value.size);
      const ref = adamWReference(p.init, grads.get(p.name)!, z, z, step, p.decay ? 0.5 : 0, sumSq);
      const got = await readFloat32(device, p.value.buffer, p.value.size);
      for (let i = 0; i < got.length; i++) {
        const err = Math.abs(got[i] - ref.param[i]);
        assert.ok(
          err <= 1e-6 + 1e-5 * Math.abs(ref.param[i]),
          `${p.name}[${i}]: ${got[i]} vs ${ref.param[i]}`,
        );
      }
    }
    assert.ok(model.params.some((p) => p.decay) && model.params.some((p) => !p.decay));
  } finally {
    optimizer.destroy();
    graph.destroy();
    model.destroy();
  }
});

Deno.test("durations print as seconds, minutes or hours, never as 60 seconds", () => {
  assert.equal(formatSeconds(42.4), "42s");
  assert.equal(formatSeconds(119.6), "2m00s");
  assert.equal(formatSeconds(187), "3m07s");
  assert.equal(formatSeconds(7500), "2h05m");
  assert.equal(formatSeconds(NaN), "?");
});
