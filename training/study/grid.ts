/**
 * The study's grid: which runs a preset asks for, their stable ids, and how
 * `--shard i/n` splits them.
 *
 * Every run is paired: for a given cell, n and seed, the softmax and the
 * sigmoid run see the same data (the task's seed) and start from the same
 * weights (the model's initialisation depends on the seed and the shapes
 * only), so their difference is the activation's alone.
 *
 * @module
 */

import type { TrainConfig } from "../trainer.ts";
import type { TaskName } from "../tasks/index.ts";
import type { FitOptions } from "../moe/fit.ts";
import type { Expert, Regime, Score } from "../moe/model.ts";
import type { MoeRunConfig } from "../moe/run.ts";

/** One cell of a study: a task with fixed options, trained with both activations over n and seeds. */
export interface StudyCell {
  /** Stable name of the cell, e.g. `teacher-softmax-linear` or `count`. */
  name: string;
  task: TaskName;
  /** Task options (besides n, seed, testSize). */
  taskOptions: Record<string, unknown>;
  /** Training settings shared by every run of the cell. */
  train: Partial<TrainConfig>;
  /** Training-set sizes n (sequences). */
  ns: number[];
  /**
   * The metric a run must reach for samples- and steps-to-target (the task's
   * own metric: accuracy, or function error for teacher).
   */
  target?: number;
  /** Teacher cells: what the cell varies (teacher activation, expert). */
  teacher?: { activation: "softmax" | "sigmoid"; expert: string; studentHeads: number };
}

/** A study preset: its cells, seeds and held-out size. */
export interface StudyPreset {
  name: string;
  /** Seeds (each used by both activations). */
  seeds: number[];
  testSize: number;
  cells: StudyCell[];
}

/** One run of the grid. */
export interface RunSpec {
  /** Stable id, also the result's file name: `<cell>-<activation>-n<n>-s<seed>`. */
  id: string;
  cell: string;
  attention: "softmax" | "sigmoid";
  n: number;
  seed: number;
  /** The full training config of the run (without checkpoint, log and progress). */
  config: Partial<TrainConfig> & { task: TaskName };
}

/** The teacher's weights are the same in every run of a study: drawn once from this seed. */
export const TEACHER_SEED = 7;

function teacherCells(
  experts: string[],
  ns: number[],
  train: Partial<TrainConfig>,
  studentHeads: number[],
): StudyCell[] {
  const cells: StudyCell[] = [];
  for (const activation of ["softmax", "sigmoid"] as const) {
    for (const expert of experts) {
      for (const heads of studentHeads) {
        cells.push({
          name: `teacher-${activation}-${expert}` + (heads > 1 ? `-h${heads}` : ""),
          task: "teacher",
          // Noise 1: at these sizes the error then falls with n instead of sitting at the floor.
          taskOptions: {
            teacherActivation: activation,
            expert,
            noise: 1,
            teacherSeed: TEACHER_SEED,
          },
          train: { ...train, heads },
          ns,
          teacher: { activation, expert, studentHeads: heads },
        });
      }
    }
  }
  return cells;
}

const TEACHER_TRAIN: Partial<TrainConfig> = { steps: 500, batchSize: 16, evalEvery: 100 };

/** The token and MNIST cells at tiny size (the settings the learning tests use). */
function taskCells(ns: number[], scale: number): StudyCell[] {
  return [
    {
      name: "count",
      task: "count",
      taskOptions: { seqLen: 8, vocab: 4 },
      train: { width: 16, batchSize: 16, steps: 250 * scale, evalEvery: 25 },
      ns,
      target: 0.95,
    },
    {
      name: "sort",
      task: "sort",
      taskOptions: { seqLen: 6, vocab: 8 },
      train: { width: 16, batchSize: 16, steps: 200 * scale, evalEvery: 25 },
      ns,
      target: 0.9,
    },
    {
      name: "mqar",
      task: "mqar",
      taskOptions: { vocab: 16, pairs: 2 },
      train: { steps: 200 * scale, evalEvery: 25 },
      ns,
      target: 0.9,
    },
    {
      name: "mnist",
      task: "mnist",
      taskOptions: {},
      train: { width: 16, batchSize: 16, steps: 200 * scale, evalEvery: 25 },
      ns,
      target: 0.6,
    },
  ];
}

/**
 * Training as an estimator (the attention-native half of the paper study):
 * full batch, no weight decay, no clipping — unpenalised least squares for the
 * teacher cells — stopped by the trainer's plateau criterion (relative change
 * of the 100-step window-mean training loss ≤ 1e-4), with 20000 steps only as
 * a cap; each run records whether it converged.
 */
const ESTIMATOR_TRAIN: Partial<TrainConfig> = {
  fullBatch: true,
  weightDecay: 0,
  clip: 0,
  plateauWindow: 100,
  plateauTol: 1e-4,
  steps: 20000,
  evalEvery: 500,
};

/** n for the attention-native estimator cells: 8 powers of 2 from 64 to 8192 (2.1 decades). */
const ESTIMATOR_NS = [64, 128, 256, 512, 1024, 2048, 4096, 8192];

/**
 * Teacher cells of the estimator study: the student has as many heads as the
 * teacher (k = k*: one head is one exactly specified mixture, see
 * training/tasks/teacher.ts), both student activations on each teacher
 * (same-gate pairs are the papers' comparison; the cross pairs measure
 * misspecification and are labelled so), linear and ReLU experts, two
 * teacher draws.
 */
function estimatorTeacherCells(): StudyCell[] {
  const cells: StudyCell[] = [];
  for (const teacherSeed of [TEACHER_SEED, TEACHER_SEED + 1]) {
    for (const activation of ["softmax", "sigmoid"] as const) {
      for (const expert of ["linear", "relu"]) {
        cells.push({
          name: `teacher-${activation}-${expert}-t${teacherSeed}`,
          task: "teacher",
          taskOptions: { teacherActivation: activation, expert, noise: 1, teacherSeed },
          train: { ...ESTIMATOR_TRAIN, heads: 1 },
          ns: ESTIMATOR_NS,
          teacher: { activation, expert, studentHeads: 1 },
        });
      }
    }
  }
  return cells;
}

/** The token and MNIST cells, each run trained to its plateau. */
function estimatorTaskCells(): StudyCell[] {
  return taskCells(ESTIMATOR_NS, 1).map((cell) => ({
    ...cell,
    train: { ...cell.train, ...ESTIMATOR_TRAIN },
  }));
}

/**
 * The presets: `tiny` (tests: seconds), `quick` (this machine: under 45
 * minutes), `full` (a GPU), and `paper-attention` (a GPU, or `--shard`s: the
 * attention-native estimator study on the WebGPU kernels — teacher and task
 * cells trained to a plateau, 8 n over 2.1 decades, 10 seeds, 2 teacher draws;
 * about 2500 runs of up to 20000 full-batch steps, far beyond a CPU adapter).
 */
export const STUDY_PRESETS: Record<"tiny" | "quick" | "full" | "paper-attention", StudyPreset> = {
  tiny: {
    name: "tiny",
    seeds: [1, 2],
    testSize: 32,
    cells: [
      {
        name: "teacher-softmax-linear",
        task: "teacher",
        taskOptions: {
          teacherActivation: "softmax",
          expert: "linear",
          noise: 1,
          teacherSeed: TEACHER_SEED,
        },
        train: { steps: 40, batchSize: 8, evalEvery: 10 },
        ns: [16, 64],
        teacher: { activation: "softmax", expert: "linear", studentHeads: 1 },
      },
      {
        name: "sort",
        task: "sort",
        taskOptions: { seqLen: 4, vocab: 4 },
        train: { width: 8, layers: 1, batchSize: 8, steps: 20, evalEvery: 5 },
        ns: [16, 64],
        target: 0.5,
      },
    ],
  },
  quick: {
    name: "quick",
    seeds: [1, 2, 3, 4, 5],
    testSize: 200,
    cells: [
      ...teacherCells(["linear", "relu"], [64, 256, 1024], TEACHER_TRAIN, [1]),
      ...taskCells([64, 256, 1024], 1),
    ],
  },
  full: {
    name: "full",
    seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    testSize: 1000,
    cells: [
      ...teacherCells(
        ["linear", "relu", "gelu"],
        [64, 128, 256, 512, 1024, 2048, 4096, 8192],
        { ...TEACHER_TRAIN, steps: 3000, batchSize: 32 },
        [1, 2],
      ),
      // n up to 8192: MNIST's training pool holds 9000 images.
      ...taskCells([64, 128, 256, 512, 1024, 2048, 4096, 8192], 4),
    ],
  },
  "paper-attention": {
    name: "paper-attention",
    seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    testSize: 1000,
    cells: [...estimatorTeacherCells(), ...estimatorTaskCells()],
  },
};

/** Every run of a preset, optionally only the cells named in `cells`, sorted by id. */
export function studyGrid(preset: StudyPreset, cells?: string[]): RunSpec[] {
  if (cells) {
    for (const name of cells) {
      if (!preset.cells.some((c) => c.name === name || c.task === name)) {
        throw new RangeError(
          `preset ${preset.name} has no cell or task ${JSON.stringify(name)}; it has: ` +
            preset.cells.map((c) => c.name).join(", "),
        );
      }
    }
  }
  const runs: RunSpec[] = [];
  for (const cell of preset.cells) {
    if (cells && !cells.some((name) => name === cell.name || name === cell.task)) continue;
    for (const n of cell.ns) {
      for (const seed of preset.seeds) {
        for (const attention of ["softmax", "sigmoid"] as const) {
          runs.push({
            id: `${cell.name}-${attention}-n${n}-s${seed}`,
            cell: cell.name,
            attention,
            n,
            seed,
            config: {
              ...cell.train,
              task: cell.task,
              taskOptions: cell.taskOptions,
              testSize: preset.testSize,
              attention,
              n,
              seed,
              target: undefined,
            },
          });
        }
      }
    }
  }
  return runs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Parses `--shard i/n` (1-based). */
export function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count) {
    throw new RangeError(`--shard must be i/n with 1 ≤ i ≤ n, e.g. 2/4; got "${text}"`);
  }
  return { index, count };
}

/** The runs of shard `index` of `count`: every count-th run of the sorted grid, from index − 1. */
export function shardOf<T extends { id: string }>(
  runs: T[],
  shard: { index: number; count: number },
): T[] {
  return runs.filter((_, i) => i % shard.count === shard.index - 1);
}

// ---------------------------------------------------------------------------
// The paper study: the least-squares estimator of the papers' mixture (training/moe/)

/** One cell of the paper study: a mixture kind fitted with both gates over n and seeds. */
export interface PaperCell {
  /** Stable name, e.g. `over-dense-linear-partially`. */
  name: string;
  score: Score;
  expert: Expert;
  regime: Regime;
  /** "over": k = k* + 1 fitted experts; "exact": k = k*. */
  fit: "over" | "exact";
  ns: number[];
  /**
   * "primary": a test of the claim (sigmoid's Voronoi loss falls faster);
   * "control": the null control, where both gates' rates are parametric
   * (exact-specified, identifiable: n^-1/2) and the slopes must tie;
   * "planted": the positive control, an exact-specified cell in which one
   * gate's noise shrinks with n ({@linkcode PaperCell.planted}), so that its
   * slopes are steeper by a known amount and the study must detect it.
   */
  role: "primary" | "control" | "planted";
  /**
   * A planted difference (role "planted"): the runs of `gate` have noise
   * σ · (n / n₀)^−exponent instead of σ (n₀ the cell's smallest n). The
   * least-squares parameter error of an exact-specified fit is ∝ σ n^−1/2, so
   * its slope against n moves by −exponent for that gate (the function error's,
   * a squared error, by −2 · exponent).
   */
  planted?: { gate: "sigmoid" | "softmax"; exponent: number };
}

/** A paper-study preset. */
export interface PaperPreset {
  name: string;
  seeds: number[];
  /** Noise standard deviation of y. */
  noise: number;
  /** Random starts beside the truth-split one. */
  randomStarts: number;
  stopping: FitOptions;
  /** Held-out inputs for the function error. */
  testSize: number;
  cells: PaperCell[];
}

/** A run of the paper study. */
export interface MoeRunSpec {
  /** `<cell>-<gate>-n<n>-s<seed>`. */
  id: string;
  cell: string;
  /** The gate of both truth and fit. */
  attention: "softmax" | "sigmoid";
  n: number;
  seed: number;
  moe: MoeRunConfig;
}

/** `count` values from `from` to `to`, evenly spaced in log n, rounded to integers. */
export function logSpaced(from: number, to: number, count: number): number[] {
  if (!(from >= 1) || !(to > from) || !Number.isInteger(count) || count < 2) {
    throw new RangeError(
      `logSpaced needs 1 ≤ from < to and count ≥ 2, got ${from}, ${to}, ${count}`,
    );
  }
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(Math.round(from * (to / from) ** (i / (count - 1))));
  return out;
}

function paperCell(
  fit: PaperCell["fit"],
  regime: Regime,
  expert: Expert,
  score: Score,
  ns: number[],
): PaperCell {
  return {
    name: `${fit}-${regime}-${expert}-${score}`,
    fit,
    regime,
    expert,
    score,
    ns,
    role: fit === "over" ? "primary" : "control",
  };
}

/** A positive-control cell: exact, dense, linear, partially quadratic, with `gate`'s noise shrinking. */
function plantedCell(gate: "sigmoid" | "softmax", exponent: number, ns: number[]): PaperCell {
  return {
    ...paperCell("exact", "dense", "linear", "partially", ns),
    name: `planted-${gate}-exact-dense-linear-partially`,
    role: "planted",
    planted: { gate, exponent },
  };
}

/** The noise of a run of `cell` at size n with `gate` (the preset's, unless a difference is planted). */
export function cellNoise(cell: PaperCell, noise: number, gate: string, n: number): number {
  if (!cell.planted || cell.planted.gate !== gate) return noise;
  return noise * (n / Math.min(...cell.ns)) ** -cell.planted.exponent;
}

/** paper-quick's n: 8 values from 40 to 6400 (2.2 decades), evenly spaced in log n. */
const QUICK_NS = logSpaced(40, 6400, 8);

/** paper-quick's cells: four over-specified (primary) and two exact-specified (control). */
const QUICK_CELLS: PaperCell[] = [
  paperCell("over", "dense", "linear", "partially", QUICK_NS),
  paperCell("over", "dense", "linear", "fully", QUICK_NS),
  paperCell("over", "dense", "ffn", "partially", QUICK_NS),
  paperCell("over", "sparse", "linear", "partially", QUICK_NS),
  paperCell("exact", "dense", "linear", "partially", QUICK_NS),
  paperCell("exact", "dense", "ffn", "partially", QUICK_NS),
];

/** paper-quick's settings, shared by its sensitivity checks (which change one of them). */
const QUICK_SETTINGS = {
  seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  noise: 0.05,
  randomStarts: 2,
  stopping: { gradTol: 1e-8, lossTol: 1e-10, maxIterations: 500, bound: 10 },
  testSize: 2000,
};

/**
 * The paper-study presets.
 *
 * - `paper-quick` (this 2-core machine, under 60 minutes, measured in the
 *   README): over-specified fits with the attention-native partially
 *   quadratic score `xᵀAx + c` — linear experts in the dense and the sparse
 *   regime, GELU experts in the dense regime — and with the fully quadratic
 *   score `xᵀAx + bᵀx + c` and linear experts in the dense regime, plus the
 *   exact-specified control with both expert types; 8 n from 40 to 6400
 *   (2.2 decades), 10 seeds, the truth-split start and 2 random ones; and
 *   two positive-control cells, the exact-specified linear cell with one
 *   gate's noise shrinking as (n/40)^−1/2 (sigmoid in one, softmax in the
 *   other), where the study must find that gate's slopes steeper by 1/2.
 * - `paper` (a bigger machine, or `--shard`s; by the scaling of the fits, not
 *   measured: roughly 50–100× paper-quick's work, many CPU-hours):
 *   every combination of fit (over, exact) × regime (dense, sparse) × expert
 *   (linear, GELU) × score (fully, partially) — 16 cells — and the two
 *   positive controls, at 12 n from 100 to 20000, 20 seeds, 5 random starts
 *   and a 2000-iteration cap.
 * - `paper-quick-lownoise`: paper-quick's first six cells (not the positive
 *   controls) with noise σ = 0.01 instead of 0.05,
 *   a sensitivity check (the asymptotic regime of a least-squares fit starts
 *   at smaller n when the noise is smaller).
 * - `paper-quick-bound20`: paper-quick's first six cells with the parameter box [−20, 20]
 *   instead of [−10, 10], a sensitivity check: the over-specified fits put
 *   parameters on the box bound, so the estimator is the box-constrained
 *   one; a rate that moves with the box is the box's, not the estimator's.
 * - `paper-tiny` (tests: seconds).
 */
export const PAPER_PRESETS: Record<
  "paper-quick" | "paper-quick-lownoise" | "paper-quick-bound20" | "paper" | "paper-tiny",
  PaperPreset
> = {
  "paper-tiny": {
    name: "paper-tiny",
    seeds: [1, 2],
    noise: 0.05,
    randomStarts: 1,
    stopping: { maxIterations: 60 },
    testSize: 200,
    cells: [
      paperCell("over", "dense", "linear", "partially", [40, 80]),
      paperCell("exact", "dense", "linear", "partially", [40, 80]),
    ],
  },
  "paper-quick": {
    ...QUICK_SETTINGS,
    name: "paper-quick",
    cells: [
      ...QUICK_CELLS,
      plantedCell("sigmoid", 0.5, QUICK_NS),
      plantedCell("softmax", 0.5, QUICK_NS),
    ],
  },
  "paper-quick-lownoise": {
    ...QUICK_SETTINGS,
    name: "paper-quick-lownoise",
    noise: 0.01,
    cells: QUICK_CELLS,
  },
  "paper-quick-bound20": {
    ...QUICK_SETTINGS,
    name: "paper-quick-bound20",
    stopping: { ...QUICK_SETTINGS.stopping, bound: 20 },
    cells: QUICK_CELLS,
  },
  paper: {
    name: "paper",
    seeds: Array.from({ length: 20 }, (_, i) => i + 1),
    noise: 0.05,
    randomStarts: 5,
    stopping: { gradTol: 1e-8, lossTol: 1e-10, maxIterations: 2000, bound: 10 },
    testSize: 5000,
    cells: [
      ...(["over", "exact"] as const).flatMap((fit) =>
        (["dense", "sparse"] as const).flatMap((regime) =>
          (["linear", "ffn"] as const).flatMap((expert) =>
            (["partially", "fully"] as const).map((score) =>
              paperCell(fit, regime, expert, score, logSpaced(100, 20000, 12))
            )
          )
        )
      ),
      plantedCell("sigmoid", 0.5, logSpaced(100, 20000, 12)),
      plantedCell("softmax", 0.5, logSpaced(100, 20000, 12)),
    ],
  },
};

/** Whether `name` is a paper-study preset. */
export function isPaperPreset(name: string): name is keyof typeof PAPER_PRESETS {
  return Object.hasOwn(PAPER_PRESETS, name);
}

/** Every run of a paper preset (optionally only the named cells), sorted by id. */
export function paperGrid(preset: PaperPreset, cells?: string[]): MoeRunSpec[] {
  if (cells) {
    for (const name of cells) {
      if (!preset.cells.some((c) => c.name === name)) {
        throw new RangeError(
          `preset ${preset.name} has no cell ${JSON.stringify(name)}; it has: ` +
            preset.cells.map((c) => c.name).join(", "),
        );
      }
    }
  }
  const runs: MoeRunSpec[] = [];
  for (const cell of preset.cells) {
    if (cells && !cells.includes(cell.name)) continue;
    for (const n of cell.ns) {
      for (const seed of preset.seeds) {
        for (const gate of ["softmax", "sigmoid"] as const) {
          runs.push({
            id: `${cell.name}-${gate}-n${n}-s${seed}`,
            cell: cell.name,
            attention: gate,
            n,
            seed,
            moe: {
              gate,
              score: cell.score,
              expert: cell.expert,
              regime: cell.regime,
              fit: cell.fit,
              n,
              seed,
              noise: cellNoise(cell, preset.noise, gate, n),
              randomStarts: preset.randomStarts,
              testSize: preset.testSize,
              stopping: preset.stopping,
            },
          });
        }
      }
    }
  }
  return runs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
