/**
 * The models sigmax trains, in llm.c style: every layer's forward and
 * backward pass written out by hand, each one a few GPU kernels recorded into
 * the caller's command encoder. No autograd, no CPU math inside a step.
 *
 * Two architectures:
 *
 * - `"transformer"`: a pre-LayerNorm transformer. Token embedding (or a
 *   linear projection of input vectors) plus learned position embeddings,
 *   then per block `x += Wo·attn(LN(x))` and `x += W2·gelu(W1·LN(x))`, a final
 *   LayerNorm, and a head: per-token logits, per-sequence logits from the mean
 *   over positions, or per-token regression. Attention runs through sigmax's
 *   fused kernels with either activation; optional QK-norm (a LayerNorm over
 *   each head's queries and keys, the stabiliser Apple uses for sigmoid
 *   attention).
 * - `"attention"`: the single attention layer of the paper's mixture-of-experts
 *   view (and of the `teacher` task): `Y_i = Σ_h Σ_j w^h_ij · f(x_j W_V,h)`
 *   with queries `x W_Q,h`, keys `x W_K,h`, experts `f` linear, ReLU or GELU,
 *   and the heads summed (no output projection, no biases).
 *
 * Initialisation depends only on the config's shapes and the seed, never on
 * the attention activation, so softmax and sigmoid runs start from the same
 * weights.
 *
 * @module
 */

import { AttentionPlan } from "../kernels/attention.ts";
import type { Activation } from "../kernels/attention_options.ts";
import { MAX_HEAD_DIM } from "../kernels/attention_options.ts";
import { AddPlan, BiasAddPlan, UnaryPlan } from "../kernels/elementwise.ts";
import { EmbeddingPlan } from "../kernels/embedding.ts";
import { LayerNormPlan } from "../kernels/layernorm.ts";
import { CrossEntropyPlan, MsePlan } from "../kernels/losses.ts";
import { MatmulPlan } from "../kernels/matmul.ts";
import { PermutePlan } from "../kernels/permute.ts";
import { PoolPlan } from "../kernels/pool.ts";
import { ColumnSumPlan, SumPlan } from "../kernels/reduce.ts";
import { Rng } from "./rng.ts";
import type { Batch, TaskInput, TaskOutput } from "./tasks/task.ts";
import { type Tensor, TensorPool } from "./tensor.ts";

/** The expert non-linearity of the `"attention"` architecture: `f` in `f(x W_V)`. */
export type ExpertFn = "linear" | "relu" | "gelu";

/** Everything that fixes a model's shapes and behaviour. */
export interface ModelConfig {
  /** `"transformer"` (default) or the paper's single `"attention"` layer. */
  arch: "transformer" | "attention";
  /** What the model reads (the task's input). */
  input: TaskInput;
  /** What the model predicts (the task's output). */
  output: TaskOutput;
  /** Positions per sequence. */
  seqLen: number;
  /** Residual width C (transformer). For `"attention"`, the input dimension. */
  width: number;
  /** Attention heads H; the head dimension is `width / heads` (transformer). */
  heads: number;
  /** Transformer blocks. */
  layers: number;
  /** Hidden width of the MLP as a multiple of `width`. */
  mlpRatio: number;
  /** The attention activation: the switch sigmax compares. */
  attention: Activation;
  /** Causal masking. */
  causal: boolean;
  /** LayerNorm over each head's queries and keys before attention. */
  qkNorm: boolean;
  /** Learned position embeddings (transformer). */
  positions: boolean;
  /** `"attention"` only: the expert non-linearity. */
  expert: ExpertFn;
  /** `"attention"` only: per-head query/key and value dimension. */
  headDim: number;
}

/** A named parameter with its gradient and AdamW moments. */
export interface Param {
  name: string;
  shape: number[];
  /** Whether AdamW decays it (matrices yes; biases, norms and embeddings no). */
  decay: boolean;
  value: Tensor;
  grad: Tensor;
  m: Tensor;
  v: Tensor;
  /** Initial values, drawn from the seed on the CPU. */
  init: Float32Array<ArrayBuffer>;
}

/** Fills in defaults and checks that the config describes a model sigmax can build. */
export function resolveModelConfig(
  config: Partial<ModelConfig> & Pick<ModelConfig, "input" | "output" | "seqLen">,
): ModelConfig {
  const arch = config.arch ?? "transformer";
  const defaults: ModelConfig = {
    arch,
    input: config.input,
    output: config.output,
    seqLen: config.seqLen,
    width: config.input.kind === "vectors" && arch === "attention" ? config.input.dim : 32,
    heads: arch === "attention" ? 1 : 2,
    layers: 2,
    mlpRatio: 4,
    attention: "softmax",
    causal: false,
    qkNorm: false,
    positions: arch === "transformer",
    expert: "linear",
    headDim: config.input.kind === "vectors" ? config.input.dim : 16,
  };
  const c: ModelConfig = { ...defaults };
  for (const [key, value] of Object.entries(config)) {
    if (!(key in defaults)) {
      throw new RangeError(`model config has no option ${JSON.stringify(key)}`);
    }
    if (value !== undefined) (c as unknown as Record<string, unknown>)[key] = value;
  }
  const positiveInt = (name: keyof ModelConfig, value: unknown) => {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
      throw new RangeError(`model.${name} must be a positive integer, got ${String(value)}`);
    }
  };
  for (const name of ["seqLen", "width", "heads", "layers", "mlpRatio", "headDim"] as const) {
    positiveInt(name, c[name]);
  }
  if (c.arch !== "transformer" && c.arch !== "attention") {
    throw new RangeError(`model.arch must be "transformer" or "attention", got ${String(c.arch)}`);
  }
  if (c.attention !== "softmax" && c.attention !== "sigmoid") {
    throw new RangeError(`attention must be "softmax" or "sigmoid", got ${String(c.attention)}`);
  }
  if (!["linear", "relu", "gelu"].includes(c.expert)) {
    throw new RangeError(`model.expert must be linear, relu or gelu, got ${String(c.expert)}`);
  }
  if (c.arch === "transformer") {
    if (c.width % c.heads !== 0) {
      throw new RangeError(
        `heads (${c.heads}) must divide the model width (${c.width}): each head gets width/heads dimensions`,
      );
    }
    if (c.width / c.heads > MAX_HEAD_DIM) {
      throw new RangeError(`width/heads must be at most ${MAX_HEAD_DIM}, got ${c.width / c.heads}`);
    }
  } else {
    if (c.input.kind !== "vectors") {
      throw new RangeError(`the "attention" architecture needs vector inputs (the teacher task)`);
    }
    if (c.output.kind !== "regression") {
      throw new RangeError(
        `the "attention" architecture needs a regression output (the teacher task)`,
      );
    }
    if (c.width !== c.input.dim) {
      throw new RangeError(`model.width must equal the input dim ${c.input.dim} for "attention"`);
    }
    if (c.headDim !== c.output.dim) {
      throw new RangeError(
        `model.headDim (${c.headDim}) must equal the output dim (${c.output.dim}): the fused kernels ` +
          `use one head dimension for queries, keys and values`,
      );
    }
    if (c.headDim > MAX_HEAD_DIM) {
      throw new RangeError(`model.headDim must be at most ${MAX_HEAD_DIM}, got ${c.headDim}`);
    }
  }
  return c;
}

/** Classes (or regression dimensions) per output row. */
export function outputWidth(output: TaskOutput): number {
  return output.kind === "regression" ? output.dim : output.classes;
}

/** Rows of the model's output: one per position, or one per sequence for seq-class. */
export function outputRows(output: TaskOutput, batch: number, seqLen: number): number {
  return output.kind === "seq-class" ? batch : batch * seqLen;
}

/** A model's parameters on the GPU. Build graphs for a batch size with {@linkcode Model.graph}. */
export class Model {
  readonly params: Param[] = [];
  readonly #byName = new Map<string, Param>();

  private constructor(
    readonly device: GPUDevice,
    readonly config: ModelConfig,
    readonly pool: TensorPool,
  ) {}

  /** Allocates and initialises the parameters from `seed` (the same for either activation). */
  static create(device: GPUDevice, config: ModelConfig, seed: number): Model {
    const model = new Model(device, config, new TensorPool(device));
    const rng = new Rng(seed).fork(0x1417);
    const c = config;
    const add = (
      name: string,
      shape: number[],
      decay: boolean,
      init: (n: number) => Float32Array<ArrayBuffer>,
    ) => {
      const size = shape.reduce((a, b) => a * b, 1);
      const values = init(size);
      const param: Param = {
        name,
        shape,
        decay,
        init: values,
        value: model.pool.upload(values, shape, name),
        grad: model.pool.acquire(shape, `${name}.grad`),
        m: model.pool.upload(new Float32Array(size), shape, `${name}.m`),
        v: model.pool.upload(new Float32Array(size), shape, `${name}.v`),
      };
      model.params.push(param);
      model.#byName.set(name, param);
    };
    const normal = (std: number) => (n: number) => rng.normals(n, std);
    const zeros = (n: number) => new Float32Array(n);
    const ones = (n: number) => new Float32Array(n).fill(1);
    if (c.arch === "attention") {
      const d = c.width;
      const hd = c.heads * c.headDim;
      add("wq", [d, hd], true, normal(1 / Math.sqrt(d)));
      add("wk", [d, hd], true, normal(1 / Math.sqrt(d)));
      add("wv", [d, hd], true, normal(1 / Math.sqrt(d)));
      return model;
    }
    const C = c.width;
    const D = C / c.heads;
    const hidden = C * c.mlpRatio;
    const residualStd = (fanIn: number) => 1 / Math.sqrt(fanIn) / Math.sqrt(2 * c.layers);
    if (c.input.kind === "tokens") {
      add("wte", [c.input.vocab, C], false, normal(0.1));
    } else {
      add("w_in", [c.input.dim, C], true, normal(1 / Math.sqrt(c.input.dim)));
      add("b_in", [C], false, zeros);
    }
    if (c.positions) add("wpe", [c.seqLen, C], false, normal(0.1));
    for (let l = 0; l < c.layers; l++) {
      const p = `h${l}.`;
      add(p + "ln1.g", [C], false, ones);
      add(p + "ln1.b", [C], false, zeros);
      for (const w of ["q", "k", "v"]) {
        add(p + `w${w}`, [C, C], true, normal(1 / Math.sqrt(C)));
        add(p + `b${w}`, [C], false, zeros);
      }
      if (c.qkNorm) {
        add(p + "qn.g", [D], false, ones);
        add(p + "qn.b", [D], false, zeros);
        add(p + "kn.g", [D], false, ones);
        add(p + "kn.b", [D], false, zeros);
      }
      add(p + "wo", [C, C], true, normal(residualStd(C)));
      add(p + "bo", [C], false, zeros);
      add(p + "ln2.g", [C], false, ones);
      add(p + "ln2.b", [C], false, zeros);
      add(p + "w1", [C, hidden], true, normal(1 / Math.sqrt(C)));
      add(p + "b1", [hidden], false, zeros);
      add(p + "w2", [hidden, C], true, normal(residualStd(hidden)));
      add(p + "b2", [C], false, zeros);
    }
    add("lnf.g", [C], false, ones);
    add("lnf.b", [C], false, zeros);
    const out = outputWidth(c.output);
    add("w_head", [C, out], true, normal(1 / Math.sqrt(C)));
    add("b_head", [out], false, zeros);
    return model;
  }

  /** The parameter called `name` (throws if there is none). */
  param(name: string): Param {
    const p = this.#byName.get(name);
    if (!p) throw new RangeError(`the model has no parameter ${name}`);
    return p;
  }

  /** Number of scalar parameters. */
  get parameterCount(): number {
    return this.params.reduce((n, p) => n + p.value.size, 0);
  }

  /** A forward (and, with `backward`, backward) graph for batches of `batch` sequences. */
  graph(batch: number, options: { backward: boolean }): Promise<Graph> {
    return Graph.create(this, batch, options.backward);
  }

  /** Frees every parameter and moment buffer. */
  destroy(): void {
    this.pool.destroy();
  }
}

// ---------------------------------------------------------------------------
// Layers: each owns its plans and records its forward and backward passes.

/**
 * `y = x·W (+ b)` for x `[rows, inDim]`, W `[inDim, outDim]`: the bias is
 * added by the product's own dispatch, and the weight gradient's dispatch
 * (`xᵀ·dy`) also writes the bias gradient (the column sums of dy).
 */
class Linear {
  private constructor(
    readonly fwd: MatmulPlan,
    readonly dx: MatmulPlan | undefined,
    readonly dw: MatmulPlan | undefined,
  ) {}

  static async create(
    device: GPUDevice,
    rows: number,
    inDim: number,
    outDim: number,
    options: { bias: boolean; backward: boolean; needDx: boolean },
  ): Promise<Linear> {
    const { bias, backward, needDx } = options;
    const [fwd, dx, dw] = await Promise.all([
      MatmulPlan.create(device, { batch: 1, m: rows, n: outDim, k: inDim }, 1, { bias }),
      backward && needDx
        ? MatmulPlan.create(device, { batch: 1, m: rows, n: inDim, k: outDim, transB: true })
        : undefined,
      backward
        ? MatmulPlan.create(
          device,
          { batch: 1, m: inDim, n: outDim, k: rows, transA: true },
          1,
          { columnSums: bias },
        )
        : undefined,
    ]);
    return new Linear(fwd, dx, dw);
  }

  forward(enc: GPUCommandEncoder, x: Tensor, w: Param, b: Param | undefined, y: Tensor): void {
    this.fwd.encode(enc, x.buffer, w.value.buffer, y.buffer, { bias: b?.value.buffer });
  }

  /** Writes dW (and db), and dx when a buffer is given. */
  backward(
    enc: GPUCommandEncoder,
    x: Tensor,
    w: Param,
    b: Param | undefined,
    dy: Tensor,
    dx: Tensor | undefined,
  ): void {
    this.dw!.encode(enc, x.buffer, dy.buffer, w.grad.buffer, { columnSums: b?.grad.buffer });
    if (dx) this.dx!.encode(enc, dy.buffer, w.value.buffer, dx.buffer);
  }

  destroy(): void {
    for (const p of [this.fwd, this.dx, this.dw]) p?.destroy();
  }
}

/** A LayerNorm with its kept statistics. */
class Norm {
  private constructor(readonly plan: LayerNormPlan, readonly mean: Tensor, readonly rstd: Tensor) {}

  static async create(
    device: GPUDevice,
    pool: TensorPool,
    rows: number,
    width: number,
    label: string,
  ): Promise<Norm> {
    const plan = await LayerNormPlan.create({ rows, width }, { device });
    return new Norm(
      plan,
      pool.acquire([rows], `${label}.mean`),
      pool.acquire([rows], `${label}.rstd`),
    );
  }

  forward(enc: GPUCommandEncoder, x: Tensor, g: Param, b: Param, y: Tensor): void {
    this.plan.encodeForward(enc, {
      x: x.buffer,
      gamma: g.value.buffer,
      beta: b.value.buffer,
      y: y.buffer,
      mean: this.mean.buffer,
      rstd: this.rstd.buffer,
    });
  }

  backward(enc: GPUCommandEncoder, x: Tensor, g: Param, b: Param, dy: Tensor, dx: Tensor): void {
    this.plan.encodeBackward(enc, {
      x: x.buffer,
      gamma: g.value.buffer,
      dy: dy.buffer,
      mean: this.mean.buffer,
      rstd: this.rstd.buffer,
      dx: dx.buffer,
      dgamma: g.grad.buffer,
      dbeta: b.grad.buffer,
    });
  }

  release(pool: TensorPool): void {
    pool.release(this.mean);
    pool.release(this.rstd);
    this.plan.destroy();
  }
}

/** Activations of one transformer block, kept for its backward pass. */
interface BlockActs {
  x: Tensor; // block input [N, C] (residual stream)
  ln1: Norm;
  h1: Tensor; // LN1(x)
  q: Tensor; // [N, C] = [B, S, H, D]
  k: Tensor;
  v: Tensor;
  qh: Tensor; // [B, H, S, D]
  kh: Tensor;
  vh: Tensor;
  qn?: Norm; // QK-norm statistics over qh, kh rows
  kn?: Norm;
  qhn?: Tensor; // normalised qh, kh fed to attention
  khn?: Tensor;
  oh: Tensor; // attention output [B, H, S, D]
  lse: Tensor; // softmax row statistics [B, H, S]
  o: Tensor; // [N, C] = [B, S, H, D]
  xmid: Tensor; // x + Wo·o
  ln2: Norm;
  h2: Tensor;
  fc: Tensor; // [N, hidden]
  act: Tensor; // gelu(fc)
}

/**
 * One model's forward (and backward) pass for a fixed batch size: every plan
 * built and every activation allocated up front, so a training step is just
 * recording passes into an encoder.
 */
export class Graph {
  /** Sequences per batch. */
  readonly batch: number;
  /** Input ids `[N]` (token inputs) or vectors `[N, dim]`. */
  readonly input: Tensor;
  /** Labels (i32) or regression targets (f32). */
  readonly target: Tensor;
  /** The model's output: logits or predictions `[rows, outputWidth]`. */
  readonly output: Tensor;
  /** Per-row losses whose sum is the batch's mean loss. */
  readonly losses: Tensor;
  /** `[1]`: the batch's mean loss, after {@linkcode Graph.encodeLoss}. */
  readonly loss: Tensor;
  readonly #model: Model;
  readonly #backward: boolean;
  readonly #temps: Tensor[] = [];
  readonly #destroyers: { destroy(): void }[] = [];
  readonly #norms: Norm[] = [];
  #encodeForward!: (enc: GPUCommandEncoder) => void;
  #encodeBackward!: (enc: GPUCommandEncoder) => void;
  #encodeLoss!: (enc: GPUCommandEncoder) => void;

  private constructor(model: Model, batch: number, backward: boolean) {
    this.#model = model;
    this.batch = batch;
    this.#backward = backward;
    const c = model.config;
    const N = batch * c.seqLen;
    const inputShape = c.input.kind === "tokens" ? [N] : [N, c.input.dim];
    this.input = this.#temp(inputShape, "input", c.input.kind === "tokens" ? "i32" : "f32");
    const rows = outputRows(c.output, batch, c.seqLen);
    const width = outputWidth(c.output);
    this.target = c.output.kind === "regression"
      ? this.#temp([rows, width], "target")
      : this.#temp([rows], "labels", "i32");
    this.output = this.#temp([rows, width], "output");
    this.losses = this.#temp(c.output.kind === "regression" ? [rows * width] : [rows], "losses");
    this.loss = this.#temp([1], "loss");
  }

  #temp(shape: number[], label: string, dtype: "f32" | "i32" = "f32"): Tensor {
    const t = this.#model.pool.acquire(shape, label, dtype);
    this.#temps.push(t);
    return t;
  }

  #own<T extends { destroy(): void }>(plan: T): T {
    this.#destroyers.push(plan);
    return plan;
  }

  static async create(model: Model, batch: number, backward: boolean): Promise<Graph> {
    if (!Number.isInteger(batch) || batch < 1) {
      throw new RangeError(`batch size must be a positive integer, got ${batch}`);
    }
    const graph = new Graph(model, batch, backward);
    if (model.config.arch === "attention") await graph.#buildAttentionLayer();
    else await graph.#buildTransformer();
    await graph.#buildLoss();
    return graph;
  }

  /** Uploads a batch of exactly {@linkcode Graph.batch} sequences (inputs and targets). */
  upload(data: Batch): void {
    const c = this.#model.config;
    const queue = this.#model.device.queue;
    if (data.size !== this.batch) {
      throw new RangeError(
        `batch holds ${data.size} sequences, the graph was built for ${this.batch}`,
      );
    }
    if (c.input.kind === "tokens") {
      const tokens = data.tokens;
      if (!tokens || tokens.length !== this.input.size) {
        throw new RangeError(`batch.tokens must hold ${this.input.size} ids`);
      }
      for (let i = 0; i < tokens.length; i++) {
        if (!(tokens[i] >= 0 && tokens[i] < c.input.vocab)) {
          throw new RangeError(`token id ${tokens[i]} at ${i} is outside [0, ${c.input.vocab})`);
        }
      }
      queue.writeBuffer(this.input.buffer, 0, tokens as Int32Array<ArrayBuffer>);
    } else {
      if (!data.inputs || data.inputs.length !== this.input.size) {
        throw new RangeError(`batch.inputs must hold ${this.input.size} values`);
      }
      queue.writeBuffer(this.input.buffer, 0, data.inputs as Float32Array<ArrayBuffer>);
    }
    if (c.output.kind === "regression") {
      if (!data.targets || data.targets.length !== this.target.size) {
        throw new RangeError(`batch.targets must hold ${this.target.size} values`);
      }
      queue.writeBuffer(this.target.buffer, 0, data.targets as Float32Array<ArrayBuffer>);
    } else {
      if (!data.labels || data.labels.length !== this.target.size) {
        throw new RangeError(`batch.labels must hold ${this.target.size} labels`);
      }
      queue.writeBuffer(this.target.buffer, 0, data.labels as Int32Array<ArrayBuffer>);
    }
  }

  /** Records the forward pass: inputs → {@linkcode Graph.output}. */
  encodeForward(enc: GPUCommandEncoder): void {
    this.#encodeForward(enc);
  }

  /** Records the loss (into {@linkcode Graph.loss}) and the gradient of the output. */
  encodeLoss(enc: GPUCommandEncoder): void {
    this.#encodeLoss(enc);
  }

  /** Records the backward pass: overwrites every parameter's gradient. Needs {@linkcode Graph.encodeLoss} first. */
  encodeBackward(enc: GPUCommandEncoder): void {
    if (!this.#backward) throw new TypeError("this graph was built without the backward pass");
    this.#encodeBackward(enc);
  }

  /** Returns the activations to the pool and frees the plans. */
  destroy(): void {
    for (const p of this.#destroyers) p.destroy();
    for (const n of this.#norms) n.release(this.#model.pool);
    for (const t of this.#temps) this.#model.pool.release(t);
  }

  // -------------------------------------------------------------------------

  /** Gradient of the loss with respect to the output, written by the loss kernel. */
  #dOutput?: Tensor;

  async #buildLoss(): Promise<void> {
    const device = this.#model.device;
    const c = this.#model.config;
    const sum = this.#own(await SumPlan.create(device, { length: this.losses.size }));
    this.#dOutput = this.#temp([...this.output.shape], "d_output");
    const dOutput = this.#dOutput;
    if (c.output.kind === "regression") {
      const mse = this.#own(await MsePlan.create(device, { length: this.output.size }));
      this.#encodeLoss = (enc) => {
        mse.encode(enc, {
          pred: this.output.buffer,
          target: this.target.buffer,
          losses: this.losses.buffer,
          dpred: dOutput.buffer,
        });
        sum.encode(enc, { x: this.losses.buffer, out: this.loss.buffer });
      };
    } else {
      const ce = this.#own(
        await CrossEntropyPlan.create(device, {
          rows: this.output.shape[0],
          classes: this.output.shape[1],
        }),
      );
      this.#encodeLoss = (enc) => {
        ce.encode(enc, {
          logits: this.output.buffer,
          targets: this.target.buffer,
          losses: this.losses.buffer,
          dlogits: dOutput.buffer,
        });
        sum.encode(enc, { x: this.losses.buffer, out: this.loss.buffer });
      };
    }
  }

  /** The paper's single attention layer: Y = Σ_h attn_h(X W_Q, X W_K, f(X W_V)). */
  async #buildAttentionLayer(): Promise<void> {
    const model = this.#model;
    const device = model.device;
    const c = model.config;
    const B = this.batch;
    const S = c.seqLen;
    const N = B * S;
    const H = c.heads;
    const D = c.headDim;
    const d = c.width;
    const backward = this.#backward;
    const [wq, wk, wv] = ["wq", "wk", "wv"].map((n) => model.param(n));
    const proj = this.#own(
      await Linear.create(device, N, d, H * D, { bias: false, backward, needDx: false }),
    );
    const q = this.#temp([N, H * D], "q");
    const k = this.#temp([N, H * D], "k");
    const vPre = this.#temp([N, H * D], "v_pre");
    const v = c.expert === "linear" ? vPre : this.#temp([N, H * D], "v");
    const expert = c.expert === "linear"
      ? undefined
      : this.#own(await UnaryPlan.create(device, { length: N * H * D, fn: c.expert }));
    const toHeads = this.#own(await PermutePlan.create(device, { outer: B, a: S, b: H, inner: D }));
    const fromHeads = this.#own(
      await PermutePlan.create(device, { outer: B, a: H, b: S, inner: D }),
    );
    const [qh, kh, vh, oh] = ["qh", "kh", "vh", "oh"].map((n) => this.#temp([B, H, S, D], n));
    const lse = this.#temp([B, H, S], "lse");
    const o = this.#temp([N, H * D], "o");
    const attn = this.#own(
      await AttentionPlan.create(
        { batch: B, heads: H, seqLen: S, headDim: D },
        { activation: c.attention, causal: c.causal, device },
        { backward },
      ),
    );
    // Σ over heads: o is [N, H, D], the output [N, D]; its backward broadcasts over H.
    const headSum = this.#own(await PoolPlan.create(device, { outer: N, middle: H, inner: D }));
    const attnBuffers = {
      q: qh.buffer,
      k: kh.buffer,
      v: vh.buffer,
      out: oh.buffer,
      lse: c.attention === "softmax" ? lse.buffer : undefined,
    };
    this.#encodeForward = (enc) => {
      proj.fwd.encode(enc, this.input.buffer, wq.value.buffer, q.buffer);
      proj.fwd.encode(enc, this.input.buffer, wk.value.buffer, k.buffer);
      proj.fwd.encode(enc, this.input.buffer, wv.value.buffer, vPre.buffer);
      expert?.encodeForward(enc, { x: vPre.buffer, y: v.buffer });
      toHeads.encode(enc, { src: q.buffer, dst: qh.buffer });
      toHeads.encode(enc, { src: k.buffer, dst: kh.buffer });
      toHeads.encode(enc, { src: v.buffer, dst: vh.buffer });
      attn.encodeForward(enc, attnBuffers);
      fromHeads.encode(enc, { src: oh.buffer, dst: o.buffer });
      headSum.encodeSum(enc, o.buffer, this.output.buffer);
    };
    if (!backward) return;
    const dO = this.#temp([N, H * D], "d_o");
    const [dqh, dkh, dvh, doh] = ["d_qh", "d_kh", "d_vh", "d_oh"].map((n) =>
      this.#temp([B, H, S, D], n)
    );
    const dq = this.#temp([N, H * D], "d_q");
    const dk = this.#temp([N, H * D], "d_k");
    const dv = this.#temp([N, H * D], "d_v");
    const dvPre = c.expert === "linear" ? dv : this.#temp([N, H * D], "d_v_pre");
    this.#encodeBackward = (enc) => {
      headSum.encodeBroadcast(enc, this.#dOutput!.buffer, dO.buffer);
      toHeads.encode(enc, { src: dO.buffer, dst: doh.buffer });
      attn.encodeBackward(enc, {
        ...attnBuffers,
        dOut: doh.buffer,
        dq: dqh.buffer,
        dk: dkh.buffer,
        dv: dvh.buffer,
      });
      fromHeads.encode(enc, { src: dqh.buffer, dst: dq.buffer });
      fromHeads.encode(enc, { src: dkh.buffer, dst: dk.buffer });
      fromHeads.encode(enc, { src: dvh.buffer, dst: dv.buffer });
      expert?.encodeBackward(enc, { x: vPre.buffer, dy: dv.buffer, dx: dvPre.buffer });
      proj.backward(enc, this.input, wq, undefined, dq, undefined);
      proj.backward(enc, this.input, wk, undefined, dk, undefined);
      proj.backward(enc, this.input, wv, undefined, dvPre, undefined);
    };
  }

  async #buildTransformer(): Promise<void> {
    const model = this.#model;
    const device = model.device;
    const pool = model.pool;
    const c = model.config;
    const backward = this.#backward;
    const B = this.batch;
    const S = c.seqLen;
    const N = B * S;
    const C = c.width;
    const H = c.heads;
    const D = C / H;
    const hidden = C * c.mlpRatio;
    const P = (name: string) => model.param(name);
    const norm = async (rows: number, width: number, label: string) => {
      const n = await Norm.create(device, pool, rows, width, label);
      this.#norms.push(n);
      return n;
    };

    // Embedding.
    const x0 = this.#temp([N, C], "x0");
    const embed = c.input.kind === "tokens"
      ? this.#own(await EmbeddingPlan.create(device, { tokens: N, vocab: c.input.vocab, width: C }))
      : undefined;
    const inProj = c.input.kind === "vectors"
      ? this.#own(
        await Linear.create(device, N, c.input.dim, C, { bias: true, backward, needDx: false }),
      )
      : undefined;
    const addPos = c.positions
      ? this.#own(await BiasAddPlan.create(device, { rows: B, width: S * C }))
      : undefined;
    const dPos = c.positions && backward
      ? this.#own(await ColumnSumPlan.create(device, { rows: B, width: S * C }))
      : undefined;

    // Shared per-shape plans (every block has the same shapes).
    const linC = this.#own(
      await Linear.create(device, N, C, C, { bias: true, backward, needDx: true }),
    );
    const linUp = this.#own(
      await Linear.create(device, N, C, hidden, { bias: true, backward, needDx: true }),
    );
    const linDown = this.#own(
      await Linear.create(device, N, hidden, C, { bias: true, backward, needDx: true }),
    );
    const gelu = this.#own(await UnaryPlan.create(device, { length: N * hidden, fn: "gelu" }));
    const toHeads = this.#own(await PermutePlan.create(device, { outer: B, a: S, b: H, inner: D }));
    const fromHeads = this.#own(
      await PermutePlan.create(device, { outer: B, a: H, b: S, inner: D }),
    );
    const add = this.#own(await AddPlan.create(device, N * C));
    const attn = this.#own(
      await AttentionPlan.create(
        { batch: B, heads: H, seqLen: S, headDim: D },
        { activation: c.attention, causal: c.causal, device },
        { backward },
      ),
    );

    const blocks: BlockActs[] = [];
    let x = x0;
    for (let l = 0; l < c.layers; l++) {
      const t = (shape: number[], name: string) => this.#temp(shape, `h${l}.${name}`);
      const heads = [B, H, S, D];
      const a: BlockActs = {
        x,
        ln1: await norm(N, C, `h${l}.ln1`),
        h1: t([N, C], "h1"),
        q: t([N, C], "q"),
        k: t([N, C], "k"),
        v: t([N, C], "v"),
        qh: t(heads, "qh"),
        kh: t(heads, "kh"),
        vh: t(heads, "vh"),
        oh: t(heads, "oh"),
        lse: t([B, H, S], "lse"),
        o: t([N, C], "o"),
        xmid: t([N, C], "xmid"),
        ln2: await norm(N, C, `h${l}.ln2`),
        h2: t([N, C], "h2"),
        fc: t([N, hidden], "fc"),
        act: t([N, hidden], "act"),
      };
      if (c.qkNorm) {
        a.qn = await norm(B * H * S, D, `h${l}.qn`);
        a.kn = await norm(B * H * S, D, `h${l}.kn`);
        a.qhn = t(heads, "qhn");
        a.khn = t(heads, "khn");
      }
      blocks.push(a);
      x = t([N, C], "out");
    }
    const xL = x;
    const lnf = await norm(N, C, "lnf");
    const hf = this.#temp([N, C], "hf");
    const seqClass = c.output.kind === "seq-class";
    const outW = outputWidth(c.output);
    const headRows = seqClass ? B : N;
    const head = this.#own(
      await Linear.create(device, headRows, C, outW, { bias: true, backward, needDx: true }),
    );
    // Mean over positions: h is [B, S, C], pooled [B, C]; its backward broadcasts over S.
    let pooled: Tensor | undefined;
    let meanPool: PoolPlan | undefined;
    if (seqClass) {
      pooled = this.#temp([B, C], "pooled");
      meanPool = this.#own(
        await PoolPlan.create(device, { outer: B, middle: S, inner: C, scale: 1 / S }),
      );
    }

    const attnBuffers = (a: BlockActs) => ({
      q: (a.qhn ?? a.qh).buffer,
      k: (a.khn ?? a.kh).buffer,
      v: a.vh.buffer,
      out: a.oh.buffer,
      lse: c.attention === "softmax" ? a.lse.buffer : undefined,
    });

    this.#encodeForward = (enc) => {
      if (embed) {
        embed.encodeForward(enc, {
          ids: this.input.buffer,
          table: P("wte").value.buffer,
          y: x0.buffer,
        });
      } else {
        inProj!.forward(enc, this.input, P("w_in"), P("b_in"), x0);
      }
      addPos?.encode(enc, { x: x0.buffer, bias: P("wpe").value.buffer });
      blocks.forEach((a, l) => {
        const p = (n: string) => P(`h${l}.${n}`);
        const next = l + 1 < blocks.length ? blocks[l + 1].x : xL;
        a.ln1.forward(enc, a.x, p("ln1.g"), p("ln1.b"), a.h1);
        linC.forward(enc, a.h1, p("wq"), p("bq"), a.q);
        linC.forward(enc, a.h1, p("wk"), p("bk"), a.k);
        linC.forward(enc, a.h1, p("wv"), p("bv"), a.v);
        toHeads.encode(enc, { src: a.q.buffer, dst: a.qh.buffer });
        toHeads.encode(enc, { src: a.k.buffer, dst: a.kh.buffer });
        toHeads.encode(enc, { src: a.v.buffer, dst: a.vh.buffer });
        if (a.qn) {
          a.qn.forward(enc, a.qh, p("qn.g"), p("qn.b"), a.qhn!);
          a.kn!.forward(enc, a.kh, p("kn.g"), p("kn.b"), a.khn!);
        }
        attn.encodeForward(enc, attnBuffers(a));
        fromHeads.encode(enc, { src: a.oh.buffer, dst: a.o.buffer });
        linC.forward(enc, a.o, p("wo"), p("bo"), a.xmid);
        add.encode(enc, { x: a.xmid.buffer, y: a.x.buffer });
        a.ln2.forward(enc, a.xmid, p("ln2.g"), p("ln2.b"), a.h2);
        linUp.forward(enc, a.h2, p("w1"), p("b1"), a.fc);
        gelu.encodeForward(enc, { x: a.fc.buffer, y: a.act.buffer });
        linDown.forward(enc, a.act, p("w2"), p("b2"), next);
        add.encode(enc, { x: next.buffer, y: a.xmid.buffer });
      });
      lnf.forward(enc, xL, P("lnf.g"), P("lnf.b"), hf);
      if (seqClass) {
        meanPool!.encodeSum(enc, hf.buffer, pooled!.buffer);
        head.forward(enc, pooled!, P("w_head"), P("b_head"), this.output);
      } else {
        head.forward(enc, hf, P("w_head"), P("b_head"), this.output);
      }
    };
    if (!backward) return;

    // Gradient buffers: dx carries d(residual stream); the rest are scratch.
    const dx = this.#temp([N, C], "d_x");
    const dh = this.#temp([N, C], "d_h");
    const dBranch = this.#temp([N, C], "d_branch");
    const dAct = this.#temp([N, hidden], "d_act");
    const dFc = this.#temp([N, hidden], "d_fc");
    const dO = this.#temp([N, C], "d_o");
    const dqkv = [this.#temp([N, C], "d_q"), this.#temp([N, C], "d_k"), this.#temp([N, C], "d_v")];
    const heads = [B, H, S, D];
    const [doh, dqh, dkh, dvh] = ["d_oh", "d_qh", "d_kh", "d_vh"].map((n) => this.#temp(heads, n));
    const dqRaw = c.qkNorm ? this.#temp(heads, "d_qh_raw") : dqh;
    const dkRaw = c.qkNorm ? this.#temp(heads, "d_kh_raw") : dkh;
    const dPooled = seqClass ? this.#temp([B, C], "d_pooled") : undefined;

    this.#encodeBackward = (enc) => {
      const dOut = this.#dOutput!;
      if (seqClass) {
        head.backward(enc, pooled!, P("w_head"), P("b_head"), dOut, dPooled);
        meanPool!.encodeBroadcast(enc, dPooled!.buffer, dh.buffer);
      } else {
        head.backward(enc, hf, P("w_head"), P("b_head"), dOut, dh);
      }
      lnf.backward(enc, xL, P("lnf.g"), P("lnf.b"), dh, dx);
      for (let l = blocks.length - 1; l >= 0; l--) {
        const a = blocks[l];
        const p = (n: string) => P(`h${l}.${n}`);
        // MLP branch: next = xmid + W2·gelu(W1·LN2(xmid)).
        linDown.backward(enc, a.act, p("w2"), p("b2"), dx, dAct);
        gelu.encodeBackward(enc, { x: a.fc.buffer, dy: dAct.buffer, dx: dFc.buffer });
        linUp.backward(enc, a.h2, p("w1"), p("b1"), dFc, dh);
        a.ln2.backward(enc, a.xmid, p("ln2.g"), p("ln2.b"), dh, dBranch);
        add.encode(enc, { x: dx.buffer, y: dBranch.buffer }); // dx is now d(xmid)
        // Attention branch: xmid = x + Wo·attn(LN1(x)).
        linC.backward(enc, a.o, p("wo"), p("bo"), dx, dO);
        toHeads.encode(enc, { src: dO.buffer, dst: doh.buffer });
        attn.encodeBackward(enc, {
          ...attnBuffers(a),
          dOut: doh.buffer,
          dq: dqh.buffer,
          dk: dkh.buffer,
          dv: dvh.buffer,
        });
        if (a.qn) {
          a.qn.backward(enc, a.qh, p("qn.g"), p("qn.b"), dqh, dqRaw);
          a.kn!.backward(enc, a.kh, p("kn.g"), p("kn.b"), dkh, dkRaw);
        }
        fromHeads.encode(enc, { src: dqRaw.buffer, dst: dqkv[0].buffer });
        fromHeads.encode(enc, { src: dkRaw.buffer, dst: dqkv[1].buffer });
        fromHeads.encode(enc, { src: dvh.buffer, dst: dqkv[2].buffer });
        // d(h1) = Σ over q, k, v of dY·Wᵀ: the first into dh, the others added.
        linC.backward(enc, a.h1, p("wq"), p("bq"), dqkv[0], dh);
        linC.backward(enc, a.h1, p("wk"), p("bk"), dqkv[1], dBranch);
        add.encode(enc, { x: dh.buffer, y: dBranch.buffer });
        linC.backward(enc, a.h1, p("wv"), p("bv"), dqkv[2], dBranch);
        add.encode(enc, { x: dh.buffer, y: dBranch.buffer });
        a.ln1.backward(enc, a.x, p("ln1.g"), p("ln1.b"), dh, dBranch);
        add.encode(enc, { x: dx.buffer, y: dBranch.buffer }); // dx is now d(block input)
      }
      if (addPos) dPos!.encode(enc, { x: dx.buffer, out: P("wpe").grad.buffer });
      if (embed) {
        embed.encodeBackward(enc, {
          ids: this.input.buffer,
          dy: dx.buffer,
          dtable: P("wte").grad.buffer,
        });
      } else {
        inProj!.backward(enc, this.input, P("w_in"), P("b_in"), dx, undefined);
      }
    };
  }
}
