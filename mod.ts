/**
 * sigmax: softmax and sigmoid self-attention as hand-written WGSL kernels on
 * WebGPU, with references to test them against and timing to compare them.
 *
 * - {@linkcode attention} runs fused (tiled, no S×S buffer) or unfused
 *   attention on `Float32Array`s; {@linkcode attentionReference} is the same
 *   computation in plain TypeScript with f64 sums.
 * - {@linkcode attentionBackward} gives the gradients `dq`, `dk`, `dv` from
 *   fused (FlashAttention-2 style) or unfused backward kernels;
 *   {@linkcode attentionBackwardReference} is its plain-TypeScript twin.
 * - {@linkcode AttentionPlan} runs attention forward and backward on GPU
 *   buffers you own, recorded into your command encoder.
 * - `options.tiling` ({@linkcode Tiling}) picks the fused kernels' tile
 *   configuration: `"auto"` (the software tiling on a CPU adapter, the GPU
 *   tiling elsewhere), or `"gpu"`/`"software"` forced on any adapter.
 * - {@linkcode getDevice} and {@linkcode adapterReport} give the shared
 *   WebGPU device and describe its adapter.
 *
 * @example
 * ```ts
 * import { attention } from "@sigmax/sigmax";
 * const shape = { batch: 1, heads: 1, seqLen: 3, headDim: 2 };
 * const x = new Float32Array([1, 0, 0, 1, 1, 1]);
 * const out = await attention(x, x, x, shape, { activation: "sigmoid" });
 * console.log(out.length); // 6
 * ```
 *
 * @module
 */

export type {
  Activation,
  AttentionOptions,
  AttentionShape,
  ResolvedAttentionOptions,
  Tiling,
} from "./kernels/attention_options.ts";
export {
  attention,
  attentionBackward,
  type AttentionBackwardBuffers,
  type AttentionBuffers,
  attentionFlops,
  AttentionPlan,
  type AttentionPlanOptions,
} from "./kernels/attention.ts";
export {
  attentionBackwardReference,
  type AttentionGradients,
  attentionReference,
} from "./kernels/attention_reference.ts";
export { type AdapterReport, adapterReport, getDevice } from "./kernels/device.ts";
export {
  type AttentionPass,
  type AttentionTiming,
  type AttentionWorkload,
  attentionWorkload,
  compareAttention,
  seededInputs,
  timeAttention,
  type TimingOptions,
} from "./kernels/attention_timing.ts";
export {
  type EvalRecord,
  type ResolvedTrainConfig,
  train,
  type TrainConfig,
  type TrainResult,
} from "./training/trainer.ts";
export { createTask, TASK_NAMES, type TaskName } from "./training/tasks/index.ts";
export type {
  Batch,
  Metric,
  ModelView,
  ParameterErrors,
  Score,
  Split,
  Task,
  TaskInput,
  TaskOptions,
  TaskOutput,
} from "./training/tasks/task.ts";
export type { ExpertFn, ModelConfig } from "./training/model.ts";
