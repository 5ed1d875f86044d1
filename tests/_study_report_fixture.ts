/**
 * TEST DATA for the study report tests: synthetic finished runs of the `tiny`
 * preset's grid, analysed by the real training/study/analyze.ts. Every number here is
 * made up by a formula below; none was trained or measured, and the adapter
 * says so ("TEST DATA"), which the page shows in its header.
 */

import {
  analyzePaperStudy,
  analyzeStudy,
  type PaperAnalysis,
  type StudyAnalysis,
} from "../training/study/analyze.ts";
import {
  paperGrid,
  type PaperPreset,
  type RunSpec,
  STUDY_PRESETS,
  studyGrid,
} from "../training/study/grid.ts";
import type { MoeRunRecord, RunRecord } from "../training/study/runner.ts";
import type { MoeRunResult } from "../training/moe/run.ts";
import type { EvalRecord, TrainResult } from "../training/trainer.ts";
import type { ModelConfig } from "../training/model.ts";

/** The adapter every fixture run claims: it labels the page as test data. */
export const TEST_ADAPTER = "TEST DATA (synthetic runs, nothing measured)";

/** A small deterministic wobble in [1 − amp, 1 + amp] per (seed, n, activation). */
function wobble(spec: RunSpec, amp: number, salt = 0): number {
  const k = spec.seed * 7.31 + Math.log2(spec.n) * 1.7 + (spec.attention === "sigmoid" ? 3.1 : 0) +
    salt;
  return 1 + amp * Math.sin(k);
}

function evalsOf(steps: number, every: number, final: number, start: number): EvalRecord[] {
  const out: EvalRecord[] = [];
  for (let step = 0; step <= steps; step += every) {
    const f = steps === 0 ? 1 : step / steps;
    out.push({ step, loss: 1 - 0.5 * f, metric: start + (final - start) * Math.sqrt(f) });
  }
  out[out.length - 1].metric = final;
  return out;
}

/** A plausible TrainResult for one run of the grid. */
export function fakeResult(spec: RunSpec): TrainResult {
  const steps = spec.config.steps ?? 100;
  const every = spec.config.evalEvery ?? 10;
  const sig = spec.attention === "sigmoid";
  let evals: EvalRecord[];
  let metricName: string;
  let higherIsBetter: boolean;
  let chance: number;
  let model: ModelConfig;
  if (spec.config.task === "teacher") {
    metricName = "function error";
    higherIsBetter = false;
    chance = 2.5;
    // Power laws in n, the sigmoid student a little faster.
    const fe = 2 * spec.n ** (sig ? -0.55 : -0.45) * wobble(spec, 0.03);
    evals = evalsOf(steps, every, fe, chance);
    const last = evals[evals.length - 1];
    last.parameterErrors = {
      gating: 1.5 * spec.n ** (sig ? -0.5 : -0.4) * wobble(spec, 0.04, 1),
      value: 0.8 * spec.n ** (sig ? -0.48 : -0.42) * wobble(spec, 0.04, 2),
      voronoi: 0.5 * spec.n ** -0.3 * wobble(spec, 0.03, 3),
    };
    model = {
      arch: "attention",
      input: { kind: "vectors", dim: 8 },
      output: { kind: "regression", dim: 8 },
      seqLen: 8,
      width: 8,
      heads: 1,
      layers: 1,
      mlpRatio: 4,
      attention: spec.attention,
      causal: false,
      qkNorm: false,
      positions: false,
      expert: "linear",
      headDim: 4,
    };
  } else {
    metricName = "accuracy";
    higherIsBetter = true;
    chance = 0.3;
    // Accuracy grows with log n; at n = 16 some seeds reach the target 0.5, some do not.
    const acc = Math.min(
      0.98,
      (0.14 + 0.085 * Math.log2(spec.n) + (sig ? 0.04 : 0)) * wobble(spec, 0.08),
    );
    evals = evalsOf(steps, every, acc, chance);
    model = {
      arch: "transformer",
      input: { kind: "tokens", vocab: 4 },
      output: { kind: "token-class", classes: 4 },
      seqLen: 8,
      width: 8,
      heads: 2,
      layers: 1,
      mlpRatio: 4,
      attention: spec.attention,
      causal: false,
      qkNorm: false,
      positions: true,
      expert: "linear",
      headDim: 4,
    };
  }
  const final = evals[evals.length - 1];
  const best = evals.reduce((
    b,
    e,
  ) => ((higherIsBetter ? e.metric > b.metric : e.metric < b.metric) ? e : b));
  return {
    task: spec.config.task,
    attention: spec.attention,
    n: spec.n,
    seed: spec.seed,
    metricName,
    higherIsBetter,
    chance,
    model,
    parameterCount: 1234,
    steps,
    batchSize: 16,
    stopReason: "steps",
    converged: false,
    relativeChange: null,
    finalGradNorm: 1,
    losses: Array.from({ length: steps }, (_, i) => 1 - 0.5 * i / steps),
    gradNorms: Array.from({ length: steps }, () => 1),
    evals,
    final,
    best,
    tokensPerSecond: 1000,
    seconds: 1.5 + spec.n / 64,
    adapter: TEST_ADAPTER,
  };
}

/** Which part of the tiny preset the fixture analyses. */
export interface StudyFixtureOptions {
  /** Only these cells (names or tasks), as `studyGrid`'s filter. Default: all. */
  cells?: string[];
  /**
   * Drop the task cells' targets, giving what analyzeStudy gives for a cell
   * without one (no samples- or steps-to-target). Default false.
   */
  noTarget?: boolean;
}

/** TEST DATA: a StudyAnalysis of synthetic runs of the tiny preset, through the real analysis. */
export function fixtureStudy(options: StudyFixtureOptions = {}): StudyAnalysis {
  const grid = studyGrid(STUDY_PRESETS.tiny, options.cells);
  const records: RunRecord[] = grid.map((spec) => ({ spec, result: fakeResult(spec) }));
  const analysis = analyzeStudy("tiny", grid, records);
  analysis.date = "2025-01-01T00:00:00.000Z (TEST DATA)";
  if (options.noTarget) {
    analysis.tasks = analysis.tasks.map((t) => ({
      ...t,
      target: undefined,
      curves: t.curves.map((k) => ({
        ...k,
        samplesToTarget: k.samplesToTarget.map(() => null),
        samplesToTargetMedian: undefined,
        stepsToTarget: k.stepsToTarget.map((s) => ({ n: s.n, reached: 0, runs: s.runs })),
      })),
    }));
  }
  return analysis;
}

// ---------------------------------------------------------------------------
// The paper study (training/moe/)

/**
 * TEST DATA: a small paper preset (5 n, 4 seeds; one primary and one control
 * cell) whose runs are made up below. In the primary cell the sigmoid loss
 * falls as n^-0.5 and the softmax one as n^-0.1 (the sigmoid slope is 0.4
 * steeper); in the control both fall as n^-0.5. Every tenth softmax run of the
 * primary cell is marked not converged, and the winners alternate.
 */
export const FIXTURE_PAPER_PRESET: PaperPreset = {
  name: "paper-fixture",
  seeds: [1, 2, 3, 4],
  noise: 0.05,
  randomStarts: 2,
  stopping: { maxIterations: 100 },
  testSize: 100,
  cells: [
    {
      name: "over-dense-linear-partially",
      fit: "over",
      regime: "dense",
      expert: "linear",
      score: "partially",
      ns: [100, 200, 400, 800, 1600],
      role: "primary",
    },
    {
      name: "exact-dense-linear-partially",
      fit: "exact",
      regime: "dense",
      expert: "linear",
      score: "partially",
      ns: [100, 200, 400, 800, 1600],
      role: "control",
    },
  ],
};

/**
 * The made-up records of {@linkcode FIXTURE_PAPER_PRESET}; with `slowGate:
 * "sigmoid"` the primary cell's gates swap roles (softmax falls faster).
 */
export function fixturePaperRecords(
  options: { slowGate?: "softmax" | "sigmoid" } = {},
): MoeRunRecord[] {
  const slowGate = options.slowGate ?? "softmax";
  return paperGrid(FIXTURE_PAPER_PRESET).map((spec, i) => {
    const over = spec.moe.fit === "over";
    const slope = over && spec.attention === slowGate ? -0.1 : -0.5;
    const wobble = 1 + 0.05 * Math.sin(spec.seed * 3.7 + Math.log(spec.n) * 1.3);
    const voronoi = 3 * spec.n ** slope * wobble;
    const converged = !(over && spec.attention === "softmax" && i % 10 === 0);
    const result: MoeRunResult = {
      kind: "moe",
      config: spec.moe,
      k: over ? 3 : 2,
      kStar: 2,
      voronoi,
      voronoiParts: {
        mass: voronoi / 3,
        single: voronoi / 3,
        multi: voronoi / 3,
        cellSizes: [2, 1],
      },
      functionError: 0.01 / spec.n * wobble,
      trainLoss: 0.0025,
      converged,
      winner: i % 2 ? "truth-split" : "random-1",
      starts: [],
      theta: [],
      seconds: 0.01,
    };
    return { spec, result };
  });
}

/** The fixture's analysis (through the real analyzePaperStudy). */
export function fixturePaperStudy(
  options: { slowGate?: "softmax" | "sigmoid" } = {},
): PaperAnalysis {
  return analyzePaperStudy(FIXTURE_PAPER_PRESET, fixturePaperRecords(options));
}
