/**
 * `deno bench` for the attention forward pass: per shape group, fused softmax
 * (the baseline) against fused sigmoid, unfused softmax and unfused sigmoid,
 * and the peers' softmax and sigmoid attention: TF.js on its WebGPU backend
 * (the same device), ONNX Runtime Web's WebGPU execution provider and jax-js
 * (each on a device of its own; bench/peers/peers.ts), all compared on the
 * wall clock, the only clock the peers have, and the summary names the
 * kernel ORT ran; f16 against
 * f32 storage where the adapter has `shader-f16`; and sigmax's
 * matmul at the unfused path's shapes as the roofline. deno bench's own
 * table times each iteration by wall clock. When the run ends a summary
 * gives each kernel's GFLOP/s (FlashAttention's FLOP count) from GPU
 * timestamps (where the adapter has them; deno bench's warmup iteration
 * left out) and, per group, the measured speed ratios beside those the
 * operation-count model (bench/op_model.ts) predicts.
 *
 *     deno task bench bench/attention_forward_bench.ts
 */

import { seededInputs } from "../mod.ts";
import { modelledTiles } from "./op_model.ts";
import { summarize, timeSubmit, uploadBuffer } from "../kernels/device.ts";
import { MatmulPlan, type MatmulShape } from "../kernels/matmul.ts";
import {
  benchAdapter,
  benchKernelGroups,
  benchPeerGroups,
  benchTfjsGroups,
  kernelSummary,
  peerSummary,
  type ShapeGroup,
  summaryFooter,
  tfjsSummary,
} from "./attention_bench_common.ts";
import { benchPrecision, precisionSummary } from "./attention_precision.ts";

const adapter = await benchAdapter();
const { device } = adapter;
const tiles = (headDim: number) => modelledTiles(device, "forward", headDim, adapter.software);

/** B=1, H=4; D=64 at S ∈ {256, 1024} causal off and on, and D ∈ {32, 128} at S=1024. */
const GROUPS: ShapeGroup[] = [
  { seqLen: 256, headDim: 64, causal: false },
  { seqLen: 256, headDim: 64, causal: true },
  { seqLen: 1024, headDim: 32, causal: false },
  { seqLen: 1024, headDim: 64, causal: false },
  { seqLen: 1024, headDim: 64, causal: true },
  { seqLen: 1024, headDim: 128, causal: false },
];
const kernels = benchKernelGroups("forward", GROUPS);
const tfjs = await benchTfjsGroups("forward", GROUPS);
const peers = await benchPeerGroups("forward", GROUPS);
const precision = adapter.shaderF16 ? benchPrecision("forward") : undefined;

/**
 * The roofline: sigmax's matmul at the unfused path's two shapes (batch 4),
 * on resident buffers, timed like the kernels above.
 */
const ROOFLINE: { name: string; shape: MatmulShape }[] = [
  { name: "matmul Q·Kᵀ 1024×1024×64", shape: { batch: 4, m: 1024, n: 1024, k: 64, transB: true } },
  { name: "matmul P·V 1024×64×1024", shape: { batch: 4, m: 1024, n: 64, k: 1024 } },
];
const roofline = new Map<string, { ms: number[]; flops: number }>();
for (const { name, shape } of ROOFLINE) {
  let run: (() => Promise<number>) | undefined;
  Deno.bench({
    name,
    group: "roofline: matmul, batch 4",
    n: 5,
    warmup: 1,
    async fn(b) {
      if (!run) {
        const plan = await MatmulPlan.create(device, shape);
        const { batch, m, n, k } = shape;
        const [a, bb, c] = [m * k, k * n, m * n].map((size) =>
          uploadBuffer(device, seededInputs(batch * size, size), "bench.matmul")
        );
        run = () => timeSubmit(device, (encoder) => plan.encode(encoder, a, bb, c));
        await run(); // compile outside the timed region
        roofline.set(name, { ms: [], flops: plan.flops });
      }
      b.start();
      const ms = await run();
      b.end();
      roofline.get(name)!.ms.push(ms);
    },
  });
}

globalThis.addEventListener("unload", () => {
  const lines = [
    "",
    ...kernelSummary("forward", kernels, tiles, adapter.costs),
    ...tfjsSummary("forward", kernels, tfjs),
    ...peerSummary("forward", kernels, peers),
  ];
  if (precision) lines.push(...precisionSummary("forward", precision));
  for (const [name, { ms, flops }] of roofline) {
    const median = summarize(ms.slice(1)).msMedian; // without deno bench's warmup iteration
    lines.push(`roofline: ${name}: ${(flops / median / 1e6).toFixed(2)} GFLOP/s`);
  }
  lines.push(...summaryFooter(adapter));
  console.log(lines.join("\n"));
});
