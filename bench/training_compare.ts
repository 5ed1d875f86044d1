/**
 * Tokens/s of the training step of two or more checkouts of sigmax, measured
 * in one process and interleaved, so that a noisy machine's load hits them
 * alike: `deno run -A bench/training_compare.ts [--rounds N] [--cases LIST] ROOT...`
 * where each ROOT is a checkout (e.g. a `git worktree` of a base commit).
 * For each case (the README's mqar and MNIST configurations, both
 * activations) it prepares each root's step, runs 3 warm-up steps, then
 * `rounds` rounds in which each root (alternating the order) times 4 queued
 * steps to GPU done; it prints the median tokens/s per root and the ratio of
 * the last root to the first, with the compute passes, dispatches and bind
 * groups one step records (counted as bench/training_bench.ts counts them).
 *
 * @module
 */

import { parseArgs } from "node:util";

const USAGE = `usage: deno run -A bench/training_compare.ts [--rounds N] [--cases LIST] ROOT...
  ROOT           a sigmax checkout (its training/trainer.ts is imported); the first is the baseline
  --rounds N     interleaved rounds of 4 steps per root and case (default 7)
  --cases LIST   comma-separated of mqar-softmax, mqar-sigmoid, mnist-softmax, mnist-sigmoid (default all)`;

const CASES = [
  { name: "mqar", task: "mqar", taskOptions: { pairs: 6 } },
  { name: "mnist", task: "mnist", taskOptions: {} },
];
const STEPS = 4;

interface Step {
  device: GPUDevice;
  tokensPerStep: number;
  run(t: number): void;
  done(): Promise<void>;
  destroy(): void;
}

function count(device: GPUDevice, fn: () => void) {
  const counts = { passes: 0, dispatches: 0, bindGroups: 0 };
  const encoder = GPUCommandEncoder.prototype;
  const pass = GPUComputePassEncoder.prototype;
  const [begin, dispatch, bind] = [
    encoder.beginComputePass,
    pass.dispatchWorkgroups,
    device.createBindGroup,
  ];
  encoder.beginComputePass = function (this: GPUCommandEncoder, ...a) {
    counts.passes++;
    return begin.apply(this, a);
  };
  pass.dispatchWorkgroups = function (this: GPUComputePassEncoder, ...a) {
    counts.dispatches++;
    return dispatch.apply(this, a);
  };
  device.createBindGroup = function (this: GPUDevice, ...a) {
    counts.bindGroups++;
    return bind.apply(this, a);
  };
  try {
    fn();
  } finally {
    [encoder.beginComputePass, pass.dispatchWorkgroups, device.createBindGroup] = [
      begin,
      dispatch,
      bind,
    ];
  }
  return counts;
}

const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];

if (import.meta.main) {
  const { values, positionals: roots } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { rounds: { type: "string" }, cases: { type: "string" }, help: { type: "boolean" } },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const rounds = Number(values.rounds ?? 7);
  const wanted = values.cases?.split(",") ??
    CASES.flatMap((c) => [`${c.name}-softmax`, `${c.name}-sigmoid`]);
  const known = CASES.flatMap((c) => [`${c.name}-softmax`, `${c.name}-sigmoid`]);
  const bad = wanted.find((w) => !known.includes(w));
  if (!Number.isInteger(rounds) || rounds < 1 || roots.length < 1 || bad) {
    console.error(
      bad ? `error: unknown case ${bad}` : `error: need --rounds ≥ 1 and at least one ROOT`,
    );
    console.error(USAGE);
    Deno.exit(2);
  }
  const modules = await Promise.all(
    roots.map((r) =>
      import(new URL(`training/trainer.ts`, `file://${Deno.realPathSync(r)}/`).href)
    ),
  );
  for (const c of CASES) {
    for (const attention of ["softmax", "sigmoid"]) {
      if (!wanted.includes(`${c.name}-${attention}`)) continue;
      const runs: { step: Step; t: number; ms: number[]; counts: ReturnType<typeof count> }[] = [];
      for (const m of modules) {
        const step: Step = await m.prepareTrainingStep({
          task: c.task,
          taskOptions: c.taskOptions,
          attention,
          n: 1024,
          progress: false,
        });
        for (let t = 0; t < 2; t++) step.run(t); // compiles every pipeline
        const counts = count(step.device, () => step.run(2));
        await step.done();
        runs.push({ step, t: 3, ms: [], counts });
      }
      for (let r = 0; r < rounds; r++) {
        for (const x of r % 2 ? [...runs].reverse() : runs) {
          const t0 = performance.now();
          for (let k = 0; k < STEPS; k++) x.step.run(x.t++);
          await x.step.done();
          x.ms.push(performance.now() - t0);
        }
      }
      const tps = runs.map((x) => x.step.tokensPerStep * STEPS / median(x.ms) * 1000);
      console.log(`${c.name} ${attention}:`);
      runs.forEach((x, i) => {
        const { passes, dispatches, bindGroups } = x.counts;
        console.log(
          `  ${roots[i].padEnd(24)} ${
            tps[i].toFixed(0).padStart(7)
          } tokens/s (median of ${rounds})  ` +
            `${passes} passes ${dispatches} dispatches ${bindGroups} bind groups per step`,
        );
      });
      if (runs.length > 1) console.log(`  ratio last/first ${(tps.at(-1)! / tps[0]).toFixed(2)}×`);
      for (const x of runs) x.step.destroy();
    }
  }
}
