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
 * every gradient copied into one flat buffer whose squared norm is one
 * reduction, AdamW on every parameter (clipping by that norm), and the
 * on-GPU loss history.
 */
export class Optimizer {
  /** Steps recorded since the last {@linkcode Optimizer.readHistory}. */
  pending = 0;

  private constructor(
    readonly device: GPUDevice,
    readonly model: Model,
    readonly config: TrainConfig,
    readonly offsets: number[],
    readonly norm: SumPlan,
    readonly adam: AdamWPlan[],
    readonly flatGrad: GPUBuffer,
    readonly gradSumSq: GPUBuffer,
    readonly stepBuffer: GPUBuffer,
    readonly history: GPUBuffer,
  ) {}

  static async create(device: GPUDevice, model: Model, c: TrainConfig): Promise<Optimizer> {
    const params = model.params;
    // Every gradient is copied into one flat buffer, so that the global norm is one reduction.
    const offsets: number[] = [];
    let length = 0;
    for (const p of params) {
      offsets.push(length);
      length += p.grad.size;
    }
    const norm = await SumPlan.create(device, { length, square: true });
    const adam = await Promise.all(
      params.map((p) =>
        AdamWPlan.create(device, { length: p.value.size, weightDecay: p.decay ? c.weightDecay : 0 })
      ),
    );
    const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const flatGrad = device.createBuffer({
      label: "sigmax.grads",
      size: length * 4,
      usage: storage,
    });
    const gradSumSq = device.createBuffer({ label: "sigmax.grad_sumsq", size: 16, usage: storage });
    const history = device.createBuffer({
      label: "sigmax.history",
      size: HISTORY_STEPS * 8,
      usage: storage,
    });
    return new Optimizer(
      device,
      model,
      c,
      offsets,
      norm,
      adam,
      flatGrad,
      gradSumSq,
      createAdamWStepBuffer(device),
      history,
    );
  }

  /** Records forward, loss, backward and the update of step t (0-based) and submits them. */
  encodeStep(graph: Graph, t: number, lr: number): void {
    const c = this.config;
    writeAdamWStep(this.device, this.stepBuffer, {
      lr,
      beta1: c.beta1,
      beta2: c.beta2,
      eps: c.eps,
      step: t + 1,
      maxNorm: c.clip > 0 ? c.clip : Infinity,
    });
    const enc = onePass(this.device.createCommandEncoder({ label: "sigmax.step" }));
    graph.encodeForward(enc);
    graph.encodeLoss(enc);
    graph.encodeBackward(enc);
    const params = this.model.params;
    params.forEach((p, i) =>
      enc.copyBufferToBuffer(p.grad.buffer, 0, this.flatGrad, this.offsets[i] * 4, p.grad.bytes)
    );
    this.norm.encode(enc, { x: this.flatGrad, out: this.gradSumSq });
    params.forEach((p, i) =>
      this.adam[i].encode(enc, {
        param: p.value.buffer,
        grad: p.grad.buffer,
        m: p.m.buffer,
        v: p.v.buffer,
        step: this.stepBuffer,
        gradSumSq: this.gradSumSq,
      })
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
    for (const b of [this.flatGrad, this.gradSumSq, this.stepBuffer, this.history]) b.destroy();
  }
}
