/**
 * The attention API: {@linkcode attention} for `Float32Array`s in and out, and
 * {@linkcode AttentionPlan} for work on GPU buffers the caller owns, recorded
 * into the caller's command encoder.
 *
 * @module
 */

import {
  type Activation,
  type AttentionOptions,
  type AttentionShape,
  checkDeviceFits,
  checkShape,
  checkTensors,
  type ResolvedAttentionOptions,
  resolveOptions,
  tensorLength,
} from "./attention_options.ts";
import {
  directSoftwareReads,
  type FusedForwardConfig,
  fusedForwardPipeline,
  fusedLoopIterations,
  type FusedTiles,
  fusedTiles,
  SOFTWARE_LOOP_LIMIT,
} from "./attention_fused.ts";
import {
  type BackwardKernel,
  fusedBackwardPipeline,
  fusedBackwardTiles,
} from "./attention_fused_backward.ts";
import {
  gpuForwardPipeline,
  gpuForwardTiles,
  gpuLoopIterations,
  type GpuTiles,
} from "./attention_fused_gpu.ts";
import { gpuBackwardPipeline, gpuBackwardTiles } from "./attention_fused_gpu_backward.ts";
import {
  ACTIVATION_WG,
  activationBackwardPipeline,
  activationPipeline,
  grid2d,
} from "./attention_unfused.ts";
import { MatmulPlan } from "./matmul.ts";
import {
  _assertDeviceAlive,
  checkBufferSize,
  createStorageBuffer,
  findAliased,
  getDevice,
  isSoftwareDevice,
  readBuffer,
  subgroupSizes,
  uploadBuffer,
} from "./device.ts";
import type { AttentionGradients } from "./attention_reference.ts";
import { FUSED_PARAMS_BYTES } from "./wgsl.ts";

/**
 * GPU buffers of one forward call, all `[B,H,S,D]` except `lse`.
 *
 * @example
 * ```ts
 * import { type AttentionBuffers, AttentionPlan } from "@sigmax/sigmax";
 * const plan = await AttentionPlan.create(
 *   { batch: 1, heads: 1, seqLen: 8, headDim: 4 },
 *   { activation: "softmax" },
 * );
 * const usage = GPUBufferUsage.STORAGE;
 * const make = (size: number) => plan.device.createBuffer({ size, usage });
 * const buffers: AttentionBuffers = {
 *   q: make(plan.tensorBytes),
 *   k: make(plan.tensorBytes),
 *   v: make(plan.tensorBytes),
 *   out: make(plan.tensorBytes),
 *   lse: make(8 * 4), // [B,H,S] f32
 * };
 * const encoder = plan.device.createCommandEncoder();
 * plan.encodeForward(encoder, buffers);
 * plan.device.queue.submit([encoder.finish()]);
 * plan.destroy();
 * ```
 */
export interface AttentionBuffers {
  /** Queries, read. */
  q: GPUBuffer;
  /** Keys, read. */
  k: GPUBuffer;
  /** Values, read. */
  v: GPUBuffer;
  /** Written by the forward pass. */
  out: GPUBuffer;
  /**
   * `[B,H,S]` f32 row logsumexp, written by softmax (the backward pass needs
   * it); ignored by sigmoid. When omitted the plan writes to a scratch buffer.
   */
  lse?: GPUBuffer;
}

/**
 * GPU buffers of one backward call, all `[B,H,S,D]` except `lse`. The pass
 * reads q, k, v, out, lse and dOut and writes dq, dk, dv; the gradient
 * buffers belong to the caller and are overwritten (not accumulated into).
 *
 * @example
 * ```ts
 * import { type AttentionBackwardBuffers, AttentionPlan } from "@sigmax/sigmax";
 * const shape = { batch: 1, heads: 1, seqLen: 8, headDim: 4 };
 * const plan = await AttentionPlan.create(shape, { activation: "softmax" }, { backward: true });
 * const make = (size: number) => plan.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE });
 * const t = () => make(plan.tensorBytes);
 * const buffers: AttentionBackwardBuffers = {
 *   q: t(), k: t(), v: t(), out: t(), lse: make(8 * 4), dOut: t(), dq: t(), dk: t(), dv: t(),
 * };
 * const encoder = plan.device.createCommandEncoder();
 * plan.encodeForward(encoder, buffers); // writes out and lse
 * plan.encodeBackward(encoder, buffers); // reads them, writes dq, dk, dv
 * plan.device.queue.submit([encoder.finish()]);
 * plan.destroy();
 * ```
 */
export interface AttentionBackwardBuffers {
  /** Queries, read. */
  q: GPUBuffer;
  /** Keys, read. */
  k: GPUBuffer;
  /** Values, read. */
  v: GPUBuffer;
  /** The forward output for these q, k, v, read (softmax forms `Δ_i = dO_i·O_i` from it). */
  out: GPUBuffer;
  /**
   * `[B,H,S]` f32 row logsumexp the forward pass wrote for these q, k, v.
   * Required for softmax; ignored by sigmoid.
   */
  lse?: GPUBuffer;
  /** Gradient of the loss with respect to `out`, read. */
  dOut: GPUBuffer;
  /** Written: gradient with respect to q. */
  dq: GPUBuffer;
  /** Written: gradient with respect to k. */
  dk: GPUBuffer;
  /** Written: gradient with respect to v. */
  dv: GPUBuffer;
}

/**
 * Options of {@linkcode AttentionPlan.create} beyond the attention options.
 *
 * @example
 * ```ts
 * import type { AttentionPlanOptions } from "@sigmax/sigmax";
 * const forTraining: AttentionPlanOptions = { backward: true };
 * console.log(forTraining);
 * ```
 */
export interface AttentionPlanOptions {
  /**
   * Also build the backward pass (its pipelines and scratch), so that
   * {@linkcode AttentionPlan.encodeBackward} can be used. Default false: a
   * forward-only plan compiles only the forward kernels.
   */
  backward?: boolean;
}

/**
 * FLOPs of one forward pass in FlashAttention's convention: `4·B·H·S²·D`,
 * halved when causal.
 *
 * @example
 * ```ts
 * import { attentionFlops } from "@sigmax/sigmax";
 * const shape = { batch: 1, heads: 4, seqLen: 1024, headDim: 64 };
 * console.log(attentionFlops(shape, false) / 1e9, "GFLOP"); // 1.07 GFLOP
 * ```
 */
export function attentionFlops(shape: AttentionShape, causal: boolean): number {
  const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
  return 4 * B * H * S * S * D * (causal ? 0.5 : 1);
}

/**
 * Bytes of a buffer that holds one `[B,H,S,D]` tensor at the given precision:
 * rounded up to whole 4-byte words, as storage bindings must be (an odd count
 * of f16s leaves two bytes of padding).
 */
function _tensorBytes(shape: AttentionShape, precision: "f32" | "f16"): number {
  return Math.ceil(tensorLength(shape) * (precision === "f16" ? 2 : 4) / 4) * 4;
}

/**
 * A compiled attention call for one shape and set of options: pipelines
 * built, uniforms written, scratch allocated once. Use it to run attention
 * on GPU buffers you own, recorded into your own command encoder, as the
 * training module does. Call {@linkcode AttentionPlan.destroy} when done.
 *
 * @example
 * ```ts
 * import { AttentionPlan, getDevice } from "@sigmax/sigmax";
 * const device = await getDevice();
 * const shape = { batch: 1, heads: 2, seqLen: 16, headDim: 8 };
 * const plan = await AttentionPlan.create(shape, { activation: "sigmoid", device });
 * const bytes = plan.tensorBytes;
 * const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
 * const [q, k, v, out] = [0, 1, 2, 3].map(() => device.createBuffer({ size: bytes, usage }));
 * const encoder = device.createCommandEncoder();
 * plan.encodeForward(encoder, { q, k, v, out });
 * device.queue.submit([encoder.finish()]);
 * await device.queue.onSubmittedWorkDone();
 * plan.destroy();
 * ```
 */
export class AttentionPlan {
  /** The device the plan runs on. */
  readonly device: GPUDevice;
  /** The shape the plan was made for. */
  readonly shape: Readonly<AttentionShape>;
  /** The options with defaults filled in. */
  readonly options: Readonly<ResolvedAttentionOptions>;
  /**
   * Bytes of a buffer for one `[B,H,S,D]` tensor (q, k, v, out) at the plan's
   * precision, a multiple of 4 (storage bindings must be): B·H·S·D·4 for
   * f32; B·H·S·D·2 rounded up to whole words for f16.
   */
  readonly tensorBytes: number;
  /** FLOPs of one forward pass (see {@linkcode attentionFlops}). */
  readonly forwardFlops: number;
  /** FLOPs of one backward pass: 2.5× the forward, FlashAttention's convention. */
  readonly backwardFlops: number;
  /** Whether the plan was created with `backward: true`. */
  readonly hasBackward: boolean;
  /**
   * The tile configuration of the fused kernels: `options.tiling`, with
   * `"auto"` resolved for this device (`"software"` on a CPU adapter, else
   * `"gpu"`).
   */
  readonly tiling: "gpu" | "software";
  /** Labels of the compute pipelines the plan records, e.g. `attention.forward.softmax.d64.gpu.p1k16`. */
  get kernels(): readonly string[] {
    const pipelines = [
      this.#fused?.pipeline,
      this.#fusedBackward?.dq,
      this.#fusedBackward?.dkv,
      this.#unfused?.activation,
      this.#unfusedBackward?.activation,
    ];
    return pipelines.filter((p) => p !== undefined).map((p) => p.label);
  }
  /** Bytes of the `[B,H,S]` f32 row statistics (the softmax `lse` buffer). */
  readonly lseBytes: number;

  #uniform: GPUBuffer;
  #scratch: GPUBuffer[] = [];
  #lseScratch: GPUBuffer | undefined;
  #fused?: { pipeline: GPUComputePipeline; groups: [number, number] };
  #unfused?: {
    scores: GPUBuffer; // [B·H, S, S]
    qk: MatmulPlan;
    pv: MatmulPlan;
    activation: GPUComputePipeline;
    groups: [number, number];
  };
  #fusedBackward?: {
    dq: GPUComputePipeline;
    dkv: GPUComputePipeline;
    dqGroups: [number, number];
    dkvGroups: [number, number];
    delta?: GPUBuffer; // [B,H,S] f32, softmax's Δ_i
  };
  #unfusedBackward?: {
    grads: GPUBuffer; // [B·H, S, S]: dP, then dS in place
    dv: MatmulPlan; // Pᵀ·dO
    dp: MatmulPlan; // dO·Vᵀ
    dq: MatmulPlan; // scale·dS·K
    dk: MatmulPlan; // scale·dSᵀ·Q
    activation: GPUComputePipeline;
    groups: [number, number];
  };
  /** Per pipeline, the last bind group built: reused while the caller passes the same buffers. */
  #bindGroups = new Map<GPUComputePipeline, { buffers: GPUBuffer[]; group: GPUBindGroup }>();

  private constructor(
    device: GPUDevice,
    shape: AttentionShape,
    options: ResolvedAttentionOptions,
    backward: boolean,
    tiling: "gpu" | "software",
  ) {
    this.device = device;
    this.tiling = tiling;
    this.hasBackward = backward;
    this.shape = Object.freeze({ ...shape });
    this.options = Object.freeze({ ...options });
    this.tensorBytes = _tensorBytes(shape, options.precision);
    this.lseBytes = shape.batch * shape.heads * shape.seqLen * 4;
    this.forwardFlops = attentionFlops(shape, options.causal);
    this.backwardFlops = 2.5 * this.forwardFlops;
    this.#uniform = device.createBuffer({
      label: "attention.params",
      size: FUSED_PARAMS_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }

  /**
   * Checks the shape and options (throwing `RangeError`/`TypeError` before any
   * GPU work), compiles the pipelines (cached per device) and allocates the
   * plan's uniforms and scratch. With `{ backward: true }` the plan can also
   * record the backward pass.
   */
  static async create(
    shape: AttentionShape,
    options: AttentionOptions,
    planOptions: AttentionPlanOptions = {},
  ): Promise<AttentionPlan> {
    checkShape(shape);
    const resolved = resolveOptions(shape, options);
    const backward = planOptions.backward ?? false;
    if (typeof backward !== "boolean") {
      throw new TypeError(
        `planOptions.backward must be a boolean, got ${JSON.stringify(backward)}`,
      );
    }
    const device = options.device ?? await getDevice();
    const bh = shape.batch * shape.heads;
    const scoreBytes = resolved.implementation === "unfused" ? bh * shape.seqLen ** 2 * 4 : 0;
    if (resolved.implementation === "unfused" && resolved.precision === "f16") {
      throw new RangeError(
        'options.precision "f16" is available with implementation "fused" only; the unfused ' +
          'baseline runs in "f32"',
      );
    }
    checkDeviceFits(
      device,
      shape,
      resolved,
      Math.max(_tensorBytes(shape, resolved.precision), scoreBytes),
    );
    const tiling = resolved.tiling === "auto"
      ? (isSoftwareDevice(device) ? "software" : "gpu")
      : resolved.tiling;
    const allTiles = kernelTiles(device, resolved.activation, shape.headDim, tiling);
    if (resolved.implementation === "fused") {
      if (isSoftwareDevice(device)) _checkSoftwareLoops(shape, resolved, allTiles, backward);
      const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
      for (const kernel of backward ? (["forward", "dq", "dkv"] as const) : ["forward"] as const) {
        const rows = _rowsPerWorkgroup(allTiles, kernel);
        if (Math.ceil(shape.seqLen / rows) > maxGroups) {
          throw new RangeError(
            `shape.seqLen must be at most ${maxGroups * rows} on this device (one workgroup ` +
              `per ${rows} rows), got ${shape.seqLen}`,
          );
        }
      }
    }
    _assertDeviceAlive(device);
    const plan = new AttentionPlan(device, shape, resolved, backward, tiling);
    try {
      await plan.#build(allTiles);
    } catch (error) {
      plan.destroy();
      throw error;
    }
    return plan;
  }

  async #build(tiles: KernelTiles): Promise<void> {
    const { device, shape, options } = this;
    const { seqLen: S, headDim: D } = shape;
    const bh = shape.batch * shape.heads;
    const params = new ArrayBuffer(FUSED_PARAMS_BYTES);
    new Uint32Array(params)[0] = S;
    if (options.implementation === "fused") {
      const f = new Float32Array(params);
      f[1] = options.scale;
      f[2] = options.sigmoidBias;
      new Uint32Array(params)[3] = options.causal ? 1 : 0;
      new Uint32Array(params)[4] = options.activation === "softmax" ? 1 : 0;
      device.queue.writeBuffer(this.#uniform, 0, params);
      const config: Omit<FusedForwardConfig, "rowsPerLane"> = {
        activation: options.activation,
        headDim: D,
        precision: options.precision,
      };
      const groups = (kernel: "forward" | BackwardKernel): [number, number] => [
        Math.ceil(S / _rowsPerWorkgroup(tiles, kernel)),
        bh,
      ];
      const forward = tiles.tiling === "gpu"
        ? gpuForwardPipeline(device, { ...config, tiles: tiles.forward })
        : fusedForwardPipeline(device, config, tiles.forward);
      this.#fused = { pipeline: await forward, groups: groups("forward") };
      if (this.hasBackward) {
        const backward = (kernel: BackwardKernel) =>
          tiles.tiling === "gpu"
            ? gpuBackwardPipeline(device, { ...config, kernel, tiles: tiles[kernel] })
            : fusedBackwardPipeline(
              device,
              { kernel, headDim: D, precision: options.precision },
              tiles[kernel],
            );
        const [dq, dkv] = await Promise.all([backward("dq"), backward("dkv")]);
        this.#fusedBackward = {
          dq,
          dkv,
          dqGroups: groups("dq"),
          dkvGroups: groups("dkv"),
          // The software kernels serve both activations and bind Δ (and lse) either way.
          delta: options.activation === "softmax" || tiles.tiling === "software"
            ? this.#own(createStorageBuffer(device, this.lseBytes, "attention.delta"))
            : undefined,
        };
      }
      return;
    }
    // Unfused: [B·H,S,D]·[B·H,S,D]ᵀ → scores [B·H,S,S] → activation → ·[B·H,S,D].
    new Uint32Array(params)[1] = bh * S;
    new Float32Array(params)[2] = options.sigmoidBias;
    device.queue.writeBuffer(this.#uniform, 0, params);
    const scores = this.#own(createStorageBuffer(device, bh * S * S * 4, "attention.scores"));
    const [qk, pv, activation] = await Promise.all([
      MatmulPlan.create(device, { batch: bh, m: S, n: S, k: D, transB: true }, options.scale),
      MatmulPlan.create(device, { batch: bh, m: S, n: D, k: S }),
      activationPipeline(device, { activation: options.activation, causal: options.causal }),
    ]);
    const rows = bh * S;
    const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
    const groups = options.activation === "softmax"
      ? grid2d(rows, maxGroups) // one workgroup per row
      : grid2d(Math.ceil(rows * S / ACTIVATION_WG), maxGroups); // one invocation per score
    this.#unfused = { scores, qk, pv, activation, groups };
    if (!this.hasBackward) return;
    // Backward: P recomputed into `scores`, then dV = Pᵀ·dO, dP = dO·Vᵀ into `grads`,
    // dS in place, dQ = scale·dS·K, dK = scale·dSᵀ·Q.
    const grads = this.#own(createStorageBuffer(device, bh * S * S * 4, "attention.grads"));
    const [dv, dp, dq, dk, activationBackward] = await Promise.all([
      MatmulPlan.create(device, { batch: bh, m: S, n: D, k: S, transA: true }),
      MatmulPlan.create(device, { batch: bh, m: S, n: S, k: D, transB: true }),
      MatmulPlan.create(device, { batch: bh, m: S, n: D, k: S }, options.scale),
      MatmulPlan.create(device, { batch: bh, m: S, n: D, k: S, transA: true }, options.scale),
      activationBackwardPipeline(device, options.activation),
    ]);
    this.#unfusedBackward = { grads, dv, dp, dq, dk, activation: activationBackward, groups };
  }

  /** Bytes of the scratch buffers the plan owns (the unfused S×S buffers, softmax's Δ, …). */
  get scratchBytes(): number {
    return this.#scratch.reduce((bytes, buffer) => bytes + buffer.size, 0);
  }

  #own(buffer: GPUBuffer): GPUBuffer {
    this.#scratch.push(buffer);
    return buffer;
  }

  /** Scratch for the row logsumexp when the caller does not ask for it. */
  #lse(): GPUBuffer {
    this.#lseScratch ??= this.#own(
      createStorageBuffer(this.device, this.lseBytes, "attention.lse"),
    );
    return this.#lseScratch;
  }

  /** Records the forward pass into `encoder`: reads q, k, v; writes out (and lse for softmax). */
  encodeForward(encoder: GPUCommandEncoder, buffers: AttentionBuffers): void {
    for (const name of ["q", "k", "v", "out"] as const) {
      checkBufferSize(`buffers.${name}`, buffers[name], this.tensorBytes);
    }
    if (buffers.lse) checkBufferSize("buffers.lse", buffers.lse, this.lseBytes);
    _checkNoAliasing(buffers, ["out", "lse"]);
    const softmax = this.options.activation === "softmax";
    const lse = buffers.lse ?? (softmax ? this.#lse() : undefined);
    if (this.#fused) {
      const { pipeline, groups } = this.#fused;
      const entries = [this.#uniform, buffers.q, buffers.k, buffers.v, buffers.out];
      if (softmax) entries.push(lse!);
      this.#dispatch(encoder, pipeline, entries, groups);
      return;
    }
    const { scores, qk, pv, activation, groups } = this.#unfused!;
    qk.encode(encoder, buffers.q, buffers.k, scores);
    const entries = [this.#uniform, scores];
    if (softmax) entries.push(lse!);
    this.#dispatch(encoder, activation, entries, groups);
    pv.encode(encoder, scores, buffers.v, buffers.out);
  }

  /**
   * Records the backward pass into `encoder` (the plan must have been created
   * with `{ backward: true }`): reads q, k, v, out, lse (softmax) and dOut,
   * writes dq, dk, dv. `out` and `lse` must be what {@linkcode encodeForward}
   * wrote for the same q, k, v. The fused pass recomputes the weights tile by
   * tile; the unfused one recomputes P into its S×S scratch.
   */
  encodeBackward(encoder: GPUCommandEncoder, buffers: AttentionBackwardBuffers): void {
    if (!this.hasBackward) {
      throw new TypeError(
        "this AttentionPlan was created without the backward pass; create it with " +
          "AttentionPlan.create(shape, options, { backward: true })",
      );
    }
    for (const name of ["q", "k", "v", "out", "dOut", "dq", "dk", "dv"] as const) {
      checkBufferSize(`buffers.${name}`, buffers[name], this.tensorBytes);
    }
    const softmax = this.options.activation === "softmax";
    if (softmax) {
      if (!buffers.lse) {
        throw new TypeError(
          "buffers.lse is required by the softmax backward pass: pass the [B,H,S] f32 buffer " +
            "that encodeForward wrote the row logsumexp to",
        );
      }
      checkBufferSize("buffers.lse", buffers.lse, this.lseBytes);
    }
    _checkNoAliasing(buffers, ["dq", "dk", "dv"]);
    const { q, k, v, out, dOut, dq, dk, dv } = buffers;
    if (this.#fusedBackward) {
      const f = this.#fusedBackward;
      const uniform = this.#uniform;
      const dqEntries = [uniform, q, k, v, dOut, dq];
      const dkvEntries = [uniform, q, k, v, dOut, dk, dv];
      if (softmax || this.tiling === "software") {
        // Sigmoid's lse is never read: the software kernels serve both activations and bind one.
        const lse = softmax ? buffers.lse! : (buffers.lse ?? this.#lse());
        dqEntries.push(out, lse, f.delta!);
        dkvEntries.push(lse, f.delta!);
      }
      this.#dispatch(encoder, f.dq, dqEntries, f.dqGroups); // writes Δ for dkv
      this.#dispatch(encoder, f.dkv, dkvEntries, f.dkvGroups);
      return;
    }
    const { scores, qk, activation, groups } = this.#unfused!;
    const u = this.#unfusedBackward!;
    qk.encode(encoder, q, k, scores);
    const entries = [this.#uniform, scores];
    if (softmax) entries.push(this.#lse());
    this.#dispatch(encoder, activation, entries, groups);
    u.dv.encode(encoder, scores, dOut, dv);
    u.dp.encode(encoder, dOut, v, u.grads);
    this.#dispatch(encoder, u.activation, [this.#uniform, scores, u.grads], u.groups);
    u.dq.encode(encoder, u.grads, k, dq);
    u.dk.encode(encoder, u.grads, q, dk);
  }

  /** Records one compute pass of `pipeline` over `buffers` (bindings 0, 1, …). */
  #dispatch(
    encoder: GPUCommandEncoder,
    pipeline: GPUComputePipeline,
    buffers: GPUBuffer[],
    [x, y]: [number, number],
  ): void {
    let cached = this.#bindGroups.get(pipeline);
    if (!cached || cached.buffers.some((buffer, i) => buffer !== buffers[i])) {
      const group = this.device.createBindGroup({
        label: pipeline.label,
        layout: pipeline.getBindGroupLayout(0),
        entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
      this.#bindGroups.set(pipeline, cached = { buffers, group });
    }
    const pass = encoder.beginComputePass({ label: pipeline.label });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, cached.group);
    pass.dispatchWorkgroups(x, y);
    pass.end();
  }

  /** Frees the plan's uniforms and scratch buffers (not the caller's buffers). */
  destroy(): void {
    this.#uniform.destroy();
    for (const buffer of this.#scratch) buffer.destroy();
    this.#scratch = [];
    this.#bindGroups.clear();
    this.#unfused?.qk.destroy();
    this.#unfused?.pv.destroy();
    for (const m of ["dv", "dp", "dq", "dk"] as const) this.#unfusedBackward?.[m].destroy();
  }
}

/** The tiles of the three fused kernels at one tiling. */
export type KernelTiles =
  | { tiling: "software"; forward: FusedTiles; dq: FusedTiles; dkv: FusedTiles }
  | { tiling: "gpu"; forward: GpuTiles; dq: GpuTiles; dkv: GpuTiles };

/**
 * The tiles of the forward, `dq` and `dkv` kernels for `tiling` on `device`.
 * The software tiling reads keys and values straight from storage where
 * {@linkcode directSoftwareReads} says so (OpenGL), else stages them.
 * The GPU tiling combines a split row's partial dot products with subgroup
 * shuffles when the device has `subgroups` and its subgroups are at least as
 * wide as the split.
 */
export function kernelTiles(
  device: GPUDevice,
  activation: Activation,
  headDim: number,
  tiling: "gpu" | "software",
): KernelTiles {
  const storage = device.limits.maxComputeWorkgroupStorageSize;
  if (tiling === "software") {
    const direct = directSoftwareReads(device);
    return {
      tiling,
      forward: fusedTiles(activation, headDim, storage, true, direct),
      dq: fusedBackwardTiles("dq", activation, headDim, storage, true, direct),
      dkv: fusedBackwardTiles("dkv", activation, headDim, storage, true, direct),
    };
  }
  const sizes = subgroupSizes(device);
  const pick = (tiles: (subgroups: boolean) => GpuTiles) => {
    const plain = tiles(false);
    return sizes && sizes.min >= plain.split ? tiles(true) : plain;
  };
  return {
    tiling,
    forward: pick((sg) => gpuForwardTiles(headDim, storage, sg)),
    dq: pick((sg) => gpuBackwardTiles("dq", activation, headDim, storage, sg)),
    dkv: pick((sg) => gpuBackwardTiles("dkv", activation, headDim, storage, sg)),
  };
}

/** Rows (queries, or keys for `dkv`) one workgroup of `kernel` owns. */
function _rowsPerWorkgroup(tiles: KernelTiles, kernel: "forward" | BackwardKernel): number {
  if (tiles.tiling === "gpu") return tiles[kernel].lanes / tiles[kernel].split;
  return tiles[kernel].lanes * tiles[kernel].rowsPerLane;
}

/**
 * Throws a `RangeError` if a fused kernel would run more loop iterations per
 * invocation than Mesa's llvmpipe allows ({@linkcode SOFTWARE_LOOP_LIMIT}):
 * past it the software adapter silently skips the rest of the work.
 */
function _checkSoftwareLoops(
  shape: AttentionShape,
  options: ResolvedAttentionOptions,
  tiles: KernelTiles,
  backward: boolean,
): void {
  const kernels = backward ? (["forward", "dq", "dkv"] as const) : (["forward"] as const);
  for (const kernel of kernels) {
    const n = tiles.tiling === "gpu"
      ? gpuLoopIterations(shape.headDim, tiles[kernel], shape.seqLen)
      : fusedLoopIterations(
        kernel,
        options.activation,
        shape.headDim,
        tiles[kernel],
        shape.seqLen,
      );
    if (n > SOFTWARE_LOOP_LIMIT) {
      throw new RangeError(
        `shape.seqLen ${shape.seqLen} is too long for the fused ${options.activation} ` +
          `${kernel === "forward" ? "forward" : "backward"} kernel at headDim ` +
          `${shape.headDim} (tiling "${tiles.tiling}") on this software adapter: Mesa's llvmpipe stops a shader ` +
          `invocation after ${SOFTWARE_LOOP_LIMIT} loop iterations, and this needs up to ${n}; ` +
          "use a shorter sequence, a smaller head dim, or a GPU",
      );
    }
  }
}

/**
 * Throws a `RangeError` if a buffer the pass writes (`written`) is also passed
 * as another of its buffers: WebGPU rejects a dispatch that binds one buffer
 * both writable and otherwise, and the results would be lost.
 */
function _checkNoAliasing(buffers: object, written: string[]): void {
  const pair = findAliased(buffers as Record<string, GPUBuffer | undefined>, written);
  if (!pair) return;
  const [name, other] = written.includes(pair[0]) ? pair : [pair[1], pair[0]];
  throw new RangeError(
    `buffers.${name} and buffers.${other} are the same GPUBuffer; the pass writes ` +
      `${name}, so it needs a buffer of its own`,
  );
}

/** Throws unless every value of `data` is finite in f16 (|x| ≤ 65504). */
function _checkF16Range(name: string, data: Float32Array): void {
  const at = data.findIndex((x) => !(Math.abs(x) <= 65504));
  if (at >= 0) {
    throw new RangeError(
      `${name}[${at}] = ${data[at]} does not fit f16 (|x| ≤ 65504) with options.precision "f16"; ` +
        'use "f32"',
    );
  }
}

/** Converts to the storage format of `precision` (f16 bits in a `Uint16Array`). */
export function toStorage(
  data: Float32Array,
  precision: "f32" | "f16",
): Float32Array | Uint16Array {
  if (precision === "f32") return data;
  const half = Float16Array.from(data);
  return new Uint16Array(half.buffer);
}

/**
 * Self-attention of `q`, `k`, `v` (`[B,H,S,D]` row-major `Float32Array`s) on
 * the GPU: `out_i = Σ_j w_ij v_j` with `s_ij = scale · q_i·k_j` and
 * `w = softmax_j(s)` or `w = σ(s + sigmoidBias)`; `causal` masks `j > i`.
 * Bad input throws a `RangeError`/`TypeError` before any GPU work.
 *
 * @example
 * ```ts
 * import { attention, attentionReference } from "@sigmax/sigmax";
 * const shape = { batch: 1, heads: 2, seqLen: 5, headDim: 4 };
 * const q = Float32Array.from({ length: 40 }, (_, i) => Math.sin(i));
 * const k = Float32Array.from({ length: 40 }, (_, i) => Math.cos(i));
 * const v = Float32Array.from({ length: 40 }, (_, i) => i / 40);
 * const options = { activation: "sigmoid", causal: true } as const;
 * const out = await attention(q, k, v, shape, options);
 * const ref = attentionReference(q, k, v, shape, options);
 * console.log(Math.max(...out.map((x, i) => Math.abs(x - ref[i])))); // ~1e-7
 * ```
 */
export async function attention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  shape: AttentionShape,
  options: AttentionOptions,
): Promise<Float32Array> {
  checkShape(shape);
  checkTensors(shape, { q, k, v });
  if (resolveOptions(shape, options).precision === "f16") { // (AttentionPlan.create checks the rest)
    for (const [name, x] of [["q", q], ["k", k], ["v", v]] as const) _checkF16Range(name, x);
  }
  const plan = await AttentionPlan.create(shape, options);
  const { device } = plan;
  const { precision } = plan.options;
  const buffers = [
    uploadBuffer(device, toStorage(q, precision), "attention.q"),
    uploadBuffer(device, toStorage(k, precision), "attention.k"),
    uploadBuffer(device, toStorage(v, precision), "attention.v"),
    createStorageBuffer(device, plan.tensorBytes, "attention.out"),
  ];
  try {
    const [bq, bk, bv, out] = buffers;
    const encoder = device.createCommandEncoder({ label: "attention" });
    plan.encodeForward(encoder, { q: bq, k: bk, v: bv, out });
    device.queue.submit([encoder.finish()]);
    return await _readTensor(plan, out, "the attention output");
  } finally {
    for (const buffer of buffers) buffer.destroy();
    plan.destroy();
  }
}

/** Reads a `[B,H,S,D]` tensor of the plan's precision back as f32; f16 overflow throws. */
async function _readTensor(plan: AttentionPlan, buffer: GPUBuffer, what: string) {
  const elements = tensorLength(plan.shape);
  const bytes = await readBuffer(plan.device, buffer, plan.tensorBytes);
  if (plan.options.precision === "f32") return new Float32Array(bytes);
  const result = Float32Array.from(new Float16Array(bytes, 0, elements));
  if (!result.every(Number.isFinite)) {
    throw new RangeError(
      `${what} exceeds f16's range (65504) with options.precision "f16"; use "f32"`,
    );
  }
  return result;
}

/**
 * Gradients of attention on the GPU: runs the forward pass of
 * {@linkcode attention} (keeping what the backward pass needs), then the
 * backward pass for the output gradient `dOut`, and returns `dq`, `dk`, `dv`
 * (`[B,H,S,D]` `Float32Array`s). Bad input throws a `RangeError`/`TypeError`
 * before any GPU work.
 *
 * @example
 * ```ts
 * import { attentionBackward, attentionBackwardReference } from "@sigmax/sigmax";
 * const shape = { batch: 1, heads: 2, seqLen: 5, headDim: 4 };
 * const wave = (f: (i: number) => number) => Float32Array.from({ length: 40 }, (_, i) => f(i));
 * const [q, k, v, dOut] = [Math.sin, Math.cos, (i: number) => i / 40, (i: number) => 1 - i / 20]
 *   .map(wave);
 * const options = { activation: "sigmoid", causal: true } as const;
 * const { dq, dk, dv } = await attentionBackward(q, k, v, dOut, shape, options);
 * const ref = attentionBackwardReference(q, k, v, dOut, shape, options);
 * console.log(Math.max(...dk.map((x, i) => Math.abs(x - ref.dk[i])))); // ~1e-7
 * console.log(dq.length, dv.length); // 40 40
 * ```
 */
export async function attentionBackward(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  dOut: Float32Array,
  shape: AttentionShape,
  options: AttentionOptions,
): Promise<AttentionGradients> {
  checkShape(shape);
  checkTensors(shape, { q, k, v, dOut });
  if (resolveOptions(shape, options).precision === "f16") {
    for (const [name, x] of [["q", q], ["k", k], ["v", v], ["dOut", dOut]] as const) {
      _checkF16Range(name, x);
    }
  }
  const plan = await AttentionPlan.create(shape, options, { backward: true });
  const { device } = plan;
  const { precision } = plan.options;
  const upload = (name: string, x: Float32Array) =>
    uploadBuffer(device, toStorage(x, precision), `attention.${name}`);
  const tensor = (name: string) =>
    createStorageBuffer(device, plan.tensorBytes, `attention.${name}`);
  const buffers: AttentionBackwardBuffers = {
    q: upload("q", q),
    k: upload("k", k),
    v: upload("v", v),
    dOut: upload("dOut", dOut),
    out: tensor("out"),
    lse: createStorageBuffer(device, plan.lseBytes, "attention.lse"),
    dq: tensor("dq"),
    dk: tensor("dk"),
    dv: tensor("dv"),
  };
  try {
    const encoder = device.createCommandEncoder({ label: "attention.backward" });
    plan.encodeForward(encoder, buffers);
    plan.encodeBackward(encoder, buffers);
    device.queue.submit([encoder.finish()]);
    return {
      dq: await _readTensor(plan, buffers.dq, "the gradient dq"),
      dk: await _readTensor(plan, buffers.dk, "the gradient dk"),
      dv: await _readTensor(plan, buffers.dv, "the gradient dv"),
    };
  } finally {
    for (const buffer of Object.values(buffers)) buffer.destroy();
    plan.destroy();
  }
}
