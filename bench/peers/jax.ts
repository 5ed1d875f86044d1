/**
 * jax-js (`@jax-js/jax` 0.1.25 from npm) on its WebGPU backend, in the same
 * Deno process as sigmax: the peer with autodiff and `jit`.
 *
 * How it is loaded: the package's one ESM entry (`dist/index.js`) through a
 * non-literal `import()` (so commands that never use the peer never install
 * it), then `init("webgpu")` and `defaultDevice("webgpu")`. No shim. jax-js
 * requests its own `GPUDevice` on the adapter (`getWebGPUDevice()` returns
 * it; it takes none from the caller), so its figures run on the same adapter
 * and in the same process as sigmax's, on a device of its own; every figure
 * says so.
 *
 * What "a user would write":
 * - softmax: `jit` of `nn.dotProductAttention(q, k, v, { isCausal })`, the
 *   attention jax-js documents, with its `[B,S,N,H]` layout (the timers
 *   upload sigmax's `[B,H,S,D]` data transposed, outside the timed region);
 * - sigmoid (jax-js has no sigmoid attention): `jit` of
 *   `σ(scale·Q·Kᵀ − ln S) ∘ tril · V` on `[B,H,S,D]` from `numpy.matmul`,
 *   `numpy.transpose`, `nn.sigmoid` and a 0/1 mask;
 * - backward: `jit(grad(Σ out ∘ dOut, argnums [q, k, v]))`, which runs the
 *   forward pass too (as TF.js's `tf.grads` does);
 * - matmul: `jit(numpy.matmul)` on square f32 matrices.
 *
 * Timing: wall clock from the call to `blockUntilReady()` of every output,
 * median of `reps` after `warmup` calls (the first compiles jax-js's kernels).
 *
 * @module
 */

import type * as JaxTypes from "npm:@jax-js/jax@0.1.25";
import type { AttentionShape } from "../../kernels/attention_options.ts";
import { seededInputs } from "../../kernels/attention_timing.ts";
import { transposeHeads } from "./ort.ts";
import { attentionPassFlops, timeWall, type WallTiming } from "./timing.ts";

/** `x` as the `Float32Array<ArrayBuffer>` that `numpy.array` takes (sigmax's arrays own their buffers). */
const f32 = (x: Float32Array) => x as Float32Array<ArrayBuffer>;

/** The `@jax-js/jax` namespace. */
export type Jax = typeof JaxTypes;

/** A jax-js array. */
export type JaxArray = JaxTypes.Array;

/** The npm specifier {@linkcode loadJax} imports (pinned, as deno.lock records it). */
export const JAX_PACKAGE = "npm:@jax-js/jax@0.1.25";

/** What {@linkcode loadJax} returns when jax-js's WebGPU backend is up. */
export interface JaxHandle {
  /** The `@jax-js/jax` namespace, with `"webgpu"` as the default device. */
  jax: Jax;
  /** The package version loaded. */
  version: string;
  /** jax-js's own `GPUDevice` (`getWebGPUDevice()`). */
  device: GPUDevice;
  /** The adapter's description. */
  adapter: string;
}

let _loaded: Promise<JaxHandle | { error: string }> | undefined;

/**
 * Initialises jax-js's WebGPU backend once per process (later calls get the
 * cached result). Returns a handle, or `{ error }` with the reason it cannot
 * run here (the package failed to load, no WebGPU backend, or a smoke-test
 * matmul was wrong). Never falls back to the wasm or CPU backends.
 */
export function loadJax(): Promise<JaxHandle | { error: string }> {
  _loaded ??= _load().catch((e: unknown) => ({
    error: `jax-js WebGPU backend unavailable: ${e instanceof Error ? e.message : String(e)}`,
  }));
  return _loaded;
}

async function _load(): Promise<JaxHandle> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    throw new Error("navigator.gpu is missing: this runtime has no WebGPU");
  }
  const jax = await _importAtRuntime(JAX_PACKAGE) as Jax;
  const available = await jax.init("webgpu");
  if (!available.includes("webgpu")) {
    throw new Error(`init("webgpu") returned [${available.join(", ")}]`);
  }
  jax.defaultDevice("webgpu");
  const np = jax.numpy;
  const got = await np.matmul(np.ones([32, 32]), np.ones([32, 32])).data();
  if (!got.every((x: number) => x === 32)) {
    throw new Error(`smoke test: ones(32,32)·ones(32,32) returned ${got[0]}…, expected 32`);
  }
  const device = jax.getWebGPUDevice();
  return {
    jax,
    version: JAX_PACKAGE.split("@").pop()!,
    device,
    adapter: (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo?.description ||
      "(no description)",
  };
}

// ---------------------------------------------------------------------------
// Attention

/** Options of the jax-js peer (sigmax's defaults for scale and sigmoid bias). */
export interface JaxAttentionOptions {
  /** `"softmax"` (`nn.dotProductAttention`) or `"sigmoid"` (composed, bias `−ln S`). */
  activation: "softmax" | "sigmoid";
  /** Mask keys after the query. Default false. */
  causal?: boolean;
}

/** The layout the peer's function takes: `[B,S,H,D]` for softmax, `[B,H,S,D]` for sigmoid. */
export function jaxLayout(options: JaxAttentionOptions): "BSHD" | "BHSD" {
  return options.activation === "softmax" ? "BSHD" : "BHSD";
}

/**
 * The attention function (not jitted) on arrays in {@linkcode jaxLayout}:
 * `(q, k, v, mask?) => out`. `mask` is the `[S,S]` 0/1 lower-triangular
 * matrix, needed for causal sigmoid only.
 */
export function jaxAttentionFn(
  jax: Jax,
  shape: AttentionShape,
  options: JaxAttentionOptions,
): (q: JaxArray, k: JaxArray, v: JaxArray, mask?: JaxArray) => JaxArray {
  const { seqLen: S, headDim: D } = shape;
  const np = jax.numpy;
  const scale = 1 / Math.sqrt(D);
  if (options.activation === "softmax") {
    return (q, k, v) => jax.nn.dotProductAttention(q, k, v, { isCausal: !!options.causal, scale });
  }
  return (q, k, v, mask) => {
    const scores = np.matmul(q, np.transpose(k, [0, 1, 3, 2])).mul(scale).add(-Math.log(S));
    let p = jax.nn.sigmoid(scores);
    if (options.causal) {
      if (!mask) throw new TypeError("mask: causal sigmoid needs the [S,S] 0/1 mask");
      p = p.mul(mask);
    }
    return np.matmul(p, v);
  };
}

/** The `[S,S]` 0/1 lower-triangular matrix (1 where key ≤ query). */
export function causalMask(seqLen: number): Float32Array {
  const m = new Float32Array(seqLen * seqLen);
  for (let i = 0; i < seqLen; i++) m.fill(1, i * seqLen, i * seqLen + i + 1);
  return m;
}

/**
 * One jax-js attention workload with its inputs resident on jax-js's device:
 * build it with {@linkcode JaxAttention.create}, time
 * {@linkcode JaxAttention.forward} or {@linkcode JaxAttention.backward}, read
 * results with {@linkcode JaxAttention.output} and
 * {@linkcode JaxAttention.grads}, then {@linkcode JaxAttention.dispose}.
 */
export class JaxAttention {
  private constructor(
    /** The handle. */
    readonly handle: JaxHandle,
    /** Shape `[B,H,S,D]` (sigmax's layout) of q, k, v, dOut and every result. */
    readonly shape: AttentionShape,
    /** The options. */
    readonly options: JaxAttentionOptions,
    private inputs: JaxArray[],
    private fwd: (...args: JaxArray[]) => JaxArray,
    private bwd: (...args: JaxArray[]) => JaxArray[],
    private disposers: (() => void)[],
  ) {}

  /**
   * Uploads q, k, v and dOut (default: sigmax's `seededInputs`, seeds 1–4)
   * and builds the jitted forward and backward functions.
   */
  static create(
    handle: JaxHandle,
    shape: AttentionShape,
    options: JaxAttentionOptions,
    data?: { q: Float32Array; k: Float32Array; v: Float32Array; dOut?: Float32Array },
  ): JaxAttention {
    const { jax } = handle;
    const np = jax.numpy;
    const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
    const n = B * H * S * D;
    for (const [name, x] of Object.entries(data ?? {})) {
      if (x.length !== n) {
        throw new RangeError(`data.${name}: expected ${n} elements for [${B},${H},${S},${D}]`);
      }
    }
    const layout = jaxLayout(options);
    const dims = layout === "BSHD" ? [B, S, H, D] : [B, H, S, D];
    const src = [
      data?.q ?? seededInputs(n, 1),
      data?.k ?? seededInputs(n, 2),
      data?.v ?? seededInputs(n, 3),
      data?.dOut ?? seededInputs(n, 4),
    ];
    const inputs = src.map((x) =>
      np.array(f32(layout === "BSHD" ? transposeHeads(x, shape) : x)).reshape(dims)
    );
    const needsMask = options.activation === "sigmoid" && !!options.causal;
    if (needsMask) inputs.push(np.array(f32(causalMask(S))).reshape([S, S]));
    const f = jaxAttentionFn(jax, shape, options);
    const call = (q: JaxArray, k: JaxArray, v: JaxArray, ...rest: JaxArray[]) =>
      f(q, k, v, needsMask ? rest[rest.length - 1] : undefined);
    const fwd = jax.jit((q: JaxArray, k: JaxArray, v: JaxArray, ...rest: JaxArray[]) =>
      call(q, k, v, ...rest)
    );
    const loss = (q: JaxArray, k: JaxArray, v: JaxArray, dOut: JaxArray, ...rest: JaxArray[]) =>
      np.sum(call(q, k, v, ...rest).mul(dOut));
    const bwd = jax.jit(
      jax.grad(loss, { argnums: [0, 1, 2] }) as (
        ...args: JaxArray[]
      ) => JaxArray[],
    );
    return new JaxAttention(
      handle,
      shape,
      options,
      inputs,
      (...args) => fwd(...(args as [JaxArray, JaxArray, JaxArray])),
      (...args) => bwd(...args) as JaxArray[],
      [() => fwd.dispose(), () => bwd.dispose()],
    );
  }

  /** The forward call's arguments, as new references (jax-js's calls consume them). */
  private _fwdArgs(): JaxArray[] {
    const [q, k, v, , mask] = this.inputs;
    return [q, k, v, ...(mask ? [mask] : [])].map((a) => a.ref);
  }

  private _bwdArgs(): JaxArray[] {
    return this.inputs.map((a) => a.ref);
  }

  /** Times one jitted forward call: call → `blockUntilReady()`, ms. */
  async forward(): Promise<number> {
    const t0 = performance.now();
    const out = this.fwd(...this._fwdArgs());
    await out.blockUntilReady();
    const ms = performance.now() - t0;
    out.dispose();
    return ms;
  }

  /** Times one jitted `grad` call (forward + backward): call → every gradient ready, ms. */
  async backward(): Promise<number> {
    const t0 = performance.now();
    const grads = this.bwd(...this._bwdArgs());
    for (const g of grads) await g.blockUntilReady();
    const ms = performance.now() - t0;
    for (const g of grads) g.dispose();
    return ms;
  }

  private _toSigmax(x: Float32Array): Float32Array {
    return jaxLayout(this.options) === "BSHD" ? transposeHeads(x, this.shape, true) : x;
  }

  /** The forward output, in sigmax's `[B,H,S,D]` layout. */
  async output(): Promise<Float32Array> {
    const data = await this.fwd(...this._fwdArgs()).data() as Float32Array;
    return this._toSigmax(data);
  }

  /** The gradients of `Σ out ∘ dOut`, in sigmax's layout. */
  async grads(): Promise<{ dq: Float32Array; dk: Float32Array; dv: Float32Array }> {
    const [dq, dk, dv] = this.bwd(...this._bwdArgs());
    return {
      dq: this._toSigmax(await dq.data() as Float32Array),
      dk: this._toSigmax(await dk.data() as Float32Array),
      dv: this._toSigmax(await dv.data() as Float32Array),
    };
  }

  /** Frees the inputs and the jitted functions. */
  dispose(): void {
    for (const a of this.inputs) a.dispose();
    for (const d of this.disposers) d();
  }
}

/**
 * What the jax-js peer runs for `options` and `pass`, in words, for reports:
 * e.g. `jit(nn.dotProductAttention) under jit(grad); jax-js's own device`.
 */
export function jaxRan(options: JaxAttentionOptions, pass: "forward" | "backward"): string {
  return (options.activation === "softmax" ? "jit(nn.dotProductAttention)" : "jit(composed ops)") +
    (pass === "backward" ? " under jit(grad)" : "") + "; jax-js's own device";
}

/** Options of {@linkcode timeJaxAttention}. */
export interface JaxAttentionTimingOptions extends JaxAttentionOptions {
  /** `"forward"`, or `"backward"` (jitted `grad`: forward + backward). */
  pass: "forward" | "backward";
  /** Untimed calls first (the first compiles). Default 1. */
  warmup?: number;
  /** Timed calls, at least 1. Default 5. */
  reps?: number;
}

/**
 * Times jax-js attention on `[B,H,S,D]` (sigmax's `seededInputs`). FLOPs:
 * `4·B·H·S²·D`, halved for causal, ×2.5 for backward (the backward call
 * also runs the forward pass; only the backward is credited, as for TF.js).
 */
export async function timeJaxAttention(
  handle: JaxHandle,
  shape: AttentionShape,
  options: JaxAttentionTimingOptions,
): Promise<WallTiming> {
  const work = JaxAttention.create(handle, shape, options);
  try {
    const call = options.pass === "backward" ? () => work.backward() : () => work.forward();
    return await timeWall(call, {
      flops: attentionPassFlops(shape, !!options.causal, options.pass),
      warmup: options.warmup,
      reps: options.reps,
      device: "jax",
      ran: jaxRan(options, options.pass),
    });
  } finally {
    work.dispose();
  }
}

/** Times `jit(numpy.matmul)` of two `[n,n]` f32 matrices (seeded inputs): `2n³` FLOPs. */
export async function timeJaxMatmul(
  handle: JaxHandle,
  n: number,
  options: { warmup?: number; reps?: number } = {},
): Promise<WallTiming> {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`n: expected a positive integer, got ${n}`);
  }
  const { jax } = handle;
  const np = jax.numpy;
  const a = np.array(f32(seededInputs(n * n, 1))).reshape([n, n]);
  const b = np.array(f32(seededInputs(n * n, 2))).reshape([n, n]);
  const mm = jax.jit((x: JaxArray, y: JaxArray) => np.matmul(x, y));
  try {
    return await timeWall(
      async () => {
        const t0 = performance.now();
        const c = mm(a.ref, b.ref);
        await c.blockUntilReady();
        const ms = performance.now() - t0;
        c.dispose();
        return ms;
      },
      {
        flops: 2 * n ** 3,
        warmup: options.warmup,
        reps: options.reps,
        device: "jax",
        ran: "jit(numpy.matmul); jax-js's own device",
      },
    );
  } finally {
    a.dispose();
    b.dispose();
    mm.dispose();
  }
}

// ---------------------------------------------------------------------------
// Command line

/**
 * `deno run -A bench/peers/jax.ts [S]` prints jax-js's attention (forward and
 * backward, both activations, causal off and on) at B=1 H=4 D=64 (default
 * S=1024) and square matmul at 512 and 1024.
 */
async function _main(args: string[]): Promise<void> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log("usage: deno run -A bench/peers/jax.ts [seqLen]   (default 1024; B=1 H=4 D=64)");
    return;
  }
  const seqLen = args[0] === undefined ? 1024 : Number(args[0]);
  if (!Number.isInteger(seqLen) || seqLen < 1) {
    throw new RangeError(`seqLen: expected a positive integer, got ${args[0]}`);
  }
  const handle = await loadJax();
  if ("error" in handle) {
    console.error(handle.error);
    Deno.exit(1);
  }
  console.log(`jax-js ${handle.version}, WebGPU on its own device, adapter "${handle.adapter}".`);
  const shape = { batch: 1, heads: 4, seqLen, headDim: 64 };
  for (const pass of ["forward", "backward"] as const) {
    for (const activation of ["softmax", "sigmoid"] as const) {
      for (const causal of [false, true]) {
        const t = await timeJaxAttention(handle, shape, { activation, causal, pass });
        console.log(
          `${pass} B=1 H=4 S=${seqLen} D=64 ${activation}${causal ? " causal" : ""}: ` +
            `${t.msMedian.toFixed(1)} ms [${t.msMin.toFixed(1)}–${t.msMax.toFixed(1)}] ` +
            `${t.gflops.toFixed(2)} GFLOP/s`,
        );
      }
    }
  }
  for (const n of [512, 1024]) {
    const t = await timeJaxMatmul(handle, n);
    console.log(`matmul ${n}³: ${t.msMedian.toFixed(1)} ms, ${t.gflops.toFixed(2)} GFLOP/s`);
  }
}

if (import.meta.main) await _main(Deno.args);

/** Imports an npm package when the code that needs it runs (see bench/peers/tfjs.ts). */
// deno-lint-ignore no-explicit-any
function _importAtRuntime(specifier: string): Promise<any> {
  return import(specifier);
}
