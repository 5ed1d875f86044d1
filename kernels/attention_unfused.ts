/**
 * Unfused attention, the baseline a generic framework runs: the scores
 * `P = scale · Q·Kᵀ` are written out as a `[B·H, S, S]` buffer by the tiled
 * matmul, the activation rewrites them in place, and a second matmul forms
 * `out = P·V`. It needs O(S²) global memory; the fused kernels need O(S·D).
 *
 * @module
 */

import type { Activation } from "./attention_options.ts";
import { getPipeline } from "./device.ts";
import { REDUCE_WGSL } from "./wgsl.ts";

/** Compile-time choices of the in-place activation kernel. */
export interface ActivationConfig {
  activation: Activation;
  causal: boolean;
}

/** Invocations per workgroup of the activation kernels. */
export const ACTIVATION_WG = 64;

/**
 * WGSL of the activation applied in place to the `[B·H, S, S]` scores.
 *
 * - softmax: one workgroup per row; a tree reduction finds the row max over
 *   the visible keys, a second the sum of `exp(s − max)`, then the row is
 *   normalised (masked entries written as exactly 0). Row logsumexp goes to
 *   `lse`, as the fused kernel keeps it.
 * - sigmoid: element-wise `σ(s + b)`, masked entries set to exactly 0.
 */
export function activationWgsl(config: ActivationConfig): string {
  const { activation, causal } = config;
  const header = `// attention.unfused.${activation}${causal ? ".causal" : ""}
struct Params {
  seqLen: u32,  // S
  rows: u32,    // B·H·S
  bias: f32,    // sigmoid bias b
  _pad: u32,
}
override WG: u32 = ${ACTIVATION_WG}u;
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> scores: array<f32>;  // [B·H, S, S]
`;
  if (activation === "sigmoid") {
    return header + `
fn sigmoid(x: f32) -> f32 {
  let e = exp(-abs(x));
  return select(e, 1.0, x >= 0.0) / (1.0 + e);
}

// One invocation per score, flattened over a 2-D grid (B·H·S² may exceed 65535·WG).
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let S = params.seqLen;
  let at = (wid.y * groups.x + wid.x) * WG + lid;  // index into [B·H, S, S]
  if (at >= params.rows * S) { return; }
  ${
      causal
        ? `let j = at % S;             // key
  let i = (at / S) % S;       // query
  scores[at] = select(sigmoid(scores[at] + params.bias), 0.0, j > i);`
        : "scores[at] = sigmoid(scores[at] + params.bias);"
    }
}
`;
  }
  return header + `@group(0) @binding(2) var<storage, read_write> lse: array<f32>;  // [B·H, S]

${REDUCE_WGSL}
// One workgroup per row (bh, i); the row id is spread over x and y to stay within limits.
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let S = params.seqLen;
  let row = wid.y * groups.x + wid.x;
  if (row >= params.rows) { return; }  // uniform per workgroup
  let i = row % S;
  let keys = ${causal ? "i + 1u" : "S"};  // visible keys j < keys
  let base = row * S;

  var m = -3.0e38;
  for (var j = lid; j < keys; j += WG) { m = max(m, scores[base + j]); }
  partial[lid] = m;
  m = reduce(lid, true);

  var l = 0.0;
  for (var j = lid; j < keys; j += WG) { l += exp(scores[base + j] - m); }
  partial[lid] = l;
  l = reduce(lid, false);

  let inv = 1.0 / l;
  for (var j = lid; j < S; j += WG) {
    scores[base + j] = select(0.0, exp(scores[base + j] - m) * inv, j < keys);
  }
  if (lid == 0u) { lse[row] = m + log(l); }
}
`;
}

/**
 * WGSL of the activation's backward pass, in place on the `[B·H, S, S]`
 * buffer `grads`: it holds `dP = dO·Vᵀ` on entry and `dS` on exit; `probs`
 * holds the weights P the forward activation wrote (0 where masked, so
 * masked entries get `dS = 0` without a mask test).
 *
 * - softmax: one workgroup per row; a tree reduction forms the row term
 *   `Δ_i = Σ_j P_ij dP_ij`, then `dS = P ∘ (dP − Δ_i)`.
 * - sigmoid: element-wise `dS = dP ∘ P ∘ (1 − P)`.
 */
export function activationBackwardWgsl(activation: Activation): string {
  const header = `// attention.unfused.backward.${activation}
struct Params {
  seqLen: u32,  // S
  rows: u32,    // B·H·S
  bias: f32,    // (unused here)
  _pad: u32,
}
override WG: u32 = ${ACTIVATION_WG}u;
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> probs: array<f32>;        // [B·H, S, S] P
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;  // [B·H, S, S] dP in, dS out
`;
  if (activation === "sigmoid") {
    return header + `
// One invocation per entry, flattened over a 2-D grid.
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let at = (wid.y * groups.x + wid.x) * WG + lid;
  if (at >= params.rows * params.seqLen) { return; }
  let p = probs[at];
  grads[at] = grads[at] * p * (1.0 - p);
}
`;
  }
  return header + `${REDUCE_WGSL}

// One workgroup per row, the row id spread over x and y.
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let S = params.seqLen;
  let row = wid.y * groups.x + wid.x;
  if (row >= params.rows) { return; }  // uniform per workgroup
  let base = row * S;
  var delta = 0.0;
  for (var j = lid; j < S; j += WG) { delta += probs[base + j] * grads[base + j]; }
  partial[lid] = delta;
  delta = reduce(lid, false);
  for (var j = lid; j < S; j += WG) {
    grads[base + j] = probs[base + j] * (grads[base + j] - delta);
  }
}
`;
}

/** Builds (or takes from the cache) the pipeline of an activation's backward kernel. */
export function activationBackwardPipeline(
  device: GPUDevice,
  activation: Activation,
): Promise<GPUComputePipeline> {
  const label = `attention.unfused.backward.${activation}`;
  return getPipeline(device, { key: label, label, code: () => activationBackwardWgsl(activation) });
}

/** A 2-D workgroup grid of at least `count` workgroups with x within the WebGPU limit. */
export function grid2d(count: number, maxPerDim = 65535): [number, number] {
  const x = Math.min(count, maxPerDim);
  return [x, Math.ceil(count / x)];
}

/** Label of an activation kernel, e.g. `attention.unfused.softmax.causal`. */
export function activationLabel(config: ActivationConfig): string {
  return `attention.unfused.${config.activation}${config.causal ? ".causal" : ""}`;
}

/** Builds (or takes from the cache) the pipeline of an activation kernel. */
export function activationPipeline(
  device: GPUDevice,
  config: ActivationConfig,
): Promise<GPUComputePipeline> {
  const label = activationLabel(config);
  return getPipeline(device, { key: label, label, code: () => activationWgsl(config) });
}
