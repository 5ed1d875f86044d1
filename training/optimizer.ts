/**
 * The optimiser's part of a step, recorded after the backward pass: the
 * global gradient norm, clipping and AdamW, and the on-GPU history of each
 * step's loss and squared gradient norm.
 *
 * @module
 */

import { readFloat32 } from "../kernels/device.ts";
import { AdamWPlan, createAdamWStepBuffer, writeAdamWStep } from "../kernels/adamw.ts";
import { SumPlan } from "../kernels/reduce.ts";
import type { TrainConfig } from "./config.ts";
import type { Graph, Model } from "./model.ts";
import { onePass } from "./passes.ts";

/** Steps whose loss is kept on the GPU between read-backs. */
export const HISTORY_STEPS = 32;

/**
 * Records a whole step into one command buffer and, as far as the commands
 * allow, one compute pass ({@linkcode onePass}): forward, loss, backward,
 * every gradient copied into the flat gradient buffer, its squared norm (one
 * reduction), AdamW on the flat parameter and moment buffers (one dispatch
 * per weight decay: matrices, then the rest), the updated values copied back
 * into the parameters the kernels read, and the on-GPU loss history.
 */
export class Optimizer {
  /** Steps recorded since the last {@linkcode Optimizer.readHistory}. */
  pending = 0;

  private constructor(
    readonly device: GPUDevice,
    readonly model: Model,
    readonly config: TrainConfig,
    /** Where each of `model.params` starts in the flat buffers, in elements. */
    readonly offsets: number[],
    readonly flat: { param: GPUBuffer; grad: GPUBuffer; m: GPUBuffer; v: GPUBuffer },
    readonly norm: SumPlan,
    readonly adam: AdamWPlan[],
    readonly gradSumSq: GPUBuffer,
    readonly stepBuffer: GPUBuffer,
    readonly history: GPUBuffer,
  ) {}

  /**
   * Lays the model's parameters out in flat buffers (llm.c's params_memory):
   * the decayed ones (matrices), then, from an offset the device can bind at,
   * the rest; copies their values and moments in ({@linkcode Optimizer.load}).
   */
  static async create(device: GPUDevice, model: Model, c: TrainConfig): Promise<Optimizer> {
    const params = model.params;
    const align = device.limits.minStorageBufferOffsetAlignment / 4;
    const offsets = new Array<number>(params.length);
    const ranges: { offset: number; length: number; weightDecay: number }[] = [];
    let length = 0;
    for (const decay of [true, false]) {
      const start = Math.ceil(length / align) * align;
      length = start;
      params.forEach((p, i) => {
        if (p.decay !== decay) return;
        offsets[i] = length;
        length += p.value.size;
      });
      if (length > start) {
        ranges.push({
          offset: start,
          length: length - start,
          weightDecay: decay ? c.weightDecay : 0,
        });
      }
    }
    const norm = await SumPlan.create(device, { length, square: true });
    const adam = await Promise.all(ranges.map((r) => AdamWPlan.create(device, r)));
    const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const buffer = (label: string, size: number) =>
      device.createBuffer({ label, size, usage: storage });
    const flat = {
      param: buffer("sigmax.params", length * 4),
      grad: buffer("sigmax.grads", length * 4),
      m: buffer("sigmax.adam_m", length * 4),
      v: buffer("sigmax.adam_v", length * 4),
    };
    const optimizer = new Optimizer(
      device,
      model,
      c,
      offsets,
      flat,
      norm,
      adam,
      buffer("sigmax.grad_sumsq", 16),
      createAdamWStepBuffer(device),
      buffer("sigmax.history", HISTORY_STEPS * 8),
    );
    optimizer.load();
    return optimizer;
  }

  /** Copies every parameter's value and moments into the flat buffers (after init or a restore). */
  load(): void {
    const enc = this.device.createCommandEncoder({ label: "sigmax.optimizer.load" });
    this.model.params.forEach((p, i) => {
      for (const key of ["value", "m", "v"] as const) {
        const to = key === "value" ? this.flat.param : this.flat[key];
        enc.copyBufferToBuffer(p[key].buffer, 0, to, this.offsets[i] * 4, p.value.bytes);
      }
    });
    this.device.queue.submit([enc.finish()]);
  }

  /** Copies the flat moments back into every parameter's own (for a checkpoint; values are always current). */
  store(): void {
    const enc = this.device.createCommandEncoder({ label: "sigmax.optimizer.store" });
    this.model.params.forEach((p, i) => {
      for (const key of ["m", "v"] as const) {
        enc.copyBufferToBuffer(
          this.flat[key],
          this.offsets[i] * 4,
          p[key].buffer,
          0,
          p.value.bytes,
        );
      }
    });
    this.device.queue.submit([enc.finish()]);
  }

  /**
   * Records forward, loss, backward and the update of step t (0-based) and
   * submits them. `passes` turns the step's command encoder into the one its
   * kernels record into: {@linkcode onePass} (one compute pass where the
   * commands allow), or a profiler's wrapper that times each kernel's pass.
   */
  encodeStep(
    graph: Graph,
    t: number,
    lr: number,
    passes: (encoder: GPUCommandEncoder) => GPUCommandEncoder = onePass,
  ): void {
    const c = this.config;
    writeAdamWStep(this.device, this.stepBuffer, {
      lr,
      beta1: c.beta1,
      beta2: c.beta2,
      eps: c.eps,
      step: t + 1,
      maxNorm: c.clip > 0 ? c.clip : Infinity,
    });
    const enc = passes(this.device.createCommandEncoder({ label: "sigmax.step" }));
    graph.encodeForward(enc);
    graph.encodeLoss(enc);
    graph.encodeBackward(enc);
    const { params } = this.model;
    const at = (i: number) => this.offsets[i] * 4;
    params.forEach((p, i) =>
      enc.copyBufferToBuffer(p.grad.buffer, 0, this.flat.grad, at(i), p.grad.bytes)
    );
    this.norm.encode(enc, { x: this.flat.grad, out: this.gradSumSq });
    for (const plan of this.adam) {
      plan.encode(enc, { ...this.flat, step: this.stepBuffer, gradSumSq: this.gradSumSq });
    }
    params.forEach((p, i) =>
      enc.copyBufferToBuffer(this.flat.param, at(i), p.value.buffer, 0, p.value.bytes)
    );
    enc.copyBufferToBuffer(graph.loss.buffer, 0, this.history, this.pending * 8, 4);
    enc.copyBufferToBuffer(this.gradSumSq, 0, this.history, this.pending * 8 + 4, 4);
    this.device.queue.submit([enc.finish()]);
    this.pending++;
  }

  /** `[loss, Σ grad²]` of every step since the last read. */
  async readHistory(): Promise<[number, number][]> {
    if (this.pending === 0) return [];
    const data = await readFloat32(this.device, this.history, this.pending * 2);
    const out: [number, number][] = [];
    for (let i = 0; i < this.pending; i++) out.push([data[2 * i], data[2 * i + 1]]);
    this.pending = 0;
    return out;
  }

  destroy(): void {
    for (const p of [this.norm, ...this.adam]) p.destroy();
    for (const b of [...Object.values(this.flat), this.gradSumSq, this.stepBuffer, this.history]) {
      b.destroy();
    }
  }
}
