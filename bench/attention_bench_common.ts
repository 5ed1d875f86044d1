/**
 * What the attention `deno bench` files share: one bench per kernel and
 * shape group on resident buffers (the first run, which compiles, kept out
 * of the timed region), every timed iteration recorded by its GPU time, and
 * a summary printed when the run ends with GFLOP/s and measured speed ratios
 * beside the operation-count model's; and the peers in the same groups, on
 * the wall clock: TF.js ({@linkcode benchTfjsGroups}), ONNX Runtime Web and
 * jax-js ({@linkcode benchPeerGroups}, through bench/peers/peers.ts, with
 * what each ran in the summary).
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
import { loadPeers, PEER_NAMES, type PeerCase, peerCase, type PeerName } from "./peers/peers.ts";

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
  return wallSummary(
    "tfjs",
    `${pass} against TF.js (wall clock, submit → result; TF.js Kᵀ transposed explicitly):`,
    pass,
    kernels,
    tfjs.byGroup,
  );
}

/** GFLOP/s and fused/peer per group, on the wall clock, for one peer's samples. */
function wallSummary(
  name: string,
  heading: string,
  pass: AttentionPass,
  kernels: Map<ShapeGroup, Map<ModelledKernel, Samples>>,
  byGroup: Map<ShapeGroup, TfjsSamples>,
): string[] {
  const lines = [
    heading,
    `${"group".padEnd(36)}  ${`${name} softmax`.padStart(17)}  ${
      `${name} sigmoid`.padStart(17)
    }  ` +
    `${`fused/${name} softmax`.padStart(18)}  ${`fused/${name} sigmoid`.padStart(18)}`,
  ];
  const wall = (s: Samples) => summarize(s.wallMs.slice(1)).msMedian;
  for (const [g, byActivation] of byGroup) {
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

/** The peers' benches: per peer, its samples by group and activation, and what it ran. */
export interface PeerBenches {
  byPeer: Map<PeerName, Map<ShapeGroup, TfjsSamples>>;
  /** Peer → what it ran in each bench, e.g. ORT's kernel (one line per distinct description). */
  ran: Map<PeerName, Set<string>>;
  /** Peer → why it did not run (it failed to load, or has no such pass). */
  skipped: Map<PeerName, string>;
}

/**
 * Registers ONNX Runtime Web (forward only: it has no backward) and jax-js
 * softmax and sigmoid attention in each group, through the cases of
 * bench/peers/peers.ts (each on its own device, inputs resident there),
 * timed on the wall clock from the call to the device's work done.
 */
export async function benchPeerGroups(
  pass: AttentionPass,
  groups: ShapeGroup[],
): Promise<PeerBenches> {
  const peers = await loadPeers(PEER_NAMES);
  const out: PeerBenches = { byPeer: new Map(), ran: new Map(), skipped: new Map(peers.skipped) };
  // deno bench runs the benches one after another, so the case of the bench before is done with
  // when the next one builds its own: free it then (ORT sessions and jax-js arrays are large).
  let live: PeerCase | undefined;
  for (const peer of PEER_NAMES) {
    if (out.skipped.has(peer)) continue;
    if (peer === "ort" && pass === "backward") {
      out.skipped.set(peer, "ONNX Runtime Web's attention operators have no backward");
      continue;
    }
    const byGroup = new Map<ShapeGroup, TfjsSamples>();
    const ran = new Set<string>();
    for (const g of groups) {
      const byActivation: TfjsSamples = new Map();
      for (const activation of ["softmax", "sigmoid"] as const) {
        const samples: Samples = { ms: [], wallMs: [], flops: 0 };
        const shape = { batch: 1, heads: 4, seqLen: g.seqLen, headDim: g.headDim };
        let c: PeerCase | undefined;
        Deno.bench({
          name: `${peer} ${activation}`,
          group: groupName(pass, g),
          n: g.seqLen >= 1024 ? 5 : 20,
          warmup: 1,
          async fn(b) {
            if (!c) {
              await live?.free();
              live = c = await peerCase(peers, peer, shape, { activation, causal: g.causal, pass });
              if (!c) throw new Error(`${peer} has no ${pass} case`);
              await c.run(); // the first call compiles; keep it out of the timed region
              samples.flops = c.flops;
              ran.add(c.ran);
            }
            b.start();
            const ms = await c.run();
            b.end();
            samples.ms.push(ms);
            samples.wallMs.push(ms);
          },
        });
        byActivation.set(activation, samples);
      }
      byGroup.set(g, byActivation);
    }
    out.byPeer.set(peer, byGroup);
    out.ran.set(peer, ran);
  }
  return out;
}

/** Summary lines for the peers: GFLOP/s and fused/peer per group (wall clock), and what ran. */
export function peerSummary(
  pass: AttentionPass,
  kernels: Map<ShapeGroup, Map<ModelledKernel, Samples>>,
  peers: PeerBenches,
): string[] {
  const lines: string[] = [];
  for (const [peer, why] of peers.skipped) lines.push(`${peer}: not run (${why})`);
  for (const [peer, byGroup] of peers.byPeer) {
    lines.push(
      ...wallSummary(
        peer,
        `${pass} against ${peer} (wall clock, call → its device's work done):`,
        pass,
        kernels,
        byGroup,
      ),
    );
    for (const ran of peers.ran.get(peer) ?? []) lines.push(`${peer} ran: ${ran}`);
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
