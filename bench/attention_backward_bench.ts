/**
 * `deno bench` for the attention backward pass (dq, dk, dv from dOut; the
 * forward pass that writes out and lse runs once, untimed): per shape group,
 * fused softmax (the baseline) against fused sigmoid, unfused softmax and
 * unfused sigmoid, TF.js (tf.grads of its attention, which reruns the forward
 * pass; wall clock), jax-js (jit(grad), which runs the forward pass too; wall
 * clock; ONNX Runtime Web has no backward, and the summary says so), and f16
 * against f32 where the adapter has `shader-f16`.
 * The summary printed when the run ends gives GFLOP/s (FlashAttention's
 * convention: backward = 2.5 × the forward's `4·B·H·S²·D`) from GPU
 * timestamps and the measured speed ratios beside the operation-count
 * model's (bench/op_model.ts).
 *
 *     deno task bench bench/attention_backward_bench.ts
 */

import { modelledTiles } from "./op_model.ts";
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
const tiles = (headDim: number) =>
  modelledTiles(adapter.device, "backward", headDim, adapter.software);

/** B=1, H=4, D=64; S ∈ {256, 1024}, causal off and on. */
const GROUPS: ShapeGroup[] = [
  { seqLen: 256, headDim: 64, causal: false },
  { seqLen: 256, headDim: 64, causal: true },
  { seqLen: 1024, headDim: 64, causal: false },
  { seqLen: 1024, headDim: 64, causal: true },
];
const kernels = benchKernelGroups("backward", GROUPS);
const tfjs = await benchTfjsGroups("backward", GROUPS);
const peers = await benchPeerGroups("backward", GROUPS);
const precision = adapter.shaderF16 ? benchPrecision("backward") : undefined;

globalThis.addEventListener("unload", () => {
  const lines = [
    "",
    ...kernelSummary("backward", kernels, tiles, adapter.costs),
    ...tfjsSummary("backward", kernels, tfjs),
    ...peerSummary("backward", kernels, peers),
  ];
  if (precision) lines.push(...precisionSummary("backward", precision));
  lines.push(...summaryFooter(adapter));
  console.log(lines.join("\n"));
});
