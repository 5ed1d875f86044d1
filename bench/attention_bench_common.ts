/**
 * What the attention `deno bench` files share: one bench per kernel and
 * shape group on resident buffers (the first run, which compiles, kept out
 * of the timed region), every timed iteration recorded by its GPU time, and
 * a summary printed when the run ends with GFLOP/s and measured speed ratios
 * beside the operation-count model's.
 *
 * @module
 */

import {
  adapterReport,
  type AttentionOptions,
  type AttentionPass,
  type AttentionWorkload,
  attentionWorkload,
  getDevice,
} from "../mod.ts";
import type { FusedTiles } from "../kernels/attention_fused.ts";
import { isSoftwareDevice, summarize } from "../kernels/device.ts";
import {
  GPU_COSTS,
  KERNELS,
  type ModelledKernel,
  type OpCosts,
  predictedSpeedup,
  SOFTWARE_COSTS,
} from "./op_model.ts";

/** The adapter the benches run on, and the model's cost table for it. */
export interface BenchAdapter {
  device: GPUDevice;
  software: boolean;
  costs: OpCosts;
  description: string;
  shaderF16: boolean;
}

/** Opens the shared device and describes it. */
export async function benchAdapter(): Promise<BenchAdapter> {
  const device = await getDevice();
  const software = isSoftwareDevice(device);
  const { description, shaderF16 } = await adapterReport();
  return { device, software, costs: software ? SOFTWARE_COSTS : GPU_COSTS, description, shaderF16 };
}

/** One bench group: B=1, H=4 and these sizes, every kernel of {@linkcode KERNELS}. */
export interface ShapeGroup {
  seqLen: number;
  headDim: number;
  causal: boolean;
}

/** The group's name in deno bench's table, e.g. `B=1 H=4 S=1024 D=64 causal`. */
export function groupName(pass: AttentionPass, g: ShapeGroup): string {
  return `${pass} B=1 H=4 S=${g.seqLen} D=${g.headDim}${g.causal ? " causal" : ""}`;
}

/** GPU times (ms) of every iteration of one bench, and the FLOPs of one. */
export interface Samples {
  ms: number[];
  /** Wall-clock milliseconds of the same runs (submit → done), for comparisons with TF.js. */
  wallMs: number[];
  flops: number;
}

/**
 * Registers one `Deno.bench` timing `pass` for `options` at B=1, H=4 and the
 * group's sizes, and returns where its samples will go.
 */
export function benchAttention(
  group: string,
  name: string,
  baseline: boolean,
  pass: AttentionPass,
  g: ShapeGroup,
  options: AttentionOptions,
): Samples {
  const samples: Samples = { ms: [], wallMs: [], flops: 0 };
  const shape = { batch: 1, heads: 4, seqLen: g.seqLen, headDim: g.headDim };
  let work: AttentionWorkload | undefined; // built on first use, kept for every iteration
  Deno.bench({
    name,
    group,
    baseline,
    // Each iteration is a whole pass (tens to hundreds of ms on a software adapter).
    n: g.seqLen >= 1024 ? 5 : 20,
    warmup: 1,
    async fn(b) {
      if (!work) {
        work = await attentionWorkload(shape, { ...options, causal: g.causal }, pass);
        await work.run(); // the first run compiles; keep it out of the timed region
        samples.flops = work.flops;
      }
      b.start();
      const t0 = performance.now();
      const ms = await work.run();
      samples.wallMs.push(performance.now() - t0);
      b.end();
      samples.ms.push(ms);
    },
  });
  return samples;
}

/** TF.js benches of a group, by activation; empty when TF.js cannot run here. */
export type TfjsSamples = Map<"softmax" | "sigmoid", Samples>;

/**
 * Registers TF.js softmax and sigmoid attention (its WebGPU backend on
 * sigmax's device, Kᵀ transposed explicitly: its faster form here) in each
 * group, timed on the wall clock from the first op to a 4-byte readback.
 */
export async function benchTfjsGroups(
  pass: AttentionPass,
  groups: ShapeGroup[],
): Promise<{ byGroup: Map<ShapeGroup, TfjsSamples>; error?: string }> {
  const byGroup = new Map<ShapeGroup, TfjsSamples>();
  const { loadTfjs, timeTfjsAttention } = await import("./peers/tfjs.ts");
  const handle = await loadTfjs();
  if ("error" in handle) return { byGroup, error: handle.error };
  for (const g of groups) {
    const byActivation: TfjsSamples = new Map();
    for (const activation of ["softmax", "sigmoid"] as const) {
      const samples: Samples = { ms: [], wallMs: [], flops: 0 };
      const shape = { batch: 1, heads: 4, seqLen: g.seqLen, headDim: g.headDim };
      const options = { activation, causal: g.causal, pass, kTranspose: "explicit" as const };
      let warm = false;
      Deno.bench({
        name: `tfjs ${activation}`,
        group: groupName(pass, g),
        n: g.seqLen >= 1024 ? 5 : 20,
        warmup: 1,
        async fn(b) {
          if (!warm) {
            await timeTfjsAttention(handle, shape, { ...options, warmup: 1, reps: 1 });
            warm = true;
          }
          b.start();
          const t = await timeTfjsAttention(handle, shape, { ...options, warmup: 0, reps: 1 });
          b.end();
          samples.flops = t.flops;
          samples.ms.push(t.msMedian);
          samples.wallMs.push(t.msMedian);
        },
      });
      byActivation.set(activation, samples);
    }
    byGroup.set(g, byActivation);
  }
  return { byGroup };
}

/** Summary lines: TF.js's GFLOP/s and fused/TF.js speed per group, both on the wall clock. */
export function tfjsSummary(
  pass: AttentionPass,
  kernels: Map<ShapeGroup, Map<ModelledKernel, Samples>>,
  tfjs: { byGroup: Map<ShapeGroup, TfjsSamples>; error?: string },
): string[] {
  if (tfjs.error) return [`tfjs: not run (${tfjs.error})`];
  const lines = [
    `${pass} against TF.js (wall clock, submit → result; TF.js Kᵀ transposed explicitly):`,
    `${
      "group".padEnd(36)
    }  tfjs softmax       tfjs sigmoid     fused/tfjs softmax  fused/tfjs sigmoid`,
  ];
  const wall = (s: Samples) => summarize(s.wallMs.slice(1)).msMedian;
  for (const [g, byActivation] of tfjs.byGroup) {
    const fused = kernels.get(g);
    const soft = byActivation.get("softmax")!;
    const sig = byActivation.get("sigmoid")!;
    if (!fused || soft.wallMs.length < 2 || sig.wallMs.length < 2) continue;
    const gflops = (s: Samples) => `${(s.flops / wall(s) / 1e6).toFixed(2)} GFLOP/s`.padStart(17);
    const ratio = (k: ModelledKernel, s: Samples) => {
      const f = fused.get(k)!;
      return f.wallMs.length < 2 ? "—" : `${(wall(s) / wall(f)).toFixed(2)}×`;
    };
    lines.push(
      `${groupName(pass, g).padEnd(36)} ${gflops(soft)}  ${gflops(sig)}  ` +
        `${ratio("fused softmax", soft).padStart(18)}  ${ratio("fused sigmoid", sig).padStart(18)}`,
    );
  }
  return lines;
}

/** Registers the four kernels of {@linkcode KERNELS} for each group (fused softmax the baseline). */
export function benchKernelGroups(
  pass: AttentionPass,
  groups: ShapeGroup[],
): Map<ShapeGroup, Map<ModelledKernel, Samples>> {
  const all = new Map<ShapeGroup, Map<ModelledKernel, Samples>>();
  for (const g of groups) {
    const byKernel = new Map<ModelledKernel, Samples>();
    for (const { name, implementation, activation } of KERNELS) {
      byKernel.set(
        name,
        benchAttention(groupName(pass, g), name, name === "fused softmax", pass, g, {
          activation,
          implementation,
        }),
      );
    }
    all.set(g, byKernel);
  }
  return all;
}

/** Median of a bench's samples without deno bench's warmup iteration (the first). */
export function medianMs(samples: Samples): number {
  return summarize(samples.ms.slice(1)).msMedian;
}

/**
 * Summary lines for the kernel groups: GFLOP/s per kernel, then the measured
 * ratios `time(baseline) / time(kernel)` with the model's in brackets.
 */
export function kernelSummary(
  pass: AttentionPass,
  all: Map<ShapeGroup, Map<ModelledKernel, Samples>>,
  tilesFor: (headDim: number) => FusedTiles,
  costs: OpCosts,
): string[] {
  const lines = [
    `${pass} summary (median of each kernel's timed runs; ratio = time(baseline) / ` +
    `time(kernel), model in brackets):`,
    `${"group".padEnd(36)} ${
      KERNELS.map((k) => `${k.implementation} ${k.activation}`.padStart(17)).join("")
    }` +
    `   sig/soft fused   fused/unfused softmax   fused/unfused sigmoid`,
  ];
  for (const [g, byKernel] of all) {
    if ([...byKernel.values()].some((s) => s.ms.length < 2)) continue; // filtered out or failed
    const ms = (k: ModelledKernel) => medianMs(byKernel.get(k)!);
    const cell = (k: ModelledKernel) =>
      `${(byKernel.get(k)!.flops / ms(k) / 1e6).toFixed(2)} GFLOP/s`.padStart(17);
    const pair = (kernel: ModelledKernel, baseline: ModelledKernel) => {
      const model = predictedSpeedup(kernel, baseline, g.headDim, tilesFor(g.headDim), costs, pass);
      return `${(ms(baseline) / ms(kernel)).toFixed(2)}× (${model.toFixed(2)}×)`;
    };
    lines.push(
      `${groupName(pass, g).padEnd(36)} ${KERNELS.map((k) => cell(k.name)).join("")}` +
        `   ${pair("fused sigmoid", "fused softmax").padStart(14)}   ${
          pair("fused softmax", "unfused softmax").padStart(21)
        }   ${pair("fused sigmoid", "unfused sigmoid").padStart(21)}`,
    );
  }
  return lines;
}

/** The closing lines every summary prints: where the model costs and the times come from. */
export function summaryFooter(adapter: BenchAdapter): string[] {
  return [
    `model costs: ${
      adapter.software ? "software adapter" : "GPU (FP32 units)"
    } (bench/op_model.ts); adapter: ${adapter.description}`,
    "times from GPU timestamps where the adapter has timestamp-query and they read sane " +
    "values, else submit to done; deno bench's table above is wall clock, submit to done",
  ];
}
