/**
 * The baseline a Deno user would otherwise pick: TensorFlow.js on its WebGPU
 * backend (`@tensorflow/tfjs` + `@tensorflow/tfjs-backend-webgpu` 4.22.0 from
 * npm), running in Deno on the same adapter (and the same `GPUDevice`) as
 * sigmax, timed the way sigmax's wall clock times: from the first op call to
 * the result being ready, median over reps after warmup.
 *
 * What it took to run in Deno: no shim. The backend's own factory only needs
 * `navigator.gpu` (Deno has it) and reads `adapter.info` when present (it falls
 * back to the removed `requestAdapterInfo()` only where `info` is missing); it
 * never touches `window`, `document` or `OffscreenCanvas` unless the
 * `WEBGPU_USE_PROFILE_TOOL` flag is set. The one thing {@linkcode loadTfjs}
 * changes is *which device* the backend gets: it replaces the stock factory
 * (which requests a second device on the adapter) with one that builds
 * `new WebGPUBackend(device, device.adapterInfo)` on sigmax's
 * {@linkcode getDevice} device, so both libraries run on one adapter and one
 * queue. The packages are loaded with a dynamic `import()`, so a registry or
 * runtime problem becomes a reported `{ error }` instead of a module that
 * fails to load.
 *
 * Why the `@tensorflow/tfjs` bundle and not `@tensorflow/tfjs-core` alone:
 * core's Node entry point (the one Deno's `npm:` loads) registers no
 * gradients, so `tf.grads` fails with "gradient function not found for Sum";
 * its `dist/register_all_gradients.js` is extensionless ESM that Deno cannot
 * load. The bundle registers them (it also registers the `cpu` backend, and
 * `webgl` declines to register without WebGL); the `webgpu` backend is set
 * explicitly.
 *
 * What "a user would write": standard unfused attention with TF.js ops
 * (`matMul` with `transposeB`, an additive −1e9 mask for causal softmax, a
 * multiplicative 0/1 mask for causal sigmoid, `softmax`/`sigmoid`, `matMul`),
 * gradients from `tf.grads`, a transformer from `tf.variable`s and core ops
 * trained with `tf.train.adam` plus decoupled weight decay. TF.js flags are
 * left at their defaults.
 *
 * @module
 */

import type * as TfCore from "npm:@tensorflow/tfjs@4.22.0";
import type * as TfWebgpu from "npm:@tensorflow/tfjs-backend-webgpu@4.22.0";
import { getDevice } from "../../kernels/device.ts";
import { attentionFlops } from "../../kernels/attention.ts";
import type { AttentionShape } from "../../kernels/attention_options.ts";
import { seededInputs } from "../../kernels/attention_timing.ts";

/** The `@tensorflow/tfjs` namespace (what `import * as tf` gives). */
export type Tf = typeof TfCore;

/** A TF.js tensor. */
export type TfTensor = TfCore.Tensor;

/** What {@linkcode loadTfjs} returns when TF.js's WebGPU backend is up. */
export interface TfjsHandle {
  /** The `@tensorflow/tfjs` namespace, with `"webgpu"` as the active backend. */
  tf: Tf;
  /** The active backend's name: always `"webgpu"`. */
  backend: "webgpu";
  /** TF.js's version (`tf.version_core`). */
  version: string;
  /** The device TF.js runs on. */
  device: GPUDevice;
  /** True when that device is sigmax's own `getDevice()` device (the normal case). */
  sharedDevice: boolean;
  /** The adapter's description, e.g. `"llvmpipe (LLVM 15.0.6, 256 bits)"`. */
  adapter: string;
}

/** The npm packages {@linkcode loadTfjs} loads (pinned, as deno.lock records them). */
export const TFJS_PACKAGES: readonly string[] = [
  "npm:@tensorflow/tfjs@4.22.0",
  "npm:@tensorflow/tfjs-backend-webgpu@4.22.0",
];

let _loaded: Promise<TfjsHandle | { error: string }> | undefined;

/**
 * Initialises TF.js on its WebGPU backend once per process (later calls get
 * the cached result) and makes `"webgpu"` the active backend, on sigmax's
 * shared device. Returns a handle, or `{ error }` with the reason TF.js cannot
 * run here (the package failed to load, no WebGPU, the backend failed to
 * initialise or to run a 2×2 matmul). Never falls back to another backend.
 */
export function loadTfjs(): Promise<TfjsHandle | { error: string }> {
  _loaded ??= _load().catch((e: unknown) => ({
    error: `TF.js WebGPU backend unavailable: ${e instanceof Error ? e.message : String(e)}`,
  }));
  return _loaded;
}

async function _load(): Promise<TfjsHandle> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    throw new Error("navigator.gpu is missing: this runtime has no WebGPU");
  }
  const device = await getDevice();
  const tf = await _importAtRuntime(TFJS_PACKAGES[0]) as typeof TfCore;
  // Importing the backend registers its stock "webgpu" factory (and its kernels).
  const webgpu = await _importAtRuntime(TFJS_PACKAGES[1]) as typeof TfWebgpu;
  // Swap the stock factory, which requests a second device on the adapter,
  // for one on sigmax's device. Kernels are registered per backend *name*, so
  // they stay in place.
  const adapterInfo = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  tf.removeBackend("webgpu");
  const registered = tf.registerBackend(
    "webgpu",
    () => new webgpu.WebGPUBackend(device, adapterInfo),
    3,
  );
  if (!registered) throw new Error("could not register the webgpu backend");
  if (!(await tf.setBackend("webgpu"))) {
    throw new Error("tf.setBackend('webgpu') failed (see the warning TF.js printed)");
  }
  await tf.ready();
  if (tf.getBackend() !== "webgpu") {
    throw new Error(`the active backend is ${tf.getBackend()}, not webgpu`);
  }
  // A smoke test: one GPU matmul and a readback. 32×32, because TF.js runs ops
  // on inputs under 1000 elements that were never uploaded on the CPU
  // (its WEBGPU_CPU_FORWARD flag).
  const got = tf.tidy(() => tf.matMul(tf.ones([32, 32]), tf.ones([32, 32])));
  const values = await got.data();
  got.dispose();
  if (!values.every((x) => x === 32)) {
    throw new Error(`smoke test: ones(32,32)·ones(32,32) returned ${values[0]}…, expected 32`);
  }
  const backend = tf.backend() as unknown as { device?: GPUDevice };
  return {
    tf,
    backend: "webgpu",
    version: tf.version_core,
    device: backend.device ?? device,
    sharedDevice: backend.device === device,
    adapter: adapterInfo?.description || "(no description)",
  };
}

// ---------------------------------------------------------------------------
// Timing

/**
 * What the timers take: the `tf` namespace, or the whole {@linkcode TfjsHandle}
 * (its `tf` is used).
 */
export type TfOrHandle = Tf | TfjsHandle;

/** The namespace behind `x` (the handle's `backend` is a string; the namespace's a function). */
function _tf(x: TfOrHandle): Tf {
  return typeof (x as TfjsHandle).backend === "string" ? (x as TfjsHandle).tf : x as Tf;
}

/** Warmup and repetitions of a timed TF.js call. */
export interface TfjsTimingOptions {
  /** Untimed calls first (the first compiles TF.js's pipelines). Default 1. */
  warmup?: number;
  /** Timed calls, at least 1. Default 5. */
  reps?: number;
}

/** A wall-clock timing of a TF.js call. */
export interface TfjsTiming {
  /** Median time of one call, ms. */
  msMedian: number;
  /** Fastest call, ms. */
  msMin: number;
  /** Slowest call, ms. */
  msMax: number;
  /** Every timed call, ms. */
  samples: number[];
  /** Always the wall clock: first op call → result ready on the CPU (see {@linkcode timeTfjsAttention}). */
  clock: "wall";
}

function _summarize(samples: number[]): TfjsTiming {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const msMedian = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { msMedian, msMin: sorted[0], msMax: sorted[sorted.length - 1], samples, clock: "wall" };
}

/**
 * Runs `call` `warmup` times untimed, then `reps` times timed. Each call must
 * return a promise that settles when its results are ready (a readback).
 */
async function _time(
  call: () => Promise<unknown>,
  options: TfjsTimingOptions,
): Promise<TfjsTiming> {
  const warmup = Math.max(0, options.warmup ?? 1);
  const reps = Math.max(1, options.reps ?? 5);
  for (let i = 0; i < warmup; i++) await call();
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await call();
    samples.push(performance.now() - t0);
  }
  return _summarize(samples);
}

/**
 * Dispatches `f` inside `tf.tidy` and waits for one f32 that depends on every
 * output: `Σ sum(output)` read back with `data()`. That readback is 4 bytes;
 * the sums are one small reduction per output (O(B·H·S·D), under 1% of
 * attention's O(S²·D) work), so the wait measures the computation, not a
 * copy of the whole output. Every tensor `f` makes is disposed.
 */
async function _runAndSync(tf: Tf, f: () => TfTensor | TfTensor[]): Promise<number> {
  const total = tf.tidy(() => {
    const outs = f();
    const list = Array.isArray(outs) ? outs : [outs];
    return list.length === 1 ? tf.sum(list[0]) : tf.addN(list.map((t) => tf.sum(t)));
  });
  try {
    return (await total.data())[0];
  } finally {
    total.dispose();
  }
}

/**
 * Peak bytes of live TF.js tensors while `f` runs once (untimed), from
 * `tf.profile`: the largest `tf.memory().numBytes` seen after any kernel, so
 * it counts the inputs (and variables) already alive plus every intermediate
 * (inside `tf.tidy` none is freed before the end). It does not count the free
 * buffers in the backend's pool.
 */
async function _peakBytes(tf: Tf, f: () => TfTensor | TfTensor[]): Promise<number> {
  const info = await tf.profile(() => {
    const total = tf.tidy(() => {
      const outs = f();
      const list = Array.isArray(outs) ? outs : [outs];
      return tf.addN(list.map((t) => tf.sum(t)));
    });
    return total;
  });
  const result = info.result as TfTensor;
  await result.data();
  result.dispose();
  return Math.max(info.peakBytes, tf.memory().numBytes);
}

// ---------------------------------------------------------------------------
// Attention

/** Attention options of the TF.js baseline (sigmax's defaults for scale and sigmoid bias). */
export interface TfjsAttentionOptions {
  /** `"softmax"` or `"sigmoid"` (with bias `−ln(seqLen)`). */
  activation: "softmax" | "sigmoid";
  /** Mask keys after the query. Default false. */
  causal?: boolean;
  /**
   * How `Kᵀ` enters the scores. `"transposeB"` (default):
   * `tf.matMul(q, k, false, true)`, the usual way to write it. `"explicit"`:
   * `tf.matMul(q, tf.transpose(k, [0, 1, 3, 2]))`, the same numbers. On
   * llvmpipe TF.js 4.22's WebGPU matmul with `transposeB` ran the
   * `[1,4,1024,64]·[1,4,1024,64]ᵀ` product 2–3× slower than transpose +
   * plain matmul, which made the whole forward pass 1.6–2× slower.
   */
  kTranspose?: "transposeB" | "explicit";
}

/**
 * The 0/1 lower-triangular `[S,S]` matrix (1 where key ≤ query). Build it
 * once per shape: it is a constant, kept out of the timed region.
 */
export function causalMask(tf: Tf, seqLen: number): TfTensor {
  const m = new Float32Array(seqLen * seqLen);
  for (let i = 0; i < seqLen; i++) m.fill(1, i * seqLen, i * seqLen + i + 1);
  return tf.tensor2d(m, [seqLen, seqLen]);
}

/**
 * The additive causal mask for softmax: 0 on and below the diagonal, −1e9
 * above. −1e9 rather than −Infinity because WGSL does not promise IEEE
 * infinities (and TF.js passes them through uniforms); `exp(−1e9 − max)` is
 * exactly 0 in f32 either way.
 */
export function causalBias(tf: Tf, seqLen: number): TfTensor {
  const m = new Float32Array(seqLen * seqLen);
  for (let i = 0; i < seqLen; i++) m.fill(-1e9, i * seqLen + i + 1, (i + 1) * seqLen);
  return tf.tensor2d(m, [seqLen, seqLen]);
}

/**
 * Standard attention on `[B,H,S,D]` tensors, as a TF.js user writes it:
 * `s = (1/√D)·Q·Kᵀ` (see {@linkcode TfjsAttentionOptions.kTranspose}); softmax: `P = softmax(s + maskBias)`; sigmoid:
 * `P = σ(s − ln S) ∘ tril`; `out = P·V`. `mask` is {@linkcode causalBias}
 * (softmax) or {@linkcode causalMask} (sigmoid) for causal attention,
 * `undefined` otherwise. Call it inside `tf.tidy` (it leaves the S×S
 * intermediates to the caller's scope).
 */
export function tfjsAttention(
  tf: Tf,
  q: TfTensor,
  k: TfTensor,
  v: TfTensor,
  options: TfjsAttentionOptions,
  mask?: TfTensor,
): TfTensor {
  const [, , S, D] = q.shape;
  const qk = options.kTranspose === "explicit"
    ? tf.matMul(q, tf.transpose(k, [0, 1, 3, 2]))
    : tf.matMul(q, k, false, true);
  const scores = tf.mul(qk, 1 / Math.sqrt(D));
  let p: TfTensor;
  if (options.activation === "softmax") {
    p = tf.softmax(mask ? tf.add(scores, mask) : scores);
  } else {
    p = tf.sigmoid(tf.add(scores, -Math.log(S)));
    if (mask) p = tf.mul(p, mask);
  }
  return tf.matMul(p, v);
}

/** The mask {@linkcode tfjsAttention} needs for these options, or undefined. */
export function attentionMask(
  tf: Tf,
  seqLen: number,
  options: TfjsAttentionOptions,
): TfTensor | undefined {
  if (!options.causal) return undefined;
  return options.activation === "softmax" ? causalBias(tf, seqLen) : causalMask(tf, seqLen);
}

/**
 * Gradients of `Σ out ∘ dOut` with respect to q, k and v through
 * {@linkcode tfjsAttention}, with `tf.grads`: TF.js records the forward graph
 * and runs its backward, so one call runs the forward pass too. Returns
 * `[dq, dk, dv]`; call it inside `tf.tidy`.
 */
export function tfjsAttentionGrads(
  tf: Tf,
  q: TfTensor,
  k: TfTensor,
  v: TfTensor,
  dOut: TfTensor,
  options: TfjsAttentionOptions,
  mask?: TfTensor,
): TfTensor[] {
  const g = tf.grads((qq: TfTensor, kk: TfTensor, vv: TfTensor) =>
    tf.sum(tf.mul(tfjsAttention(tf, qq, kk, vv, options, mask), dOut))
  );
  return g([q, k, v]);
}

/** Options of {@linkcode timeTfjsAttention}. */
export interface TfjsAttentionTimingOptions extends TfjsTimingOptions, TfjsAttentionOptions {
  /** Mask keys after the query. */
  causal: boolean;
  /** `"forward"` (out) or `"backward"` (`tf.grads`: forward + backward, see below). */
  pass: "forward" | "backward";
}

/** Result of {@linkcode timeTfjsAttention}. */
export interface TfjsAttentionTiming extends TfjsTiming {
  /** Peak bytes of live TF.js tensors during one call (inputs, mask and intermediates). */
  peakBytes: number;
  /** FLOPs credited to one call: `4·B·H·S²·D`, halved for causal, ×2.5 for backward. */
  flops: number;
  /** `flops / msMedian`, in GFLOP/s. */
  gflops: number;
}

/**
 * Times TF.js attention on `[B,H,S,D]` inputs (sigmax's `seededInputs`, seeds
 * 1–3, and 4 for dOut: the data sigmax's benches use). Each call dispatches
 * the ops inside `tf.tidy` and waits for a 4-byte readback of their sum (see
 * `_runAndSync`); the wall clock runs from the first op call to that
 * readback, so it includes TF.js's CPU-side op dispatch, as a user sees it.
 * Inputs and the causal mask are uploaded before timing and are not counted.
 *
 * The backward pass is `tf.grads` of `Σ out ∘ dOut`: TF.js has no way to run
 * the backward alone, so one call is forward + backward, and `flops` credits
 * it with the backward convention (2.5× forward) only. Subtract the forward
 * time for a backward-only estimate.
 *
 * Causal attention is computed on the full S×S scores and masked (TF.js has
 * no block skipping), but credited with half the FLOPs, as sigmax is.
 */
export async function timeTfjsAttention(
  tfOrHandle: TfOrHandle,
  shape: AttentionShape,
  options: TfjsAttentionTimingOptions,
): Promise<TfjsAttentionTiming> {
  const tf = _tf(tfOrHandle);
  const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
  const dims = [B, H, S, D];
  const n = B * H * S * D;
  const q = tf.tensor4d(seededInputs(n, 1), dims as [number, number, number, number]);
  const k = tf.tensor4d(seededInputs(n, 2), dims as [number, number, number, number]);
  const v = tf.tensor4d(seededInputs(n, 3), dims as [number, number, number, number]);
  const dOut = options.pass === "backward"
    ? tf.tensor4d(seededInputs(n, 4), dims as [number, number, number, number])
    : undefined;
  const mask = attentionMask(tf, S, options);
  const f = options.pass === "backward"
    ? () => tfjsAttentionGrads(tf, q, k, v, dOut!, options, mask)
    : () => tfjsAttention(tf, q, k, v, options, mask);
  try {
    const timing = await _time(() => _runAndSync(tf, f), options);
    const peakBytes = await _peakBytes(tf, f);
    const flops = attentionFlops(shape, Boolean(options.causal)) *
      (options.pass === "backward" ? 2.5 : 1);
    return { ...timing, peakBytes, flops, gflops: flops / timing.msMedian / 1e6 };
  } finally {
    tf.dispose([q, k, v, ...(dOut ? [dOut] : []), ...(mask ? [mask] : [])]);
  }
}

// ---------------------------------------------------------------------------
// Matmul

/** Result of {@linkcode timeTfjsMatmul}. */
export interface TfjsMatmulTiming extends TfjsTiming {
  /** `2·n³ / msMedian`, in GFLOP/s. */
  gflops: number;
  /** Peak bytes of live TF.js tensors during one call. */
  peakBytes: number;
}

/**
 * Times `tf.matMul(a, b)` for square `size × size` f32 matrices (sigmax's
 * `seededInputs`), each call waiting for a 4-byte readback of `sum(c)` (an
 * O(n²) reduction next to the O(n³) product).
 */
export async function timeTfjsMatmul(
  tfOrHandle: TfOrHandle,
  size: number,
  options: TfjsTimingOptions = {},
): Promise<TfjsMatmulTiming> {
  const tf = _tf(tfOrHandle);
  const a = tf.tensor2d(seededInputs(size * size, 1), [size, size]);
  const b = tf.tensor2d(seededInputs(size * size, 2), [size, size]);
  const f = () => tf.matMul(a, b);
  try {
    const timing = await _time(() => _runAndSync(tf, f), options);
    const peakBytes = await _peakBytes(tf, f);
    return { ...timing, peakBytes, gflops: (2 * size ** 3) / timing.msMedian / 1e6 };
  } finally {
    tf.dispose([a, b]);
  }
}

// ---------------------------------------------------------------------------
// Training step

/** The transformer and batch of {@linkcode timeTfjsTrainingStep}. */
export interface TfjsTrainingConfig extends TfjsTimingOptions {
  /** Residual width C. */
  width: number;
  /** Transformer blocks. */
  layers: number;
  /** Attention heads (head dimension `width / heads`). */
  heads: number;
  /** Positions per sequence. */
  seqLen: number;
  /** Sequences per step. */
  batch: number;
  /** Token vocabulary. */
  vocab: number;
  /** Classes of the per-token head. */
  classes: number;
  /** Attention activation (sigmoid with bias `−ln(seqLen)`). */
  activation: "softmax" | "sigmoid";
  /** Causal attention. Default false. */
  causal?: boolean;
  /** See {@linkcode TfjsAttentionOptions.kTranspose}. Default `"transposeB"`. */
  kTranspose?: "transposeB" | "explicit";
  /** Adam's learning rate. Default 3e-3 (sigmax's transformer default). */
  lr?: number;
  /** Decoupled weight decay of the matrices. Default 0.01 (sigmax's default). */
  weightDecay?: number;
  /** Steps per timed call, waiting once at the end (sigmax's training bench queues 4). Default 1. */
  stepsPerCall?: number;
  /** Seed of the initial weights and the batch. Default 1. */
  seed?: number;
}

/** Result of {@linkcode timeTfjsTrainingStep}. */
export interface TfjsTrainingTiming extends TfjsTiming {
  /** Median time of one step (the call's time / `stepsPerCall`), ms. */
  msPerStep: number;
  /** `batch · seqLen / msPerStep`, tokens per second. */
  tokensPerSecond: number;
  /** Loss of the first step (warmup included). */
  lossFirst: number;
  /** Loss of the last step. */
  lossLast: number;
  /** Scalar parameters of the model. */
  parameters: number;
}

/** Seeded normals (mulberry32 + Box–Muller) times `std`. */
function _normals(n: number, seed: number, std: number): Float32Array {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(next(), 1e-12);
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  }
  return out;
}

/** Models built so far (they need distinct variable names). */
let _models = 0;

/**
 * Builds training steps of the pre-LayerNorm transformer of training/model.ts
 * written with TF.js core ops: token embedding plus learned positions; per
 * block `x += Wo·attn(LN(x))` (Q, K, V and O projections with bias, attention
 * by {@linkcode tfjsAttention}) and `x += W2·gelu(W1·LN(x))` (4× hidden, GELU
 * with the tanh approximation); a final LayerNorm (eps 1e-5); a per-token
 * head; mean softmax cross-entropy. Same initialisation scheme as sigmax's
 * model (not the same random numbers). One step is `optimizer.minimize` with
 * `tf.train.adam` (β 0.9/0.999, eps 1e-8) followed by decoupled weight decay
 * `W ← W·(1 − lr·λ)` of the matrices: TF.js has no AdamW, and this is AdamW.
 * No gradient-norm clipping and no learning-rate schedule (sigmax clips at 1;
 * both are a few small ops per step).
 *
 * Every step trains on the same batch (random tokens, labels
 * `token mod classes`), uploaded as a new int32 tensor per step as a data
 * loader would; the loss is read back (4 bytes) after the call's last step,
 * which waits for every queued step.
 */
export function prepareTfjsTrainingStep(
  tfOrHandle: TfOrHandle,
  config: TfjsTrainingConfig,
): TfjsTrainingStep {
  const tf = _tf(tfOrHandle);
  const { width: C, layers: L, heads: H, seqLen: S, batch: B, vocab, classes } = config;
  if (C % H !== 0) throw new RangeError(`heads (${H}) must divide width (${C})`);
  const D = C / H;
  const hidden = 4 * C;
  const N = B * S;
  const lr = config.lr ?? 3e-3;
  const weightDecay = config.weightDecay ?? 0.01;
  const stepsPerCall = Math.max(1, config.stepsPerCall ?? 1);
  const options: TfjsAttentionOptions = {
    activation: config.activation,
    causal: config.causal ?? false,
    kTranspose: config.kTranspose,
  };
  let seed = (config.seed ?? 1) * 1000;
  const model = _models++; // variable names are global in TF.js: one prefix per model

  const vars = new Map<string, TfCore.Variable>();
  const decayed: TfCore.Variable[] = [];
  const param = (name: string, shape: number[], decay: boolean, std: number | "zeros" | "ones") => {
    const size = shape.reduce((a, b) => a * b, 1);
    const init = std === "zeros"
      ? new Float32Array(size)
      : std === "ones"
      ? new Float32Array(size).fill(1)
      : _normals(size, seed++, std);
    const t = tf.tensor(init, shape);
    const v = tf.variable(t, true, `tfjs.m${model}.${name}`);
    t.dispose(); // the variable keeps the data
    vars.set(name, v);
    if (decay) decayed.push(v);
    return v;
  };
  const residualStd = (fanIn: number) => 1 / Math.sqrt(fanIn) / Math.sqrt(2 * L);
  param("wte", [vocab, C], false, 0.1);
  param("wpe", [S, C], false, 0.1);
  for (let l = 0; l < L; l++) {
    const p = `h${l}.`;
    param(p + "ln1.g", [C], false, "ones");
    param(p + "ln1.b", [C], false, "zeros");
    for (const w of ["q", "k", "v"]) {
      param(p + `w${w}`, [C, C], true, 1 / Math.sqrt(C));
      param(p + `b${w}`, [C], false, "zeros");
    }
    param(p + "wo", [C, C], true, residualStd(C));
    param(p + "bo", [C], false, "zeros");
    param(p + "ln2.g", [C], false, "ones");
    param(p + "ln2.b", [C], false, "zeros");
    param(p + "w1", [C, hidden], true, 1 / Math.sqrt(C));
    param(p + "b1", [hidden], false, "zeros");
    param(p + "w2", [hidden, C], true, residualStd(hidden));
    param(p + "b2", [C], false, "zeros");
  }
  param("lnf.g", [C], false, "ones");
  param("lnf.b", [C], false, "zeros");
  param("w_head", [C, classes], true, 1 / Math.sqrt(C));
  param("b_head", [classes], false, "zeros");
  const w = (name: string) => vars.get(name)!;

  // The batch: random tokens, label = token mod classes.
  const tokens = new Int32Array(N);
  const labels = new Int32Array(N);
  let r = (config.seed ?? 1) >>> 0;
  for (let i = 0; i < N; i++) {
    r = (Math.imul(r, 1664525) + 1013904223) >>> 0;
    tokens[i] = r % vocab;
    labels[i] = tokens[i] % classes;
  }

  const mask = attentionMask(tf, S, options);
  const layerNorm = (x: TfTensor, g: TfTensor, b: TfTensor) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), g), b);
  };
  const gelu = (x: TfTensor) => {
    const u = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(u), 1));
  };
  const linear = (x: TfTensor, wName: string, bName: string) =>
    tf.add(tf.matMul(x, w(wName)), w(bName));
  const heads = (x: TfTensor) => tf.transpose(tf.reshape(x, [B, S, H, D]), [0, 2, 1, 3]);

  const lossOf = (tok: TfTensor, lab: TfTensor): TfCore.Scalar => {
    let x = tf.reshape(tf.add(tf.reshape(tf.gather(w("wte"), tok), [B, S, C]), w("wpe")), [N, C]);
    for (let l = 0; l < L; l++) {
      const p = `h${l}.`;
      const h = layerNorm(x, w(p + "ln1.g"), w(p + "ln1.b"));
      const q = heads(linear(h, p + "wq", p + "bq"));
      const k = heads(linear(h, p + "wk", p + "bk"));
      const v = heads(linear(h, p + "wv", p + "bv"));
      const o = tf.reshape(tf.transpose(tfjsAttention(tf, q, k, v, options, mask), [0, 2, 1, 3]), [
        N,
        C,
      ]);
      x = tf.add(x, linear(o, p + "wo", p + "bo"));
      const h2 = layerNorm(x, w(p + "ln2.g"), w(p + "ln2.b"));
      x = tf.add(x, linear(gelu(linear(h2, p + "w1", p + "b1")), p + "w2", p + "b2"));
    }
    const logits = linear(layerNorm(x, w("lnf.g"), w("lnf.b")), "w_head", "b_head");
    return tf.losses.softmaxCrossEntropy(tf.oneHot(lab, classes), logits) as TfCore.Scalar;
  };

  const optimizer = tf.train.adam(lr, 0.9, 0.999, 1e-8);
  const varList = [...vars.values()];
  const losses: number[] = [];
  const step = (): TfCore.Scalar => {
    const tok = tf.tensor1d(tokens, "int32");
    const lab = tf.tensor1d(labels, "int32");
    const cost = optimizer.minimize(() => lossOf(tok, lab), true, varList)!;
    tf.tidy(() => {
      for (const v of decayed) v.assign(tf.mul(v, 1 - lr * weightDecay));
    });
    tf.dispose([tok, lab]);
    return cost;
  };
  const call = async () => {
    let cost: TfCore.Scalar | undefined;
    for (let i = 0; i < stepsPerCall; i++) {
      cost?.dispose();
      cost = step();
    }
    const loss = (await cost!.data())[0];
    cost!.dispose();
    losses.push(loss);
  };
  return {
    call,
    tokensPerCall: N * stepsPerCall,
    stepsPerCall,
    parameters: varList.reduce((n, v) => n + v.size, 0),
    losses,
    dispose() {
      optimizer.dispose();
      tf.dispose([...varList, ...(mask ? [mask] : [])]);
    },
  };
}

/** One TF.js training step built and ready to run again and again (see {@linkcode prepareTfjsTrainingStep}). */
export interface TfjsTrainingStep {
  /** Runs `stepsPerCall` steps and waits for the last loss. */
  call(): Promise<void>;
  /** Tokens (sequences × positions) one call trains on. */
  tokensPerCall: number;
  /** Steps per call. */
  stepsPerCall: number;
  /** Scalar parameters of the model. */
  parameters: number;
  /** The loss after each call so far. */
  losses: number[];
  /** Frees the variables and the optimiser. */
  dispose(): void;
}

/**
 * Times the TF.js transformer's training step ({@linkcode prepareTfjsTrainingStep}):
 * `warmup` untimed calls, then the median of `reps` calls.
 */
export async function timeTfjsTrainingStep(
  tfOrHandle: TfOrHandle,
  config: TfjsTrainingConfig,
): Promise<TfjsTrainingTiming> {
  const step = prepareTfjsTrainingStep(tfOrHandle, config);
  try {
    const timing = await _time(step.call, config);
    const msPerStep = timing.msMedian / step.stepsPerCall;
    return {
      ...timing,
      msPerStep,
      tokensPerSecond: (step.tokensPerCall / step.stepsPerCall) / msPerStep * 1000,
      lossFirst: step.losses[0],
      lossLast: step.losses[step.losses.length - 1],
      parameters: step.parameters,
    };
  } finally {
    step.dispose();
  }
}

// ---------------------------------------------------------------------------
// Command line

/**
 * `deno run -A bench/peers/tfjs.ts [forward] [backward] [matmul] [train]` prints
 * the baseline's figures on this machine (default: forward, matmul, train):
 * attention at B=1 H=4 S=1024 D=64 for both activations, causal off and on,
 * both ways of writing `Kᵀ`; square matmul at 512 and 1024; training steps
 * of a small transformer (C=32, 2 layers, 2 heads, S=16, batch 32).
 */
async function _main(args: string[]): Promise<void> {
  const handle = await loadTfjs();
  if ("error" in handle) {
    console.error(handle.error);
    Deno.exit(1);
  }
  const { tf } = handle;
  const want = new Set(args.length ? args : ["forward", "matmul", "train"]);
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  console.log(
    `TF.js ${handle.version}, backend ${tf.getBackend()}, adapter "${handle.adapter}", ` +
      `sigmax's device: ${handle.sharedDevice}. Wall clock, medians.`,
  );
  const shape = { batch: 1, heads: 4, seqLen: 1024, headDim: 64 };
  for (const pass of ["forward", "backward"] as const) {
    if (!want.has(pass)) continue;
    for (const kTranspose of ["transposeB", "explicit"] as const) {
      for (const activation of ["softmax", "sigmoid"] as const) {
        for (const causal of [false, true]) {
          const t = await timeTfjsAttention(tf, shape, {
            activation,
            causal,
            pass,
            kTranspose,
            warmup: 1,
            reps: pass === "forward" ? 7 : 5,
          });
          console.log(
            `attention ${pass} B=1 H=4 S=1024 D=64 ${activation}${causal ? " causal" : ""} ` +
              `(${kTranspose}): ${ms(t.msMedian)} [${ms(t.msMin)}–${ms(t.msMax)}] ` +
              `${t.gflops.toFixed(2)} GFLOP/s, peak ${(t.peakBytes / 2 ** 20).toFixed(0)} MiB`,
          );
        }
      }
    }
  }
  if (want.has("matmul")) {
    for (const n of [512, 1024]) {
      const t = await timeTfjsMatmul(tf, n, { warmup: 1, reps: 7 });
      console.log(
        `matmul ${n}³: ${ms(t.msMedian)} [${ms(t.msMin)}–${ms(t.msMax)}] ` +
          `${t.gflops.toFixed(2)} GFLOP/s`,
      );
    }
  }
  if (want.has("train")) {
    for (const activation of ["softmax", "sigmoid"] as const) {
      const t = await timeTfjsTrainingStep(tf, {
        width: 32,
        layers: 2,
        heads: 2,
        seqLen: 16,
        batch: 32,
        vocab: 32,
        classes: 32,
        activation,
        warmup: 3,
        reps: 7,
      });
      console.log(
        `train step C=32 L=2 H=2 S=16 B=32 ${activation}: ${ms(t.msPerStep)} ` +
          `[${ms(t.msMin)}–${ms(t.msMax)}] ${t.tokensPerSecond.toFixed(0)} tokens/s ` +
          `(${t.parameters} parameters, loss ${t.lossFirst.toFixed(2)} → ${t.lossLast.toFixed(2)})`,
      );
    }
  }
}

if (import.meta.main) await _main(Deno.args);

/**
 * Imports an npm package when the code that needs it runs. A literal
 * `import("npm:…")` puts the package in the module graph, and Deno then
 * installs every package of deno.lock before the program starts (374 MB,
 * mostly TF.js), also for commands that never load it; a specifier the graph
 * cannot read is resolved only here.
 */
// deno-lint-ignore no-explicit-any
function _importAtRuntime(specifier: string): Promise<any> {
  return import(specifier);
}
