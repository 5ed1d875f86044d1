/**
 * The teacher-student task of the paper this project grows from: Yan, Nguyen,
 * Akbarian, Ho and Rinaldo, "Sigmoid Self-Attention is Better than Softmax
 * Self-Attention: A Mixture-of-Experts Perspective" (arXiv:2502.00281), which
 * reads each row of an attention matrix as a mixture of experts whose gates are
 * the attention weights and whose experts are the (activated) value vectors.
 *
 * A fixed random attention layer (the teacher) maps inputs X ∈ ℝ^{L×dim}, rows
 * i.i.d. N(0, I), to Y ∈ ℝ^{L×outDim}:
 *
 * - per head h: W_Q,h, W_K,h ∈ ℝ^{dim×r}, W_V,h ∈ ℝ^{dim×outDim};
 * - scores s_ij = (x_i W_Q,h)·(x_j W_K,h) / √r (no mask: every position sees
 *   every position);
 * - weights w_ij = softmax_j(s_ij) for `"softmax"`, or σ(s_ij − ln L) for
 *   `"sigmoid"` (sigmax's attention convention: scale 1/√r, bias −ln(seqLen));
 * - Y_i = Σ_h Σ_j w^h_ij · e(x_j W_V,h), with the expert activation e linear,
 *   ReLU, or GELU (tanh form 0.5·u·(1 + tanh(√(2/π)·(u + 0.044715·u³)))),
 *   applied element-wise; heads are summed, there is no output projection.
 *
 * Teacher weights are drawn once from `teacherSeed`: entries of W_Q and W_K are
 * N(0, scoreStd/dim) and entries of W_V are N(0, 1/dim). For unit-variance
 * inputs each entry of x W_Q, x W_K and x W_V then has variance ≈ scoreStd
 * (resp. 1), and the scores s_ij have standard deviation ≈ scoreStd — O(1) for
 * the default scoreStd = 1, whatever dim and r are.
 *
 * Training targets are Y + N(0, noise²) per entry; test targets are the
 * noiseless Y*, so the test score is the function error
 *
 *   E = (1 / (testSize·L)) · Σ_sequences Σ_i ‖Ŷ_i − Y*_i‖²
 *
 * (squared error summed over the outDim outputs, averaged over positions and
 * sequences). `score()` returns exactly this sum and the number of positions;
 * on the train split it measures against the noisy targets (so its floor there
 * is outDim·noise²). Chance is the function error of predicting 0, i.e. the
 * mean of ‖Y*_i‖² over the test set.
 *
 * Over-specification, and what this task can test. In the papers' theory
 * (arXiv 2405.13997, 2410.11222, 2502.00281) the slow rates that separate
 * sigmoid from softmax gating belong to the least-squares estimator of an
 * *over-specified* mixture: more fitted experts than true ones, each with its
 * own gate, competing for gate mass, so that several fitted experts split a
 * true one (the cells of {@linkcode headVoronoiLoss} holding several heads).
 * 2502.00281 reads one attention head as such a mixture: row i mixes L
 * experts, one per key position j, with quadratic gates x_iᵀ A x_j and
 * experts W_V x_j, and every expert shares the one A and W_V. That mixture has
 * exactly L experts in teacher and student alike; a student head cannot hold
 * more experts than the teacher's, so one attention head is always exactly
 * specified in the theory's sense. The only place an attention student can
 * over-specify is across heads, and that is outside the theory: heads are
 * summed, not gated against each other (each softmax head normalises over
 * its own keys, a sigmoid head gates each entry on its own), so two student
 * heads that share one teacher head's work do not compete for its gate mass;
 * for linear experts only the sum of their value matrices is identified, a
 * flat direction of the least-squares problem rather than the singular
 * point the theorems' rates come from; and 2502.00281 leaves multi-head
 * attention to future work. So in sigmax: the attention-native teacher–student
 * study fits k = k* heads (the estimator study of an exactly specified
 * model; its function error has the parametric rate for both gates, so it is
 * a control of the estimator on the WebGPU kernels, not a test of the
 * over-specified theorems), and over-specification is studied where the
 * theory puts it, on the papers' mixture of experts in training/moe/. A
 * student with more heads than the teacher is reported as an
 * over-parameterised architecture, and its Voronoi loss over heads is our
 * adaptation of the papers' loss, not theirs.
 *
 * Data layout: test example `i` uses block `i` and train example `i` block
 * `-(i + 1)` of one {@linkcode Rng} cycle whose start is a hash of the seed,
 * each block exactly one example's draws long (inputs, then noise), so the
 * splits use disjoint streams, examples are independent of `n` and of each
 * other, and the test set is the same for every `n`.
 *
 * @module
 */

import { Rng } from "../rng.ts";
import { blockRng, checkIndices, intOption, mix32, seedOption, splitSizes } from "./common.ts";
import type {
  Batch,
  Metric,
  ModelView,
  ParameterErrors,
  Score,
  Split,
  Task,
  TaskOptions,
} from "./task.ts";

/** The teacher's attention activation. */
export type TeacherActivation = "softmax" | "sigmoid";

/** The teacher's expert (value) activation, applied element-wise to x_j W_V. */
export type TeacherExpert = "linear" | "relu" | "gelu";

/** Options of {@linkcode createTeacherTask}. */
export interface TeacherOptions extends TaskOptions {
  /** Positions per sequence L, an integer in [1, 1024]. Default 16. */
  seqLen?: number;
  /** Input dimension, an integer in [1, 1024]. Default 8. */
  dim?: number;
  /** Output dimension per position, an integer in [1, 1024]. Default `dim`. */
  outDim?: number;
  /** Query/key rank r of each teacher head, an integer in [1, 1024]. Default `dim`. */
  rank?: number;
  /** Teacher heads, an integer in [1, 16]. Default 1. */
  teacherHeads?: number;
  /** The teacher's attention activation. Default `"softmax"`. */
  teacherActivation?: TeacherActivation;
  /** The teacher's expert activation. Default `"linear"`. */
  expert?: TeacherExpert;
  /** Standard deviation of the training-target noise, a number in [0, 1000]. Default 0.1. */
  noise?: number;
  /** Approximate standard deviation of the teacher's scores, a number in (0, 100]. Default 1. */
  scoreStd?: number;
  /**
   * Seed of the teacher's weights, an integer in [0, 4294967295]. Default `seed`
   * (the weights are drawn from a stream salted apart from the data streams).
   */
  teacherSeed?: number;
}

/** One attention head's parameters, row-major f32. */
export interface AttentionHeadParams {
  /** `[dim·r]` query projection W_Q (row-major, dim rows). */
  wq: Float32Array;
  /** `[dim·r]` key projection W_K. */
  wk: Float32Array;
  /** `[dim·outDim]` value projection W_V. */
  wv: Float32Array;
}

/** What {@linkcode teacherForward} needs besides the inputs and the heads. */
export interface TeacherConfig {
  /** Positions L. */
  seqLen: number;
  /** Input dimension. */
  dim: number;
  /** Output dimension per position. */
  outDim: number;
  /** Attention activation. */
  activation: TeacherActivation;
  /** Expert activation. */
  expert: TeacherExpert;
}

/** The teacher task, with its teacher exposed for parameter-recovery metrics. */
export interface TeacherTask extends Task {
  /** The teacher's heads (do not modify). */
  readonly heads: readonly AttentionHeadParams[];
  /** The teacher's shape and activations. */
  readonly config: TeacherConfig;
  /** Query/key rank r of each teacher head. */
  readonly rank: number;
}

/** Parameter-recovery errors of a student attention layer, see {@linkcode parameterErrors}. */
export type { ParameterErrors };

/** Result of {@linkcode headVoronoiLoss}. */
export interface HeadVoronoiLoss {
  /** The loss: mass + single + multi. */
  value: number;
  /** Σ_j |Σ_{i∈𝒱_j} m_ij − 1|: each cell's value mass against the teacher head's (1). */
  mass: number;
  /** Cells holding one student head: Σ m_ij (a_ij + u_ij), first powers. */
  single: number;
  /** Cells holding several: Σ m_ij (a_ij^r + u_ij^r), r = {@linkcode voronoiPower}. */
  multi: number;
  /** Per teacher head j, the student heads in its Voronoi cell 𝒱_j (ascending). */
  cells: number[][];
}

const MAX_SIZE = 1024;
const MAX_HEADS = 16;
const TASK_SALT = 0x74656163; // "teac"
const WEIGHT_SALT = 0x77656967; // "weig"

interface Resolved extends TeacherConfig {
  seed: number;
  rank: number;
  heads: number;
  noise: number;
  scoreStd: number;
  teacherSeed: number;
}

function resolve(options: TeacherOptions): Resolved {
  const name = "teacher";
  const seed = seedOption(name, options.seed);
  const seqLen = intOption(name, "seqLen", options.seqLen, 16, 1, MAX_SIZE);
  const dim = intOption(name, "dim", options.dim, 8, 1, MAX_SIZE);
  const outDim = intOption(name, "outDim", options.outDim, dim, 1, MAX_SIZE);
  const rank = intOption(name, "rank", options.rank, dim, 1, MAX_SIZE);
  const heads = intOption(name, "teacherHeads", options.teacherHeads, 1, 1, MAX_HEADS);
  const activation = options.teacherActivation ?? "softmax";
  if (activation !== "softmax" && activation !== "sigmoid") {
    throw new RangeError(
      `${name}: teacherActivation must be "softmax" or "sigmoid", got ${activation}`,
    );
  }
  const expert = options.expert ?? "linear";
  if (expert !== "linear" && expert !== "relu" && expert !== "gelu") {
    throw new RangeError(`${name}: expert must be "linear", "relu" or "gelu", got ${expert}`);
  }
  const noise = options.noise ?? 0.1;
  if (typeof noise !== "number" || !(noise >= 0 && noise <= 1000)) {
    throw new RangeError(`${name}: noise must be a number in [0, 1000], got ${options.noise}`);
  }
  const scoreStd = options.scoreStd ?? 1;
  if (typeof scoreStd !== "number" || !(scoreStd > 0 && scoreStd <= 100)) {
    throw new RangeError(
      `${name}: scoreStd must be a number in (0, 100], got ${options.scoreStd}`,
    );
  }
  const teacherSeed = seedOption(name, options.teacherSeed ?? seed, "teacherSeed");
  return {
    seed,
    seqLen,
    dim,
    outDim,
    rank,
    heads,
    activation,
    expert,
    noise,
    scoreStd,
    teacherSeed,
  };
}

function drawHeads(o: Resolved): AttentionHeadParams[] {
  const rng = new Rng(mix32(mix32(o.teacherSeed) ^ WEIGHT_SALT));
  const gateStd = Math.sqrt(o.scoreStd / o.dim);
  const valueStd = Math.sqrt(1 / o.dim);
  const heads: AttentionHeadParams[] = [];
  for (let h = 0; h < o.heads; h++) {
    const wq = rng.normals(o.dim * o.rank, gateStd);
    const wk = rng.normals(o.dim * o.rank, gateStd);
    const wv = rng.normals(o.dim * o.outDim, valueStd);
    heads.push({ wq, wk, wv });
  }
  return heads;
}

/**
 * The teacher heads that {@linkcode createTeacherTask} would use for `options`
 * (fresh copies; validates the options the same way).
 */
export function teacherHeads(options: TeacherOptions): AttentionHeadParams[] {
  return drawHeads(resolve(options));
}

/**
 * Creates the teacher-student regression task (see the module documentation):
 * vector inputs of dimension `dim`, regression outputs of dimension `outDim`,
 * not causal. Metric `"function error"` (lower is better), chance = the error
 * of predicting 0 on the test set.
 *
 * Throws a `RangeError` naming the option for any option out of range; `n` and
 * `testSize` are limited by the length of the random cycle, (n + testSize)·2·L·(dim + outDim) ≤ 2³².
 */
export function createTeacherTask(options: TeacherOptions): TeacherTask {
  const name = "teacher";
  const o = resolve(options);
  const { seqLen: L, dim, outDim } = o;
  const stride = 2 * L * (dim + outDim); // normal() takes two draws: inputs, then noise
  const { testSize, n } = splitSizes(name, options, stride);
  const heads = drawHeads(o);
  const config: TeacherConfig = {
    seqLen: L,
    dim,
    outDim,
    activation: o.activation,
    expert: o.expert,
  };
  const base = mix32(mix32(o.seed) ^ TASK_SALT);

  const example = (
    split: Split,
    i: number,
    inputs: Float32Array,
    targets: Float32Array,
    b: number,
  ): void => {
    const rng = blockRng(base, split === "test" ? i : -(i + 1), stride);
    const x = inputs.subarray(b * L * dim, (b + 1) * L * dim);
    for (let p = 0; p < x.length; p++) x[p] = rng.normal();
    const y = teacherForward(x, heads, config); // from the f32 inputs the model sees
    const at = b * L * outDim;
    if (split === "test" || o.noise === 0) {
      targets.set(y, at);
    } else {
      for (let p = 0; p < y.length; p++) targets[at + p] = y[p] + o.noise * rng.normal();
    }
  };

  let chance: number | undefined;
  const testChance = (): number => {
    if (chance === undefined) {
      let total = 0;
      const inputs = new Float32Array(L * dim);
      const targets = new Float32Array(L * outDim);
      for (let i = 0; i < testSize; i++) {
        example("test", i, inputs, targets, 0);
        for (let p = 0; p < targets.length; p++) total += targets[p] * targets[p];
      }
      chance = total / (testSize * L);
    }
    return chance;
  };
  const metric: Metric = {
    name: "function error",
    higherIsBetter: false,
    /** Mean ‖Y*_i‖² over the test set, computed on first use. */
    get chance(): number {
      return testChance();
    },
  };

  return {
    name,
    seqLen: L,
    input: { kind: "vectors", dim },
    output: { kind: "regression", dim: outDim },
    causal: false,
    trainSize: n,
    testSize,
    metric,
    heads,
    config,
    rank: o.rank,
    model: { arch: "attention", expert: o.expert },
    async parameterErrors(model: ModelView): Promise<ParameterErrors | undefined> {
      const c = model.config;
      if (c.arch !== "attention") return undefined; // a transformer's heads are not the teacher's
      return parameterErrors(heads, await studentHeads(model), {
        dim: c.width,
        outDim: c.headDim,
        expert: o.expert,
      });
    },
    batch(split: Split, indices: ArrayLike<number>): Batch {
      const size = checkIndices(name, split, indices, n, testSize);
      const inputs = new Float32Array(size * L * dim);
      const targets = new Float32Array(size * L * outDim);
      for (let b = 0; b < size; b++) example(split, indices[b], inputs, targets, b);
      return { size, inputs, targets };
    },
    score(batch: Batch, outputs: Float32Array): Score {
      const targets = batch.targets;
      if (!targets || targets.length !== batch.size * L * outDim) {
        throw new RangeError(
          `${name}: score needs a batch with ${batch.size * L * outDim} targets`,
        );
      }
      if (outputs.length !== targets.length) {
        throw new RangeError(
          `${name}: outputs must have size·seqLen·outDim = ${targets.length} numbers, ` +
            `got ${outputs.length}`,
        );
      }
      let total = 0;
      for (let p = 0; p < targets.length; p++) {
        const d = outputs[p] - targets[p];
        total += d * d;
      }
      return { total, count: batch.size * L };
    },
  };
}

/** The expert activation e(u). GELU is the tanh approximation. */
export function expertActivation(expert: TeacherExpert, u: number): number {
  switch (expert) {
    case "linear":
      return u;
    case "relu":
      return u > 0 ? u : 0;
    case "gelu":
      return 0.5 * u * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (u + 0.044715 * u * u * u)));
  }
}

function headRank(head: AttentionHeadParams, dim: number, outDim: number, who: string): number {
  const r = head.wq.length / dim;
  if (!Number.isInteger(r) || r < 1 || head.wk.length !== head.wq.length) {
    throw new RangeError(
      `${who}: wq and wk must both have dim·r elements (dim = ${dim}), got ` +
        `${head.wq.length} and ${head.wk.length}`,
    );
  }
  if (head.wv.length !== dim * outDim) {
    throw new RangeError(
      `${who}: wv must have dim·outDim = ${dim * outDim} elements, got ${head.wv.length}`,
    );
  }
  return r;
}

/**
 * The `[L·L]` attention weights (row i = query, column j = key) of one head on
 * one sequence `x` (`[L·dim]`, row-major), in f64: softmax_j(s_ij) or
 * σ(s_ij − ln L), with s_ij = (x_i W_Q)·(x_j W_K)/√r and no mask.
 */
export function teacherAttentionWeights(
  x: ArrayLike<number>,
  head: AttentionHeadParams,
  config: Pick<TeacherConfig, "seqLen" | "dim" | "activation">,
): Float64Array {
  const { seqLen: L, dim } = config;
  if (x.length !== L * dim) {
    throw new RangeError(`teacher: x must have seqLen·dim = ${L * dim} elements, got ${x.length}`);
  }
  const r = head.wq.length / dim;
  if (!Number.isInteger(r) || r < 1 || head.wk.length !== head.wq.length) {
    throw new RangeError(`teacher: wq and wk must both have dim·r elements (dim = ${dim})`);
  }
  const q = project(x, head.wq, L, dim, r);
  const k = project(x, head.wk, L, dim, r);
  const scale = 1 / Math.sqrt(r);
  const bias = -Math.log(L);
  const w = new Float64Array(L * L);
  for (let i = 0; i < L; i++) {
    let max = -Infinity;
    for (let j = 0; j < L; j++) {
      let dot = 0;
      for (let c = 0; c < r; c++) dot += q[i * r + c] * k[j * r + c];
      const s = scale * dot;
      w[i * L + j] = s;
      if (s > max) max = s;
    }
    if (config.activation === "softmax") {
      let sum = 0;
      for (let j = 0; j < L; j++) sum += w[i * L + j] = Math.exp(w[i * L + j] - max);
      for (let j = 0; j < L; j++) w[i * L + j] /= sum;
    } else {
      for (let j = 0; j < L; j++) w[i * L + j] = sigmoid(w[i * L + j] + bias);
    }
  }
  return w;
}

/**
 * The teacher layer on one sequence `x` (`[L·dim]`, row-major), in f64:
 * Y_i = Σ_h Σ_j w^h_ij · e(x_j W_V,h), returned as `[L·outDim]`. Each head's
 * rank is read off its `wq` length. The CPU reference the task's targets come
 * from.
 */
export function teacherForward(
  x: ArrayLike<number>,
  heads: readonly AttentionHeadParams[],
  config: TeacherConfig,
): Float64Array {
  const { seqLen: L, dim, outDim } = config;
  const y = new Float64Array(L * outDim);
  for (const head of heads) {
    headRank(head, dim, outDim, "teacherForward");
    const w = teacherAttentionWeights(x, head, config);
    const e = project(x, head.wv, L, dim, outDim);
    for (let p = 0; p < e.length; p++) e[p] = expertActivation(config.expert, e[p]);
    for (let i = 0; i < L; i++) {
      for (let j = 0; j < L; j++) {
        const wij = w[i * L + j];
        for (let c = 0; c < outDim; c++) y[i * outDim + c] += wij * e[j * outDim + c];
      }
    }
  }
  return y;
}

/** The effective gating matrix A = W_Q W_Kᵀ/√r (`[dim·dim]`, f64) of a head: s_ij = x_i A x_jᵀ. */
export function gatingMatrix(head: AttentionHeadParams, dim: number): Float64Array {
  const r = head.wq.length / dim;
  if (!Number.isInteger(r) || r < 1 || head.wk.length !== head.wq.length) {
    throw new RangeError(`gatingMatrix: wq and wk must both have dim·r elements (dim = ${dim})`);
  }
  const scale = 1 / Math.sqrt(r);
  const a = new Float64Array(dim * dim);
  for (let u = 0; u < dim; u++) {
    for (let v = 0; v < dim; v++) {
      let dot = 0;
      for (let c = 0; c < r; c++) dot += head.wq[u * r + c] * head.wk[v * r + c];
      a[u * dim + v] = scale * dot;
    }
  }
  return a;
}

/**
 * How well a student attention layer (heads summed, the same form as the
 * teacher's) recovers the teacher's parameters. Heads are compared through
 * their gating matrices A = W_Q W_Kᵀ/√r (dim×dim; this removes the gauge
 * W_Q → W_Q M, W_K → W_K M⁻ᵀ and lets student and teacher ranks differ) and
 * their value matrices W_V (dim×outDim). Both lists are in teacher coordinates
 * (the student's attention must act on the raw inputs). ‖·‖ is the Frobenius
 * norm; k* = teacher heads, k = student heads.
 *
 * Matching. If k = k*: the one-to-one assignment π minimising
 * Σ_j (‖A_π(j) − A*_j‖²/Σ‖A*‖² + ‖V_π(j) − V*_j‖²/Σ‖V*‖²) (exact, dynamic
 * programming over subsets, k ≤ 16), and
 * gating = √(Σ_j ‖A_π(j) − A*_j‖² / Σ_j ‖A*_j‖²),
 * value = √(Σ_j ‖V_π(j) − V*_j‖² / Σ_j ‖V*_j‖²).
 * Otherwise (over- or under-specified student) via the Voronoi cells of
 * {@linkcode headVoronoiLoss}:
 * cell j is summarised by V̂_j = Σ_{i∈𝒱_j} V_i (summed heads add their values)
 * and Â_j = the average of the A_i, i ∈ 𝒱_j, weighted by ‖V_i‖ (plain mean if
 * all are 0); an empty cell has Â_j = 0, V̂_j = 0; gating and value are the
 * same relative errors with Â_j, V̂_j in place of A_π(j), V_π(j).
 *
 * Voronoi loss: the papers' loss over mixing measures (below), with attention
 * heads as its atoms; see {@linkcode headVoronoiLoss}.
 *
 * Identifiability: a softmax row is unchanged by adding a constant to all its
 * scores, so a term of A that only depends on the query, x_i A x_jᵀ = f(x_i),
 * is invisible to a softmax teacher. For these inputs (no constant feature,
 * no bias in the scores) no nonzero matrix gives such a term (x_i M x_jᵀ
 * independent of x_j forces M = 0), so A is identified for softmax as well as
 * sigmoid, and the relative error of A is a fair measure for both. A student
 * with key biases or inputs with a constant coordinate would break this.
 *
 * @param teacher The teacher's heads.
 * @param student The student's heads, in teacher coordinates.
 * @param dims Input and output dimension, and the experts' activation (the
 *   teacher's; default `"linear"`), which sets the Voronoi loss's powers.
 */
export function parameterErrors(
  teacher: readonly AttentionHeadParams[],
  student: readonly AttentionHeadParams[],
  dims: { dim: number; outDim: number; expert?: TeacherExpert },
): ParameterErrors {
  const { dim, outDim } = dims;
  if (teacher.length < 1) throw new RangeError("parameterErrors: teacher needs at least one head");
  if (student.length < 1) throw new RangeError("parameterErrors: student needs at least one head");
  for (const h of teacher) headRank(h, dim, outDim, "parameterErrors (teacher)");
  for (const h of student) headRank(h, dim, outDim, "parameterErrors (student)");
  const tA = teacher.map((h) => gatingMatrix(h, dim));
  const tV = teacher.map((h) => Float64Array.from(h.wv));
  const sA = student.map((h) => gatingMatrix(h, dim));
  const sV = student.map((h) => Float64Array.from(h.wv));
  const kT = teacher.length;
  const kS = student.length;
  const tAn = tA.map(norm);
  const tVn = tV.map(norm);
  const sVn = sV.map(norm);
  const safe = (x: number): number => (x > 0 ? x : 1);

  const loss = headVoronoiLoss(teacher, student, dims);
  const cells = loss.cells;

  const totalA = safe(tAn.reduce((s, x) => s + x * x, 0));
  const totalV = safe(tVn.reduce((s, x) => s + x * x, 0));
  let errA = 0;
  let errV = 0;
  if (kS === kT) {
    if (kT > MAX_HEADS) {
      throw new RangeError(
        `parameterErrors: one-to-one matching supports at most ${MAX_HEADS} heads, got ${kT}`,
      );
    }
    const cA = tA.map((a) => sA.map((b) => dist2(b, a)));
    const cV = tV.map((v) => sV.map((b) => dist2(b, v)));
    const perm = bestAssignment(kT, (j, i) => cA[j][i] / totalA + cV[j][i] / totalV);
    for (let j = 0; j < kT; j++) {
      errA += cA[j][perm[j]];
      errV += cV[j][perm[j]];
    }
  } else {
    for (let j = 0; j < kT; j++) {
      const aHat = new Float64Array(dim * dim);
      const vHat = new Float64Array(dim * outDim);
      const cell = cells[j];
      let wSum = 0;
      for (const i of cell) wSum += sVn[i];
      for (const i of cell) {
        const w = wSum > 0 ? sVn[i] / wSum : 1 / cell.length;
        for (let p = 0; p < aHat.length; p++) aHat[p] += w * sA[i][p];
        for (let p = 0; p < vHat.length; p++) vHat[p] += sV[i][p];
      }
      errA += dist2(aHat, tA[j]);
      errV += dist2(vHat, tV[j]);
    }
  }
  return {
    gating: Math.sqrt(errA / totalA),
    value: Math.sqrt(errV / totalV),
    voronoi: loss.value,
    voronoiParts: { mass: loss.mass, single: loss.single, multi: loss.multi },
  };
}

/**
 * The power of a Voronoi cell's per-head terms: 1 in a cell holding one
 * student head; in a cell holding m ≥ 2, 2 for strongly identifiable
 * (ReLU, GELU) experts and r̄(m) for linear (weakly identifiable) experts.
 *
 * The papers' losses raise the terms of atoms that split a true atom to the
 * power at which the loss matches the regression-function error, 2 for
 * strongly identifiable experts (2405.13997 for ReLU/GELU feed-forward
 * experts; 2410.11222 for non-linear experts after a quadratic gate). For
 * linear experts we take r̄(m) = 2m: r̄(2) = 4 and r̄(3) = 6 are the values of
 * the polynomial system behind softmax-gated mixtures of linear experts
 * (Nguyen, Nguyen, Ho 2023, arXiv 2305.03288, Lemma 1); 2m for m ≥ 4 is our
 * extrapolation (the same choice as training/moe/voronoi.ts).
 *
 * @throws {RangeError} if `cellSize` is not a positive integer.
 */
export function voronoiPower(expert: TeacherExpert, cellSize: number): number {
  if (!Number.isInteger(cellSize) || cellSize < 1) {
    throw new RangeError(`cellSize must be a positive integer, got ${cellSize}`);
  }
  if (cellSize === 1) return 1;
  return expert === "linear" ? 2 * cellSize : 2;
}

/**
 * The Voronoi loss between a student attention layer and the teacher, with
 * heads as the atoms of the papers' mixing measures.
 *
 * The papers' loss (arXiv 2405.13997 §3, 2502.00281 §3–4, 2410.11222 §3; the
 * same form as 2305.03288's D₁): true atoms j with gate mass w*_j, gate
 * parameters β*_j and expert parameters η*_j; each fitted atom i joins the
 * Voronoi cell 𝒜_j of its nearest true atom (by the non-mass parameters);
 *
 *   D = Σ_j |Σ_{i∈𝒜_j} w_i − w*_j|
 *       + Σ_{j:|𝒜_j|=1} Σ_{i∈𝒜_j} w_i (‖Δβ_ij‖ + ‖Δη_ij‖)
 *       + Σ_{j:|𝒜_j|>1} Σ_{i∈𝒜_j} w_i (‖Δβ_ij‖^r + ‖Δη_ij‖^r),
 *
 * with w = exp(β₀) (softmax) or σ(β₀) (sigmoid) and r as in
 * {@linkcode voronoiPower}. It is 0 exactly at the truth and at its exact
 * splits (atoms equal to a true atom whose masses add up to its mass).
 *
 * Heads (our adaptation: attention heads are summed, not gated against each
 * other, and a head has no gate constant β₀): what a head contributes scales
 * with its value matrix, so its mass relative to teacher head j is
 * m_ij = ‖V_i‖/‖V*_j‖ and its expert parameter is the direction of V_i. With
 * relative distances a_ij = ‖A_i − A*_j‖/‖A*_j‖ (A = W_Q W_Kᵀ/√r) and
 * u_ij = ‖V_i/‖V_i‖ − V*_j/‖V*_j‖‖ (u_ij = 1 for V_i = 0), head i joins the
 * cell of argmin_j (a_ij + u_ij) (ties to the lower j), and
 *
 *   D = Σ_j |Σ_{i∈𝒱_j} m_ij − 1| + Σ_{|𝒱_j|=1} m_ij (a_ij + u_ij)
 *       + Σ_{|𝒱_j|>1} Σ_{i∈𝒱_j} m_ij (a_ij^r + u_ij^r).
 *
 * An empty cell costs 1 (its mass term). Heads that split a teacher head
 * with its A and V's direction and masses summing to 1 cost 0, which for
 * linear experts is exactly a split that computes the same layer; a dead
 * head (V = 0) costs nothing but still counts in its cell's size, as a
 * vanishing atom does in the papers. Every term is scale-free, invariant to
 * the order of the student heads (each cell's terms are summed in sorted
 * order, so the value is bit-identical under permutations) and to the Q/K
 * gauge. It is not the function error: for linear experts a split whose
 * value directions differ but sum to V* computes the teacher's layer and
 * still costs > 0, as in the papers' losses.
 *
 * @throws {RangeError} on empty head lists or shapes that do not match `dims`.
 */
export function headVoronoiLoss(
  teacher: readonly AttentionHeadParams[],
  student: readonly AttentionHeadParams[],
  dims: { dim: number; outDim: number; expert?: TeacherExpert },
): HeadVoronoiLoss {
  const { dim, outDim } = dims;
  const expert = dims.expert ?? "linear";
  if (expert !== "linear" && expert !== "relu" && expert !== "gelu") {
    throw new RangeError(`expert must be "linear", "relu" or "gelu", got ${String(expert)}`);
  }
  if (teacher.length < 1) throw new RangeError("headVoronoiLoss: teacher needs at least one head");
  if (student.length < 1) throw new RangeError("headVoronoiLoss: student needs at least one head");
  for (const h of teacher) headRank(h, dim, outDim, "headVoronoiLoss (teacher)");
  for (const h of student) headRank(h, dim, outDim, "headVoronoiLoss (student)");
  const tA = teacher.map((h) => gatingMatrix(h, dim));
  const sA = student.map((h) => gatingMatrix(h, dim));
  const tV = teacher.map((h) => Float64Array.from(h.wv));
  const sV = student.map((h) => Float64Array.from(h.wv));
  const safe = (x: number): number => (x > 0 ? x : 1);
  const tAn = tA.map(norm);
  const tVn = tV.map(norm);
  const sVn = sV.map(norm);
  const unit = (v: Float64Array, n: number) => v.map((x) => (n > 0 ? x / n : 0));
  const tU = tV.map((v, j) => unit(v, tVn[j]));
  const sU = sV.map((v, i) => unit(v, sVn[i]));
  const kT = teacher.length;
  const kS = student.length;
  const a = (i: number, j: number) => dist(sA[i], tA[j]) / safe(tAn[j]);
  const u = (i: number, j: number) => (sVn[i] > 0 ? dist(sU[i], tU[j]) : 1);
  const m = (i: number, j: number) => sVn[i] / safe(tVn[j]);

  const cells: number[][] = Array.from({ length: kT }, () => []);
  for (let i = 0; i < kS; i++) {
    let best = Infinity;
    let arg = 0;
    for (let j = 0; j < kT; j++) {
      const d = a(i, j) + u(i, j);
      if (d < best) {
        best = d;
        arg = j;
      }
    }
    cells[arg].push(i);
  }
  const sorted = (xs: number[]) => xs.sort((x, y) => x - y).reduce((t, x) => t + x, 0);
  let mass = 0;
  let single = 0;
  let multi = 0;
  for (let j = 0; j < kT; j++) {
    const cell = cells[j];
    mass += Math.abs(sorted(cell.map((i) => m(i, j))) - 1);
    if (cell.length === 1) {
      const i = cell[0];
      single += m(i, j) * (a(i, j) + u(i, j));
    } else if (cell.length > 1) {
      const r = voronoiPower(expert, cell.length);
      multi += sorted(cell.map((i) => m(i, j) * (a(i, j) ** r + u(i, j) ** r)));
    }
  }
  return { value: mass + single + multi, mass, single, multi, cells };
}

/** perm[j] = the student head matched to teacher head j, minimising Σ_j cost(j, perm[j]). */
function bestAssignment(k: number, cost: (j: number, i: number) => number): number[] {
  const states = 1 << k;
  const dp = new Float64Array(states).fill(Infinity);
  const choice = new Int8Array(states).fill(-1);
  dp[0] = 0;
  for (let mask = 0; mask < states; mask++) {
    if (dp[mask] === Infinity) continue;
    const j = popcount(mask); // teacher head to place next
    if (j >= k) continue;
    for (let i = 0; i < k; i++) {
      if (mask & (1 << i)) continue;
      const next = mask | (1 << i);
      const c = dp[mask] + cost(j, i);
      if (c < dp[next]) {
        dp[next] = c;
        choice[next] = i;
      }
    }
  }
  const perm = new Array<number>(k);
  let mask = states - 1;
  for (let j = k - 1; j >= 0; j--) {
    const i = choice[mask];
    perm[j] = i;
    mask &= ~(1 << i);
  }
  return perm;
}

function popcount(x: number): number {
  let c = 0;
  for (; x; x &= x - 1) c++;
  return c;
}

function norm(a: Float64Array): number {
  let s = 0;
  for (let p = 0; p < a.length; p++) s += a[p] * a[p];
  return Math.sqrt(s);
}

function dist2(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let p = 0; p < a.length; p++) {
    const d = a[p] - b[p];
    s += d * d;
  }
  return s;
}

function dist(a: Float64Array, b: Float64Array): number {
  return Math.sqrt(dist2(a, b));
}

/** `[L·cols]` = x (`[L·dim]`) times w (`[dim·cols]`), in f64. */
function project(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  L: number,
  dim: number,
  cols: number,
): Float64Array {
  const out = new Float64Array(L * cols);
  for (let i = 0; i < L; i++) {
    for (let u = 0; u < dim; u++) {
      const xu = x[i * dim + u];
      for (let c = 0; c < cols; c++) out[i * cols + c] += xu * w[u * cols + c];
    }
  }
  return out;
}

function sigmoid(x: number): number {
  const e = Math.exp(-Math.abs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/** The student's heads as `[dim, headDim]` row-major matrices, read back from the GPU. */
async function studentHeads(model: ModelView): Promise<AttentionHeadParams[]> {
  const { heads: H, headDim: D, width: d } = model.config;
  const [wq, wk, wv] = await Promise.all([model.read("wq"), model.read("wk"), model.read("wv")]);
  const head = (w: Float32Array, h: number) => {
    const out = new Float32Array(d * D);
    for (let i = 0; i < d; i++) {
      out.set(w.subarray(i * H * D + h * D, i * H * D + h * D + D), i * D);
    }
    return out;
  };
  return Array.from(
    { length: H },
    (_, h) => ({ wq: head(wq, h), wk: head(wk, h), wv: head(wv, h) }),
  );
}
