/**
 * The throughput sweep: `deno task bench -- --preset quick|full [--out FILE]`.
 *
 * Times attention over seqLen × headDim × causal × activation × pass ×
 * implementation (fused, unfused, TF.js) × precision, finds the longest
 * sequence each implementation runs within a memory bound, measures our
 * matmul's best GFLOP/s (the roofline) and a training step, and writes one
 * JSON document ({@linkcode SweepResults}) for `deno task report`.
 *
 * Within a shape, the sigmax variants run interleaved (each round runs every
 * variant once) so that the machine's noise hits them alike; each record
 * keeps the GPU-timestamp median where the adapter has timestamps and the
 * wall-clock median (submit → done) beside it, which is what TF.js can be
 * compared on. A case that fails (a device limit, out of memory) is recorded
 * with its error and the sweep goes on. The results file is rewritten
 * (atomically) after every shape, so an interrupted sweep keeps what it
 * measured.
 *
 * @module
 */

import {
  adapterReport,
  type AttentionOptions,
  type AttentionShape,
  type AttentionWorkload,
  attentionWorkload,
  getDevice,
} from "../mod.ts";
import {
  createStorageBuffer,
  isSoftwareDevice,
  measureSubmit,
  pickClock,
  type SubmitTime,
  summarize,
} from "../kernels/device.ts";
import { MatmulPlan } from "../kernels/matmul.ts";
import { formatSeconds } from "../training/format.ts";
import { prepareTrainingStep } from "../training/trainer.ts";
import { fusedTiles } from "../kernels/attention_fused.ts";
import { fusedBackwardTiles } from "../kernels/attention_fused_backward.ts";
import { GPU_COSTS, predictedSpeedup, SOFTWARE_COSTS } from "./op_model.ts";
import type {
  Implementation,
  MaxSeqLenRecord,
  ModelPrediction,
  SweepFailure,
  SweepRecord,
  SweepResults,
  TrainingStepRecord,
} from "./results.ts";

/** What a preset sweeps. */
export interface SweepPreset {
  name: string;
  batch: number;
  heads: number;
  seqLens: number[];
  headDims: number[];
  causal: boolean[];
  precisions: ("f32" | "f16")[];
  passes: ("forward" | "backward")[];
  implementations: Implementation[];
  /** Untimed rounds, then timed rounds (at least 5). */
  warmup: number;
  reps: number;
  /** The longest-sequence probe: forward, B=1, these heads and head dim, doubling seqLen. */
  maxSeqLen: { heads: number; headDim: number; seqLens: number[]; boundBytes: number };
  /** Square matmul sizes for the roofline. */
  rooflineSizes: number[];
  /** Training-step comparison (the default transformer on mqar). */
  training: { steps: number } | false;
}

/** The presets: `quick` fits a 2-core CPU's software adapter in minutes; `full` is for a real GPU. */
export const PRESETS: Record<"quick" | "full", SweepPreset> = {
  quick: {
    name: "quick",
    batch: 1,
    heads: 4,
    seqLens: [256, 1024],
    headDims: [64],
    causal: [false, true],
    precisions: ["f32", "f16"],
    passes: ["forward", "backward"],
    implementations: ["fused", "unfused", "tfjs"],
    warmup: 1,
    reps: 5,
    maxSeqLen: {
      heads: 1,
      headDim: 32,
      seqLens: [1024, 2048, 4096, 8192, 16384],
      boundBytes: 2 ** 30,
    },
    rooflineSizes: [256, 512, 1024],
    training: { steps: 12 },
  },
  full: {
    name: "full",
    batch: 1,
    heads: 4,
    seqLens: [128, 256, 512, 1024, 2048, 4096],
    headDims: [32, 64, 128],
    causal: [false, true],
    precisions: ["f32", "f16"],
    passes: ["forward", "backward"],
    implementations: ["fused", "unfused", "tfjs"],
    warmup: 2,
    reps: 10,
    maxSeqLen: {
      heads: 1,
      headDim: 32,
      seqLens: [1024, 2048, 4096, 8192, 16384, 32768, 65536],
      boundBytes: 2 ** 30,
    },
    rooflineSizes: [256, 512, 1024, 2048],
    training: { steps: 20 },
  },
};

/** Options of {@linkcode runSweep}. */
export interface SweepOptions {
  /** Where the results go (rewritten after every shape). */
  out: string;
  /** Progress lines on stderr. Default true. */
  progress?: boolean;
}

/**
 * How the TF.js baseline writes Kᵀ: as an explicit transpose, the faster of
 * the two ways on the software adapter (TF.js 4.22's matmul with `transposeB`
 * ran Q·Kᵀ 2–3× slower), so sigmax is compared with TF.js at its best.
 */
const TFJS_K_TRANSPOSE = "explicit";

/** TF.js's timing functions, loaded on demand (TF.js is heavy and optional). */
type Tfjs = typeof import("./peers/tfjs.ts");

const ACTIVATIONS = ["softmax", "sigmoid"] as const;

/** Runs a preset and returns (and writes) its results. */
export async function runSweep(preset: SweepPreset, options: SweepOptions): Promise<SweepResults> {
  const started = performance.now();
  const device = await getDevice();
  const report = await adapterReport();
  const results: SweepResults = {
    version: 1,
    preset: preset.name,
    date: new Date().toISOString(),
    adapter: {
      description: report.description,
      software: isSoftwareDevice(device),
      shaderF16: report.shaderF16,
    },
    seconds: 0,
    records: [],
    failures: [],
    maxSeqLen: [],
    training: [],
  };
  results.model = modelPredictions(device, preset, results.adapter.software);
  const log = (line: string) => {
    if (options.progress !== false) console.error(line);
  };
  const save = async () => {
    results.seconds = (performance.now() - started) / 1000;
    await writeAtomic(options.out, JSON.stringify(results, null, 1));
  };

  let tfjs: { mod: Tfjs; handle: unknown } | undefined;
  if (preset.implementations.includes("tfjs")) {
    try {
      const mod: Tfjs = await import("./peers/tfjs.ts");
      const handle = await mod.loadTfjs();
      if ("error" in (handle as object)) {
        log(`tfjs: not available: ${(handle as { error: string }).error}`);
      } else tfjs = { mod, handle };
    } catch (err) {
      log(`tfjs: not available: ${(err as Error).message}`);
    }
  }

  // Shapes × passes: each a group of interleaved sigmax variants, then TF.js.
  const groups: { shape: AttentionShape; causal: boolean; pass: "forward" | "backward" }[] = [];
  for (const headDim of preset.headDims) {
    for (const seqLen of preset.seqLens) {
      for (const causal of preset.causal) {
        for (const pass of preset.passes) {
          groups.push({
            shape: { batch: preset.batch, heads: preset.heads, seqLen, headDim },
            causal,
            pass,
          });
        }
      }
    }
  }
  const eta = new Eta(groups.length);
  for (const [g, { shape, causal, pass }] of groups.entries()) {
    const label = `${pass} B=${shape.batch} H=${shape.heads} S=${shape.seqLen} D=${shape.headDim}` +
      (causal ? " causal" : "");
    const variants: { impl: Implementation; options: AttentionOptions }[] = [];
    for (const precision of preset.precisions) {
      for (const impl of ["fused", "unfused"] as const) {
        if (!preset.implementations.includes(impl)) continue;
        if (precision === "f16" && (impl === "unfused" || !results.adapter.shaderF16)) continue;
        for (const activation of ACTIVATIONS) {
          variants.push({ impl, options: { activation, causal, precision, implementation: impl } });
        }
      }
    }
    const timed = await timeVariants(shape, variants, pass, preset);
    for (const t of timed) {
      if ("error" in t) results.failures.push(t.error);
      else results.records.push(t.record);
    }
    if (tfjs) {
      for (const activation of ACTIVATIONS) {
        const base = {
          impl: "tfjs" as const,
          activation,
          pass,
          precision: "f32" as const,
          ...shape,
          causal,
        };
        try {
          const r = await tfjs.mod.timeTfjsAttention(tfjs.handle as never, shape, {
            activation,
            causal,
            pass,
            kTranspose: TFJS_K_TRANSPOSE,
            warmup: preset.warmup,
            reps: preset.reps,
          });
          const flops = attentionPassFlops(shape, causal, pass);
          results.records.push({
            ...base,
            msMedian: r.msMedian,
            msMin: r.msMin,
            msMax: r.msMax,
            msWallMedian: r.msMedian,
            gflops: flops / r.msMedian / 1e6,
            peakBytes: r.peakBytes,
            clock: "wall",
          });
        } catch (err) {
          results.failures.push({ ...base, error: (err as Error).message });
        }
      }
    }
    const line = results.records.filter((r) =>
      r.pass === pass && r.seqLen === shape.seqLen && r.headDim === shape.headDim &&
      r.causal === causal
    ).map((r) =>
      `${r.impl}${r.precision === "f16" ? "-f16" : ""} ${r.activation} ${r.gflops.toFixed(2)}`
    );
    log(`[${g + 1}/${groups.length}] ${label}: ${line.join(", ")} GFLOP/s  ETA ${eta.tick()}`);
    await save();
  }

  // The longest sequence each implementation completes within the memory bound.
  const probe = preset.maxSeqLen;
  for (const impl of preset.implementations) {
    if (impl === "tfjs" && !tfjs) continue;
    for (const activation of ACTIVATIONS) {
      const rec: MaxSeqLenRecord = {
        impl,
        activation,
        headDim: probe.headDim,
        maxSeqLen: 0,
        boundBytes: probe.boundBytes,
      };
      for (const seqLen of probe.seqLens) {
        const shape = { batch: 1, heads: probe.heads, seqLen, headDim: probe.headDim };
        const need = estimateBytes(impl, shape);
        if (need > probe.boundBytes) {
          rec.failedAt = seqLen;
          rec.reason = `needs about ${(need / 2 ** 30).toFixed(2)} GiB, over the ${
            (probe.boundBytes / 2 ** 30).toFixed(0)
          } GiB bound`;
          break;
        }
        try {
          if (impl === "tfjs") {
            await tfjs!.mod.timeTfjsAttention(tfjs!.handle as never, shape, {
              activation,
              causal: false,
              pass: "forward",
              kTranspose: TFJS_K_TRANSPOSE,
              warmup: 0,
              reps: 1,
            });
          } else {
            const work = await attentionWorkload(
              shape,
              { activation, implementation: impl },
              "forward",
            );
            try {
              await work.run();
            } finally {
              work.destroy();
            }
          }
          rec.maxSeqLen = seqLen;
        } catch (err) {
          rec.failedAt = seqLen;
          rec.reason = (err as Error).message.split("\n")[0];
          break;
        }
      }
      results.maxSeqLen.push(rec);
      log(
        `longest: ${impl} ${activation} D=${probe.headDim}: ${rec.maxSeqLen}` +
          (rec.failedAt ? ` (S=${rec.failedAt}: ${rec.reason})` : ""),
      );
      await save();
    }
  }

  // The roofline: our matmul's best GFLOP/s, and TF.js's at that size.
  let best = { gflops: 0, size: 0 };
  for (const size of preset.rooflineSizes) {
    const gflops = await timeMatmul(device, size, preset);
    log(`matmul ${size}³: ${gflops.toFixed(2)} GFLOP/s`);
    if (gflops > best.gflops) best = { gflops, size };
  }
  results.roofline = { ...best };
  if (tfjs) {
    try {
      const { gflops } = await tfjs.mod.timeTfjsMatmul(tfjs.handle as never, best.size);
      results.roofline.tfjsGflops = gflops;
      log(`tfjs matmul ${best.size}³: ${gflops.toFixed(2)} GFLOP/s`);
    } catch (err) {
      log(`tfjs matmul failed: ${(err as Error).message}`);
    }
  }
  await save();

  // A training step of the default transformer (mqar), sigmax and TF.js.
  if (preset.training) {
    for (const activation of ACTIVATIONS) {
      const rec = await timeTrainingStep(activation, preset.training.steps);
      results.training.push(rec);
      log(`training step sigmax ${activation}: ${rec.tokensPerSecond.toFixed(0)} tokens/s`);
      if (tfjs && "timeTfjsTrainingStep" in tfjs.mod) {
        try {
          const m = rec.model;
          const r = await tfjs.mod.timeTfjsTrainingStep(tfjs.handle as never, {
            ...m,
            vocab: 32,
            classes: 32,
            activation,
            causal: true,
            kTranspose: TFJS_K_TRANSPOSE,
            stepsPerCall: 4,
            warmup: 1,
            reps: 5,
          });
          results.training.push({
            impl: "tfjs",
            activation,
            model: m,
            msMedian: r.msPerStep,
            tokensPerSecond: r.tokensPerSecond,
          });
          log(`training step tfjs ${activation}: ${r.tokensPerSecond.toFixed(0)} tokens/s`);
        } catch (err) {
          log(`tfjs training step failed: ${(err as Error).message}`);
        }
      }
    }
  }
  await save();
  return results;
}

/** The operation-count model's ratios for every pass and head dim of the preset. */
function modelPredictions(
  device: GPUDevice,
  preset: SweepPreset,
  software: boolean,
): ModelPrediction[] {
  const storage = device.limits.maxComputeWorkgroupStorageSize;
  const costs = software ? SOFTWARE_COSTS : GPU_COSTS;
  const out: ModelPrediction[] = [];
  for (const pass of preset.passes) {
    for (const headDim of preset.headDims) {
      if (headDim > 256) continue;
      const tiles = pass === "forward"
        ? fusedTiles("softmax", headDim, storage, software)
        : fusedBackwardTiles("dq", "softmax", headDim, storage, software);
      const p = (
        a: Parameters<typeof predictedSpeedup>[0],
        b: Parameters<typeof predictedSpeedup>[0],
      ) => predictedSpeedup(a, b, headDim, tiles, costs, pass);
      out.push({
        pass,
        headDim,
        sigmoidOverSoftmax: p("fused sigmoid", "fused softmax"),
        fusedOverUnfusedSoftmax: p("fused softmax", "unfused softmax"),
        fusedOverUnfusedSigmoid: p("fused sigmoid", "unfused sigmoid"),
      });
    }
  }
  return out;
}

/** FLOPs of one pass, FlashAttention's convention (backward = 2.5 × forward). */
export function attentionPassFlops(
  shape: AttentionShape,
  causal: boolean,
  pass: "forward" | "backward",
): number {
  const forward = 4 * shape.batch * shape.heads * shape.seqLen * shape.seqLen * shape.headDim *
    (causal ? 0.5 : 1);
  return pass === "backward" ? 2.5 * forward : forward;
}

/** Bytes a forward pass needs: q, k, v, out (+ the S×S scores and weights for unfused and TF.js). */
export function estimateBytes(impl: Implementation, shape: AttentionShape): number {
  const { batch, heads, seqLen, headDim } = shape;
  const tensors = 4 * batch * heads * seqLen * headDim * 4;
  const scores = batch * heads * seqLen * seqLen * 4;
  return impl === "fused" ? tensors : tensors + (impl === "tfjs" ? 3 : 1) * scores;
}

/** Times sigmax variants of one shape and pass, interleaved; a variant that fails is reported. */
async function timeVariants(
  shape: AttentionShape,
  variants: { impl: Implementation; options: AttentionOptions }[],
  pass: "forward" | "backward",
  preset: SweepPreset,
): Promise<({ record: SweepRecord } | { error: SweepFailure })[]> {
  const base = (v: { impl: Implementation; options: AttentionOptions }) => ({
    impl: v.impl,
    activation: v.options.activation,
    pass,
    precision: v.options.precision ?? "f32",
    ...shape,
    causal: v.options.causal ?? false,
  });
  const out: ({ record: SweepRecord } | { error: SweepFailure })[] = [];
  const works: { v: (typeof variants)[number]; work: AttentionWorkload }[] = [];
  try {
    for (const v of variants) {
      try {
        works.push({ v, work: await attentionWorkload(shape, v.options, pass) });
      } catch (err) {
        out.push({ error: { ...base(v), error: (err as Error).message.split("\n")[0] } });
      }
    }
    const runs = works.map(() => [] as SubmitTime[]);
    for (let round = -preset.warmup; round < Math.max(5, preset.reps); round++) {
      for (const [i, { work }] of works.entries()) {
        const t = await measureSubmit(work.plan.device, work.encode);
        if (round >= 0) runs[i].push(t);
      }
    }
    const { clock, samples } = pickClock(runs);
    for (const [i, { v, work }] of works.entries()) {
      const stats = summarize(samples[i]);
      out.push({
        record: {
          ...base(v),
          ...stats,
          msWallMedian: summarize(runs[i].map((r) => r.wallMs)).msMedian,
          gflops: work.flops / stats.msMedian / 1e6,
          peakBytes: work.bytes,
          clock,
        },
      });
    }
  } finally {
    for (const { work } of works) work.destroy();
  }
  return out;
}

/** Best-of-median GFLOP/s of a square f32 matmul on resident buffers. */
async function timeMatmul(device: GPUDevice, size: number, preset: SweepPreset): Promise<number> {
  const plan = await MatmulPlan.create(device, { batch: 1, m: size, n: size, k: size });
  const bytes = size * size * 4;
  const [a, b, c] = ["a", "b", "c"].map((n) => createStorageBuffer(device, bytes, `roofline.${n}`));
  try {
    const encode = (enc: GPUCommandEncoder) => plan.encode(enc, a, b, c);
    const runs: SubmitTime[] = [];
    for (let round = -preset.warmup; round < Math.max(5, preset.reps); round++) {
      const t = await measureSubmit(device, encode);
      if (round >= 0) runs.push(t);
    }
    const { samples: [ms] } = pickClock([runs]);
    return plan.flops / summarize(ms).msMedian / 1e6;
  } finally {
    plan.destroy();
    for (const buf of [a, b, c]) buf.destroy();
  }
}

/** Tokens/s of the default transformer's training step on mqar (pairs 6: S = 18), 4 steps per wait. */
async function timeTrainingStep(
  activation: "softmax" | "sigmoid",
  steps: number,
): Promise<TrainingStepRecord> {
  const config = {
    task: "mqar" as const,
    taskOptions: { pairs: 6 },
    attention: activation,
    n: 1024,
  };
  const step = await prepareTrainingStep(config);
  try {
    for (let t = 0; t < 3; t++) step.run(t);
    await step.done();
    const ms: number[] = [];
    for (let t = 3; t < 3 + steps; t += 4) {
      const t0 = performance.now();
      for (let i = 0; i < 4; i++) step.run(t + i);
      await step.done();
      ms.push((performance.now() - t0) / 4);
    }
    const { msMedian } = summarize(ms);
    return {
      impl: "sigmax",
      activation,
      msMedian,
      tokensPerSecond: step.tokensPerStep / msMedian * 1000,
      model: { width: 32, layers: 2, heads: 2, seqLen: step.tokensPerStep / 32, batch: 32 },
    };
  } finally {
    step.destroy();
  }
}

/** An ETA from the mean time per finished item. */
class Eta {
  readonly #start = performance.now();
  #done = 0;
  constructor(readonly total: number) {}
  tick(): string {
    this.#done++;
    return formatSeconds(
      (performance.now() - this.#start) / 1000 / this.#done * (this.total - this.#done),
    );
  }
}

/** Writes `text` to `path` through a temporary file and a rename. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}
