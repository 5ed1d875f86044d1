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
 * `--profile` instead times every kernel of one step of each root and case
 * on the GPU's clock, `rounds` steps per root, interleaved: each kernel
 * records into a compute pass of its own with timestamps at its beginning and
 * end (so the step is the per-kernel-pass step, not the one-pass one), and
 * the table sums the medians per pipeline and dispatch size, largest first.
 *
 * @module
 */

import { parseArgs } from "node:util";

const USAGE =
  `usage: deno run -A bench/training_compare.ts [--rounds N] [--cases LIST] [--profile] ROOT...
  ROOT           a sigmax checkout (its training/trainer.ts is imported); the first is the baseline
  --rounds N     interleaved rounds of 4 steps per root and case (default 7)
  --profile      time each kernel of a step by GPU timestamps (a pass per kernel), rounds steps each
  --cases LIST   comma-separated of mqar-softmax, mqar-sigmoid, mnist-softmax, mnist-sigmoid (default all)`;

const CASES = [
  { name: "mqar", task: "mqar", taskOptions: { pairs: 6 } },
  { name: "mnist", task: "mnist", taskOptions: {} },
];
const STEPS = 4;

interface Step {
  device: GPUDevice;
  tokensPerStep: number;
  run(t: number, passes?: (encoder: GPUCommandEncoder) => GPUCommandEncoder): void;
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

/** One kernel pass of a profiled step: the pass's label, its dispatch sizes, its GPU time. */
interface PassTime {
  key: string;
  ms: number;
}

/**
 * Runs step t with every kernel in a compute pass of its own that writes GPU
 * timestamps at its beginning and end, and returns each pass's time (ms),
 * keyed by its label and workgroup counts, in recording order.
 */
async function profileStep(step: Step, t: number): Promise<PassTime[]> {
  const device = step.device;
  const count = 4096; // the most queries a set may hold
  const querySet = device.createQuerySet({ type: "timestamp", count });
  const resolve = device.createBuffer({
    size: count * 8,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const read = device.createBuffer({
    size: count * 8,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const keys: string[] = [];
  const wrap = (encoder: GPUCommandEncoder): GPUCommandEncoder =>
    new Proxy(encoder, {
      get(target, prop) {
        if (prop === "beginComputePass") {
          return (d?: GPUComputePassDescriptor) => {
            const i = keys.length;
            if (2 * i + 1 >= count) throw new RangeError("profile: too many passes in one step");
            keys.push(d?.label ?? "(unlabelled)");
            const pass = target.beginComputePass({
              ...d,
              timestampWrites: {
                querySet,
                beginningOfPassWriteIndex: 2 * i,
                endOfPassWriteIndex: 2 * i + 1,
              },
            });
            const dispatch = pass.dispatchWorkgroups.bind(pass);
            pass.dispatchWorkgroups = (x: number, y = 1, z = 1) => {
              keys[i] += ` [${x},${y},${z}]`;
              dispatch(x, y, z);
            };
            return pass;
          };
        }
        if (prop === "finish") {
          return (d?: GPUCommandBufferDescriptor) => {
            if (keys.length) {
              target.resolveQuerySet(querySet, 0, 2 * keys.length, resolve, 0);
              target.copyBufferToBuffer(resolve, 0, read, 0, 16 * keys.length);
            }
            return target.finish(d);
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  step.run(t, wrap);
  await step.done();
  if (keys.length === 0) {
    for (const b of [resolve, read]) b.destroy();
    querySet.destroy();
    throw new Error(
      "profile: the step recorded no compute pass through the profiler: this root's training " +
        "step predates --profile (its run(t) takes no encoder wrapper; commit 2390c6b added it)",
    );
  }
  await read.mapAsync(GPUMapMode.READ, 0, 16 * keys.length);
  const stamps = new BigUint64Array(read.getMappedRange(0, 16 * keys.length).slice(0));
  read.unmap();
  for (const b of [resolve, read]) b.destroy();
  querySet.destroy();
  return keys.map((key, i) => ({ key, ms: Number(stamps[2 * i + 1] - stamps[2 * i]) / 1e6 }));
}

/** Prints the per-kernel table of `rounds` profiled steps: each kernel's median summed per key. */
function printProfile(profiles: PassTime[][]): void {
  const perKey = new Map<string, { calls: number; ms: number }>();
  profiles[0].forEach((p, i) => {
    const ms = median(profiles.map((q) => q[i].ms));
    const e = perKey.get(p.key) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += ms;
    perKey.set(p.key, e);
  });
  const total = [...perKey.values()].reduce((a, e) => a + e.ms, 0);
  console.log(`    ${total.toFixed(2)} ms in ${profiles[0].length} kernel passes (GPU clock)`);
  for (const [key, e] of [...perKey].sort((a, b) => b[1].ms - a[1].ms)) {
    console.log(
      `    ${(100 * e.ms / total).toFixed(1).padStart(5)}%  ${e.ms.toFixed(3).padStart(8)} ms  ` +
        `${String(e.calls).padStart(3)}×  ${key}`,
    );
  }
}

if (import.meta.main) {
  const { values, positionals: roots } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      rounds: { type: "string" },
      cases: { type: "string" },
      profile: { type: "boolean" },
      help: { type: "boolean" },
    },
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
      if (values.profile) {
        const profiles: PassTime[][][] = runs.map(() => []);
        for (let r = 0; r < rounds; r++) {
          for (const [i, x] of runs.entries()) profiles[i].push(await profileStep(x.step, x.t++));
        }
        console.log(`${c.name} ${attention}, per kernel:`);
        runs.forEach((x, i) => {
          console.log(`  ${roots[i]}`);
          printProfile(profiles[i]);
          x.step.destroy();
        });
        continue;
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
