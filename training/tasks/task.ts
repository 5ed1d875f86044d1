/**
 * What every training task provides: a deterministic data set split into train
 * and test, the shape of its inputs and outputs (which picks the model's
 * embedding and head), and its metric.
 *
 * @module
 */

/** The model's input: token ids (an embedding table) or real vectors (a linear projection). */
export type TaskInput =
  | { kind: "tokens"; vocab: number }
  | { kind: "vectors"; dim: number };

/** The model's output head. */
export type TaskOutput =
  /** One class per position; label −1 marks a position that carries no loss. */
  | { kind: "token-class"; classes: number }
  /** One class per sequence, read from the model's pooled (mean over positions) output. */
  | { kind: "seq-class"; classes: number }
  /** `dim` real numbers per position (mean squared error). */
  | { kind: "regression"; dim: number };

/** One batch of sequences, row-major, ready to upload. */
export interface Batch {
  /** Number of sequences. */
  size: number;
  /** `[size·seqLen]` token ids, when the input is tokens. */
  tokens?: Int32Array;
  /** `[size·seqLen·dim]` input vectors, when the input is vectors. */
  inputs?: Float32Array;
  /** Class labels: `[size·seqLen]` for token-class (−1 = no loss), `[size]` for seq-class. */
  labels?: Int32Array;
  /** `[size·seqLen·dim]` regression targets. */
  targets?: Float32Array;
}

/** How a task is scored. */
export interface Metric {
  /** E.g. `"accuracy"` or `"function error"`. */
  name: string;
  /** True for accuracies, false for errors. */
  higherIsBetter: boolean;
  /**
   * What a model that learned nothing useful scores on the test set (the best
   * constant prediction, or uniform guessing): the baseline a trained model must
   * beat.
   */
  chance: number;
}

/** A metric's sum and count over some examples, so batches can be pooled exactly. */
export interface Score {
  /** Sum of the metric over the counted items (e.g. correct predictions, or squared errors). */
  total: number;
  /** Items counted (e.g. labelled positions); the metric is `total / count`. */
  count: number;
}

/**
 * What a task may read of a trained model to score its parameters (not only
 * its outputs): the model's shape and its parameters by name.
 *
 * @example
 * ```ts
 * import type { ModelView } from "@sigmax/sigmax";
 * // A view over parameters held on the CPU (the trainer's reads them back from the GPU).
 * const weights: Record<string, Float32Array> = { wq: new Float32Array(8 * 8) };
 * const view: ModelView = {
 *   config: { arch: "attention", width: 8, heads: 1, headDim: 8 },
 *   read: (name) => Promise.resolve(weights[name]),
 * };
 * console.log((await view.read("wq")).length); // 64
 * ```
 */
export interface ModelView {
  /** The model's architecture and sizes. */
  config: { arch: "transformer" | "attention"; width: number; heads: number; headDim: number };
  /** A parameter's values read back from the GPU (e.g. `"wq"`, `[width, heads·headDim]`). */
  read(name: string): Promise<Float32Array>;
}

/**
 * Parameter recovery of a student (the teacher task): relative errors and a Voronoi loss.
 *
 * @example
 * ```ts
 * import type { ParameterErrors } from "@sigmax/sigmax";
 * // What `train()` reports in `result.final.parameterErrors` for a teacher task's student:
 * const errors: ParameterErrors = { gating: 0.12, value: 0.05, voronoi: 0.3 };
 * console.log(`gating ${errors.gating}, value ${errors.value}, Voronoi ${errors.voronoi}`);
 * ```
 */
export interface ParameterErrors {
  /** Relative Frobenius error of the gating matrices A = W_Q W_Kᵀ/√r after matching heads. */
  gating: number;
  /** Relative Frobenius error of the value matrices W_V after matching heads. */
  value: number;
  /** Voronoi loss over heads (see `training/tasks/teacher.ts`). */
  voronoi: number;
  /** Its three parts (they sum to `voronoi`); absent in results written before they existed. */
  voronoiParts?: { mass: number; single: number; multi: number };
}

/** Split names. */
export type Split = "train" | "test";

/** A task: its data, shapes and metric. All of it is a pure function of the options (and seed). */
export interface Task {
  /** The task's name, e.g. `"mqar"`. */
  name: string;
  /** Positions per sequence. */
  seqLen: number;
  /** What the model reads. */
  input: TaskInput;
  /** What the model predicts. */
  output: TaskOutput;
  /** Whether the task is posed causally (each position sees only itself and the past). */
  causal: boolean;
  /** Number of training sequences (the user's n). */
  trainSize: number;
  /** Number of held-out test sequences. */
  testSize: number;
  /** How the task is scored. */
  metric: Metric;
  /** The sequences `indices` of `split`, gathered into one batch. */
  batch(split: Split, indices: ArrayLike<number>): Batch;
  /**
   * The metric's sum and count for `batch` given the model's outputs for it:
   * logits `[size·seqLen·classes]` (token-class), `[size·classes]` (seq-class)
   * or predictions `[size·seqLen·dim]` (regression).
   */
  score(batch: Batch, outputs: Float32Array): Score;
  /**
   * The model this task is posed for when the config names none: the
   * transformer unless the task says otherwise (the teacher: its own attention
   * layer, with the teacher's expert non-linearity).
   */
  model?: { arch: "transformer" | "attention"; expert?: "linear" | "relu" | "gelu" };
  /**
   * Metrics about the trained parameters themselves, added to every
   * evaluation as `parameterErrors`; undefined where they do not apply (the
   * teacher scores an attention-arch student's heads against its own).
   */
  parameterErrors?(model: ModelView): Promise<ParameterErrors | undefined>;
}

/** Options every task accepts. */
export interface TaskOptions {
  /** Training sequences. */
  n: number;
  /** Seed of the data (train and test sets are pure functions of it). */
  seed: number;
  /** Held-out sequences; each task has a default. */
  testSize?: number;
}
