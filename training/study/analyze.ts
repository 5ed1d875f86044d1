/**
 * The study's analysis: from the finished runs of a grid to the numbers the
 * report shows, every mean with a t 95% interval over seeds.
 *
 * - **Teacher cells** (the paper's setting): per student activation and n,
 *   the test function error and the parameter errors (gating A = W_Q W_Kᵀ/√r,
 *   W_V, and the Voronoi loss), and the log-log slope of each against n, the
 *   empirical convergence rate, with a cluster-bootstrap interval that
 *   resamples whole seeds. Each run's metric is its final evaluation after the
 *   fixed step budget (not the best one, which would peek at the test set).
 * - **Task cells**: per activation and n, the test metric; samples-to-target
 *   (per seed, the smallest n whose final metric reaches the cell's target),
 *   steps-to-target (per run, the first evaluation reaching it); and the paired
 *   difference sigmoid − softmax at each n, seed by seed.
 *
 * Means and paired differences carry Student-t 95% intervals over seeds
 * (training/study/stats.ts tMeanCI: a percentile bootstrap over 5 seeds
 * covers about 85%); the slopes a cluster bootstrap over seeds with a fixed
 * resampling seed, so the same runs always give the same analysis.
 *
 * The paper study ({@linkcode analyzePaperStudy}, training/moe/) is analysed
 * with Student-t intervals over seeds, the paired slope difference with a
 * BCa paired-seed bootstrap beside it, local slopes and Holm's rule across
 * its primary tests (the functions of stats.ts named there).
 *
 * @module
 */

import type { PaperPreset, RunSpec, StudyCell } from "./grid.ts";
import { isPaperPreset, PAPER_PRESETS, STUDY_PRESETS } from "./grid.ts";
import type { MoeRunRecord, RunRecord } from "./runner.ts";
import { evaluate, type Inputs, packAtoms, trueAtoms } from "../moe/model.ts";
import { testInputs } from "../moe/run.ts";
import { nullAtoms, voronoiLoss, withoutAtoms } from "../moe/voronoi.ts";
import { extraTerm, matchedAtomError } from "../moe/matched.ts";
import {
  type CensoredSamples,
  censoredSamplesToTarget,
  holmAdjust,
  type Interval,
  type LocalSlope,
  localSlopes,
  logLogSlope,
  minimalDetectableDifference,
  samplesToTarget,
  slopeCI,
  type SlopeDifference,
  slopeDifferenceCI,
  type SlopeInterval,
  stepsToTarget,
  tMeanCI,
} from "./stats.ts";

type Act = "softmax" | "sigmoid";
const ACTS: Act[] = ["softmax", "sigmoid"];

/** Bootstrap settings of the slope intervals (cluster bootstrap over seeds). */
const BOOTSTRAP = { resamples: 4000, level: 0.95, seed: 2502 };

/**
 * The Student-t 95% interval of a mean over seeds (it holds its coverage at
 * 5–10 seeds, where a percentile bootstrap does not); one value gives the
 * value with unbounded (NaN) limits.
 */
function tCI(xs: number[]): Interval {
  if (xs.length >= 2) return tMeanCI(xs, 0.95);
  return { estimate: xs[0] ?? NaN, low: NaN, high: NaN, level: 0.95 };
}

/** A teacher cell's numbers for one student activation. */
export interface TeacherCurve {
  student: Act;
  /** Runs, and how many met the trainer's convergence criterion (none when it was off). */
  convergence: { runs: number; converged: number };
  points: {
    n: number;
    functionError: Interval;
    gating: Interval;
    value: Interval;
    voronoi: Interval;
  }[];
  /** Log-log slopes against n (cluster bootstrap over seeds). */
  slopes: {
    functionError: SlopeInterval;
    gating: SlopeInterval;
    value: SlopeInterval;
    voronoi: SlopeInterval;
  };
}

/** One teacher cell: teacher activation × expert (× student heads), both student activations. */
export interface TeacherAnalysis {
  cell: string;
  teacherActivation: Act;
  expert: string;
  studentHeads: number;
  /** Function error of predicting 0 on the test set (the task's chance level). */
  chance: number;
  curves: TeacherCurve[];
  /** Paired (same seed) difference of the function error, sigmoid − softmax student, per n. */
  paired: { n: number; difference: Interval }[];
}

/** One task cell's numbers for one activation. */
export interface TaskCurve {
  activation: Act;
  /** The test metric per n. */
  points: { n: number; metric: Interval }[];
  /** Per seed: the smallest n whose final metric reached the target (null: none did). */
  samplesToTarget: (number | null)[];
  /**
   * Samples-to-target over every seed, misses kept as right-censored (never
   * dropped): the median n with its distribution-free order-statistic
   * interval and the count censored (stats.ts censoredSamplesToTarget).
   */
  samplesToTargetMedian?: CensoredSamples;
  /** Per n: steps to reach the target over the runs that did, and how many did. */
  stepsToTarget: { n: number; reached: number; runs: number; steps?: Interval }[];
  /** Runs, and how many met the trainer's convergence criterion (none when it was off). */
  convergence: { runs: number; converged: number };
}

/** One task cell. */
export interface TaskAnalysis {
  cell: string;
  task: string;
  metricName: string;
  higherIsBetter: boolean;
  chance: number;
  target?: number;
  curves: TaskCurve[];
  /** Paired difference of the test metric, sigmoid − softmax, same seed, per n. */
  paired: { n: number; difference: Interval }[];
}

/** The whole analysis (study.json). */
export interface StudyAnalysis {
  version: 1;
  preset: string;
  /** When the analysis was made. */
  date: string;
  adapter: string;
  /** Runs analysed, and the training seconds they took in all. */
  runs: number;
  trainingSeconds: number;
  seeds: number[];
  teacher: TeacherAnalysis[];
  tasks: TaskAnalysis[];
}

/** Analyses the runs of `grid` (all of them must be present). Means and differences: t intervals over seeds. */
export function analyzeStudy(
  presetName: string,
  grid: RunSpec[],
  records: RunRecord[],
): StudyAnalysis {
  const preset = STUDY_PRESETS[presetName as keyof typeof STUDY_PRESETS];
  if (!preset) throw new RangeError(`unknown study preset ${presetName}`);
  const byId = new Map(records.map((r) => [r.spec.id, r]));
  const runs = grid.map((spec) => {
    const record = byId.get(spec.id);
    if (!record) throw new Error(`the run ${spec.id} is missing`);
    return record;
  });
  const cells = preset.cells.filter((c) => runs.some((r) => r.spec.cell === c.name));
  return {
    version: 1,
    preset: preset.name,
    date: new Date().toISOString(),
    adapter: runs[0]?.result.adapter ?? "",
    runs: runs.length,
    trainingSeconds: runs.reduce((s, r) => s + r.result.seconds, 0),
    seeds: preset.seeds,
    teacher: cells.filter((c) => c.teacher).map((c) => analyzeTeacher(c, runs)),
    tasks: cells.filter((c) => !c.teacher).map((c) => analyzeTask(c, runs)),
  };
}

function convergenceOf(runs: RunRecord[]): { runs: number; converged: number } {
  return { runs: runs.length, converged: runs.filter((r) => r.result.converged === true).length };
}

/** The runs of a cell with one activation, by n then seed. */
function select(runs: RunRecord[], cell: string, act: Act): Map<number, RunRecord[]> {
  const out = new Map<number, RunRecord[]>();
  for (const r of runs) {
    if (r.spec.cell !== cell || r.spec.attention !== act) continue;
    const list = out.get(r.spec.n) ?? [];
    list.push(r);
    out.set(r.spec.n, list);
  }
  for (const list of out.values()) list.sort((a, b) => a.spec.seed - b.spec.seed);
  return new Map([...out.entries()].sort((a, b) => a[0] - b[0]));
}

/** The paired difference sigmoid − softmax of `value` per n, matching runs by seed. */
function pairedByN(
  runs: RunRecord[],
  cell: string,
  value: (r: RunRecord) => number,
): { n: number; difference: Interval }[] {
  const soft = select(runs, cell, "softmax");
  const sig = select(runs, cell, "sigmoid");
  const out: { n: number; difference: Interval }[] = [];
  for (const [n, softRuns] of soft) {
    const sigRuns = sig.get(n) ?? [];
    const seeds = softRuns.map((r) => r.spec.seed).filter((s) =>
      sigRuns.some((q) => q.spec.seed === s)
    );
    if (seeds.length === 0) continue;
    const a = seeds.map((s) => value(sigRuns.find((q) => q.spec.seed === s)!));
    const b = seeds.map((s) => value(softRuns.find((q) => q.spec.seed === s)!));
    out.push({ n, difference: tCI(a.map((x, i) => x - b[i])) });
  }
  return out;
}

function analyzeTeacher(cell: StudyCell, runs: RunRecord[]): TeacherAnalysis {
  const t = cell.teacher!;
  const errors = (r: RunRecord) => {
    const pe = r.result.final.parameterErrors;
    if (!pe) throw new Error(`teacher run ${r.spec.id} has no parameter errors`);
    return pe;
  };
  const curves = ACTS.map((student): TeacherCurve => {
    const byN = select(runs, cell.name, student);
    const series = (value: (r: RunRecord) => number) => ({
      points: [...byN].map(([n, list]) => ({ n, ci: tCI(list.map(value)) })),
      slope: slopeCI(
        [...byN].flatMap(([n, list]) =>
          list.map((r) => ({ x: n, y: value(r), group: r.spec.seed }))
        ),
        BOOTSTRAP,
      ),
    });
    const fe = series((r) => r.result.final.metric);
    const gating = series((r) => errors(r).gating);
    const value = series((r) => errors(r).value);
    const voronoi = series((r) => errors(r).voronoi);
    return {
      student,
      convergence: convergenceOf([...byN.values()].flat()),
      points: fe.points.map((p, i) => ({
        n: p.n,
        functionError: p.ci,
        gating: gating.points[i].ci,
        value: value.points[i].ci,
        voronoi: voronoi.points[i].ci,
      })),
      slopes: {
        functionError: fe.slope,
        gating: gating.slope,
        value: value.slope,
        voronoi: voronoi.slope,
      },
    };
  });
  const any = runs.find((r) => r.spec.cell === cell.name)!;
  return {
    cell: cell.name,
    teacherActivation: t.activation,
    expert: t.expert,
    studentHeads: t.studentHeads,
    chance: any.result.chance,
    curves,
    paired: pairedByN(runs, cell.name, (r) => r.result.final.metric),
  };
}

function analyzeTask(cell: StudyCell, runs: RunRecord[]): TaskAnalysis {
  const any = runs.find((r) => r.spec.cell === cell.name)!;
  const higher = any.result.higherIsBetter;
  const curves = ACTS.map((activation): TaskCurve => {
    const byN = select(runs, cell.name, activation);
    const points = [...byN].map(([n, list]) => ({
      n,
      metric: tCI(list.map((r) => r.result.final.metric)),
    }));
    const seeds = [...new Set([...byN.values()].flat().map((r) => r.spec.seed))].sort((a, b) =>
      a - b
    );
    const target = cell.target;
    const perSeed = seeds.map((seed) => {
      if (target === undefined) return null;
      const curve = [...byN].flatMap(([n, list]) =>
        list.filter((r) => r.spec.seed === seed).map((r) => ({ n, metric: r.result.final.metric }))
      );
      return samplesToTarget(curve, target, higher) ?? null;
    });
    const nsOfCell = [...byN.keys()];
    const median = target === undefined || seeds.length === 0 ? undefined : censoredSamplesToTarget(
      nsOfCell,
      seeds.map((seed) =>
        nsOfCell.map((n) =>
          byN.get(n)!.find((r) => r.spec.seed === seed)?.result.final.metric ?? NaN
        )
      ),
      target,
      higher,
    );
    const steps = [...byN].map(([n, list]) => {
      const firsts = target === undefined ? [] : list
        .map((r) => stepsToTarget(r.result.evals, target, higher))
        .filter((s): s is number => s !== undefined);
      return {
        n,
        reached: firsts.length,
        runs: list.length,
        steps: firsts.length > 0 ? tCI(firsts) : undefined,
      };
    });
    return {
      activation,
      points,
      samplesToTarget: perSeed,
      samplesToTargetMedian: median,
      convergence: convergenceOf([...byN.values()].flat()),
      stepsToTarget: steps,
    };
  });
  return {
    cell: cell.name,
    task: cell.task,
    metricName: any.result.metricName,
    higherIsBetter: higher,
    chance: any.result.chance,
    target: cell.target,
    curves,
    paired: pairedByN(runs, cell.name, (r) => r.result.final.metric),
  };
}

// ---------------------------------------------------------------------------
// The paper study (training/moe/): Voronoi-loss rates of the least-squares estimator

/** One gate's curve in a paper-study cell. */
export interface PaperCurve {
  gate: Act;
  points: {
    n: number;
    /** Geometric mean over seeds of the Voronoi loss, with the t interval of the mean log. */
    voronoi: Interval;
    /** Geometric mean over seeds of the function error (mean squared f̂ − f*), likewise. */
    functionError: Interval;
    /** The Voronoi loss of every seed used, in seed order. */
    perSeed: number[];
  }[];
  /** Mean over seeds of the per-seed log-log slope of the Voronoi loss, with its t interval. */
  slope: Interval;
  /** The same for the function error (parametric for both gates: about −1). */
  functionErrorSlope: Interval;
  /** The pooled log-log line of the Voronoi loss: ln D ≈ intercept + slope · ln n. */
  fit: { intercept: number; slope: number };
  /** Slopes over sliding windows of 3 consecutive n. */
  localSlopes: LocalSlope[];
  /** Runs of this gate in the cell, how many converged, and the rate of non-convergence. */
  convergence: { runs: number; converged: number; nonConvergenceRate: number };
  /** How many runs each start won. */
  winners: Record<string, number>;
  /** Runs whose kept fit has a parameter on the box bound (|θ| = bound). */
  atBound: number;
  /** Runs whose Voronoi loss is more than half from cells holding several fitted experts. */
  multiDominated: number;
  /**
   * Per tolerance of {@linkcode NULL_TOLERANCES}: runs whose kept fit has a
   * null atom (training/moe/voronoi.ts nullAtoms: max over the held-out inputs
   * of |g_i h_i| ≤ tolerance · max |f*|), and the null atoms over those runs.
   */
  nullFits?: { tolerance: number; fits: number; atoms: number }[];
  /**
   * The gate-neutral endpoint (training/moe/matched.ts): per n the geometric
   * mean over seeds of the matched-atom error, with the t interval of the mean
   * log, and the mean per-seed log-log slope with its t interval.
   */
  matched?: EndpointCurve;
  /** Over-specified fits: the same for the RMS term of the unpaired atom(s). */
  extraTerm?: EndpointCurve;
}

/** An endpoint's curve over n (geometric means) and its mean per-seed slope. */
export interface EndpointCurve {
  points: { n: number; value: Interval }[];
  slope: Interval;
  /** Slopes over sliding windows of 3 consecutive n (a power law keeps one; a log rate drifts to 0). */
  localSlopes: LocalSlope[];
}

/** A slope difference with its test across the primary cells and its power. */
export interface EndpointDifference {
  difference: SlopeDifference;
  /** Holm-adjusted p across the primary cells (primary cells only). */
  holmP?: number;
  /**
   * The smallest slope difference the test detects with 80% power at the
   * level of Holm's first step (α / primary cells; α for a control), for
   * per-seed differences as spread as these ({@linkcode minimalDetectableDifference}).
   */
  mde: number;
  verdict: Verdict;
}

/**
 * A cell's verdict: a primary cell's "holds", "fails" or "cannot tell"; a
 * null control's "ties" or "differs"; a positive control's "detected" or
 * "missed" ({@linkcode verdictOf} states the rule).
 */
export type Verdict =
  | "holds"
  | "fails"
  | "cannot tell"
  | "ties"
  | "differs"
  | "detected"
  | "missed";

/** A paper-study cell. */
export interface PaperCellAnalysis {
  cell: string;
  fit: "over" | "exact";
  regime: string;
  expert: string;
  score: string;
  role: "primary" | "control" | "planted";
  /** The planted difference of a positive-control cell (training/study/grid.ts PaperCell.planted). */
  planted?: { gate: "sigmoid" | "softmax"; exponent: number };
  ns: number[];
  /** Seeds with every run of both gates finished (the ones analysed). */
  seeds: number[];
  /** Seeds of the preset left out because some of their runs are missing. */
  incompleteSeeds: number[];
  curves: PaperCurve[];
  /** Slope of the Voronoi loss, sigmoid − softmax, paired by seed (negative: sigmoid faster). */
  difference?: SlopeDifference;
  /** The same for the function error. */
  functionErrorDifference?: SlopeDifference;
  /** Holm-adjusted p-value of the slope difference across the study's primary cells. */
  holmP?: number;
  /** The minimal detectable difference of the Voronoi-loss slopes (see {@linkcode EndpointDifference}). */
  mde?: number;
  /**
   * The gate-neutral endpoint's slope difference, sigmoid − softmax, paired by
   * seed: the matched-atom error (a second family of tests, Holm across the
   * primary cells on its own).
   */
  matched?: EndpointDifference;
  /**
   * A sensitivity check, not the primary result: the slope difference with
   * each fit's null atoms removed before its Voronoi loss is computed (from
   * the stored parameters, no refitting), its Holm p across the primary cells
   * and the verdict the primary rule would give it; one per tolerance of
   * {@linkcode NULL_TOLERANCES}.
   */
  nullRemoved?: {
    tolerance: number;
    difference: SlopeDifference;
    holmP?: number;
    verdict: Verdict;
  }[];
  /**
   * "holds", "fails" or "cannot tell" (primary); "ties" or "differs" (null
   * control); "detected" or "missed" (positive control); "no data" when fewer
   * than 2 seeds have every run.
   */
  verdict: Verdict | "no data";
  /** The verdict in a sentence. */
  verdictText: string;
}

/** The paper study's analysis (study.json). */
export interface PaperAnalysis {
  version: 1;
  kind: "paper";
  preset: string;
  date: string;
  /** Runs analysed and the fit seconds they took in all. */
  runs: number;
  fitSeconds: number;
  seeds: number[];
  noise: number;
  randomStarts: number;
  stopping: Record<string, unknown>;
  /** Family-wise level of the primary tests (Holm). */
  alpha: number;
  cells: PaperCellAnalysis[];
  /** All runs: how many did not converge. */
  convergence: { runs: number; converged: number; nonConvergenceRate: number };
}

const ALPHA = 0.05;

/**
 * Tolerances of the null-atom diagnostic, relative to max |f*| on the held-out
 * inputs: the strict one first, then looser ones (an estimated null expert
 * keeps parameters at the noise level, so its term is small, not zero).
 */
export const NULL_TOLERANCES = [1e-3, 1e-2, 3e-2];

/**
 * The held-out inputs of a paper-study run (training/moe/run.ts testInputs;
 * tests/moe_null_test.ts checks that the function error recomputed on them
 * matches a run's).
 */
export const paperTestInputs: (testSize?: number) => Inputs = testInputs;

/**
 * A run's null atoms and its Voronoi loss with them removed (the fit restricted
 * to its non-null atoms; every atom kept when all would be null).
 */
export function nullAtomCheck(
  record: MoeRunRecord,
  inputs: Inputs,
  tolerance = NULL_TOLERANCES[0],
): { nullAtoms: number[]; voronoi: number } {
  const c = record.result.config;
  const base = { gate: c.gate, score: c.score, expert: c.expert, dim: 2 };
  const atoms = trueAtoms(c.regime);
  const truthSpec = { ...base, experts: atoms.length };
  const truth = packAtoms(truthSpec, atoms);
  const fStar = evaluate(truthSpec, truth, inputs);
  const scale = fStar.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const spec = { ...base, experts: record.result.k };
  const theta = Float64Array.from(record.result.theta);
  const found = nullAtoms(spec, theta, inputs, scale, tolerance);
  if (found.length === 0 || found.length === spec.experts) {
    return { nullAtoms: found, voronoi: record.result.voronoi };
  }
  const reduced = withoutAtoms(spec, theta, found);
  return { nullAtoms: found, voronoi: voronoiLoss(reduced.spec, reduced.theta, truth).value };
}

/**
 * A run's gate-neutral endpoints (training/moe/matched.ts): the matched-atom
 * error of the kept fit and the RMS term of its unpaired atoms on `inputs`.
 */
export function matchedEndpoints(
  record: MoeRunRecord,
  inputs: Inputs,
): { matched: number; extra: number } {
  const c = record.result.config;
  const base = { gate: c.gate, score: c.score, expert: c.expert, dim: 2 };
  const atoms = trueAtoms(c.regime);
  const truth = packAtoms({ ...base, experts: atoms.length }, atoms);
  const spec = { ...base, experts: record.result.k };
  const theta = Float64Array.from(record.result.theta);
  const m = matchedAtomError(spec, theta, truth);
  return { matched: m.value, extra: extraTerm(spec, theta, m.extra, inputs) };
}

/**
 * The stated rule: a primary cell "holds" (Holm-adjusted p ≤ α, sigmoid's
 * slope the steeper), "fails" (adjusted p ≤ α, softmax's) or "cannot tell";
 * a null control "ties" when the 95% interval of the difference holds 0, else
 * "differs"; a positive control is "detected" when its unadjusted p is at
 * most `plantedLevel` (the level of Holm's first step over the primary cells,
 * α / primary cells: the bar a primary cell must clear) and the difference lies
 * on the planted side of 0 (below it when sigmoid's noise shrinks), else "missed".
 */
function verdictOf(
  cell: Pick<PaperCellAnalysis, "role" | "planted">,
  d: SlopeDifference,
  holmP: number | undefined,
  plantedLevel: number,
): Verdict {
  if (cell.role === "primary") {
    return (holmP ?? 1) > ALPHA ? "cannot tell" : d.estimate < 0 ? "holds" : "fails";
  }
  if (cell.role === "planted") {
    const side = cell.planted!.gate === "sigmoid" ? d.estimate < 0 : d.estimate > 0;
    return d.pValue <= plantedLevel && side ? "detected" : "missed";
  }
  return d.lo <= 0 && d.hi >= 0 ? "ties" : "differs";
}

function logInterval(values: number[]): Interval {
  const logs = values.map((v) => Math.log(Math.max(v, 1e-300)));
  const t = logs.length >= 2
    ? tMeanCI(logs)
    : { estimate: logs[0], low: NaN, high: NaN, level: 0.95 };
  return {
    estimate: Math.exp(t.estimate),
    low: Math.exp(t.low),
    high: Math.exp(t.high),
    level: t.level,
  };
}

/**
 * Analyses the paper-study runs of a preset (its name, or the preset itself)
 * found in `records`. A cell is analysed over the seeds whose runs (every n,
 * both gates) are all present, when there are at least 2; the others are
 * listed as incomplete. Per gate: the geometric mean of the Voronoi loss per
 * n with the t interval of the mean log, the mean per-seed log-log slope with
 * its t interval, local slopes, convergence and winning starts. Per cell: the
 * paired slope difference sigmoid − softmax (t over seeds and BCa paired-seed
 * bootstrap). The primary cells' p-values are Holm-adjusted together; a
 * primary verdict is "holds" (adjusted p ≤ 0.05, sigmoid faster), "fails"
 * (adjusted p ≤ 0.05, softmax faster) or "cannot tell"; a control's is
 * "ties" when the 95% interval of the difference holds 0, else "differs"; a
 * positive control's "detected" or "missed" ({@linkcode verdictOf}). Each
 * endpoint (the Voronoi loss, the matched-atom error, each null-removed
 * tolerance) is its own Holm family.
 */
export function analyzePaperStudy(
  presetOrName: string | PaperPreset,
  records: MoeRunRecord[],
): PaperAnalysis {
  if (typeof presetOrName === "string" && !isPaperPreset(presetOrName)) {
    throw new RangeError(`unknown paper preset ${presetOrName}`);
  }
  const preset = typeof presetOrName === "string"
    ? PAPER_PRESETS[presetOrName as keyof typeof PAPER_PRESETS]
    : presetOrName;
  const byId = new Map(records.map((r) => [r.spec.id, r]));
  const used: MoeRunRecord[] = [];
  const inputsBySize = new Map<number, Inputs>();
  const checks = new Map<string, { nullAtoms: number[]; voronoi: number }>();
  const check = (r: MoeRunRecord, tolerance: number) => {
    const key = `${tolerance} ${r.spec.id}`;
    let out = checks.get(key);
    if (!out) {
      const size = r.result.config.testSize ?? 2000;
      let inputs = inputsBySize.get(size);
      if (!inputs) inputsBySize.set(size, inputs = paperTestInputs(size));
      checks.set(key, out = nullAtomCheck(r, inputs, tolerance));
    }
    return out;
  };
  const matchedChecks = new Map<string, { matched: number; extra: number }>();
  const matchedCheck = (r: MoeRunRecord) => {
    let out = matchedChecks.get(r.spec.id);
    if (!out) {
      const size = r.result.config.testSize ?? 2000;
      let inputs = inputsBySize.get(size);
      if (!inputs) inputsBySize.set(size, inputs = paperTestInputs(size));
      matchedChecks.set(r.spec.id, out = matchedEndpoints(r, inputs));
    }
    return out;
  };
  const cells: PaperCellAnalysis[] = preset.cells.map((cell) => {
    const get = (gate: Act, n: number, seed: number) =>
      byId.get(`${cell.name}-${gate}-n${n}-s${seed}`);
    const seeds = preset.seeds.filter((seed) =>
      cell.ns.every((n) => ACTS.every((g) => get(g, n, seed) !== undefined))
    );
    const incompleteSeeds = preset.seeds.filter((s) => !seeds.includes(s));
    const base = {
      cell: cell.name,
      fit: cell.fit,
      regime: cell.regime,
      expert: cell.expert,
      score: cell.score,
      role: cell.role,
      planted: cell.planted,
      ns: cell.ns,
      seeds,
      incompleteSeeds,
    };
    if (seeds.length < 2) {
      return {
        ...base,
        curves: [],
        verdict: "no data" as const,
        verdictText: `fewer than 2 seeds have every run finished (${seeds.length})`,
      };
    }
    for (const seed of seeds) {
      for (const n of cell.ns) for (const g of ACTS) used.push(get(g, n, seed)!);
    }
    // The null-atom check needs the stored parameters (every run of the cell).
    const withTheta = seeds.every((seed) =>
      cell.ns.every((n) => ACTS.every((g) => get(g, n, seed)!.result.theta.length > 0))
    );
    const table = (gate: Act, value: (r: MoeRunRecord) => number) =>
      seeds.map((seed) => cell.ns.map((n) => Math.max(value(get(gate, n, seed)!), 1e-300)));
    const curves = ACTS.map((gate): PaperCurve => {
      const d = table(gate, (r) => r.result.voronoi);
      const fe = table(gate, (r) => r.result.functionError);
      const runs = seeds.flatMap((seed) => cell.ns.map((n) => get(gate, n, seed)!));
      const converged = runs.filter((r) => r.result.converged).length;
      const winners: Record<string, number> = {};
      for (const r of runs) winners[r.result.winner] = (winners[r.result.winner] ?? 0) + 1;
      const bound = preset.stopping.bound ?? 10;
      const atBound = runs.filter((r) => r.result.theta.some((v) => Math.abs(v) >= bound)).length;
      const multiDominated = runs.filter((r) =>
        r.result.voronoiParts.multi > 0.5 * r.result.voronoi
      ).length;
      const nullFits = !withTheta ? undefined : NULL_TOLERANCES.map((tolerance) => {
        const nulls = runs.map((r) => check(r, tolerance).nullAtoms.length);
        return {
          tolerance,
          fits: nulls.filter((m) => m > 0).length,
          atoms: nulls.reduce((a, b) => a + b, 0),
        };
      });
      const slopeOf = (rows: number[][]) =>
        tMeanCI(rows.map((row) => logLogSlope(cell.ns, row).slope), 0.95);
      const endpoint = (rows: number[][]): EndpointCurve => ({
        points: cell.ns.map((n, i) => ({ n, value: logInterval(rows.map((row) => row[i])) })),
        slope: slopeOf(rows),
        localSlopes: cell.ns.length >= 3 ? localSlopes(cell.ns, rows, 3) : [],
      });
      const pooled = logLogSlope(
        seeds.flatMap(() => cell.ns),
        d.flat(),
      );
      return {
        gate,
        points: cell.ns.map((n, i) => ({
          n,
          voronoi: logInterval(d.map((row) => row[i])),
          functionError: logInterval(fe.map((row) => row[i])),
          perSeed: d.map((row) => row[i]),
        })),
        slope: slopeOf(d),
        functionErrorSlope: slopeOf(fe),
        fit: { intercept: pooled.intercept, slope: pooled.slope },
        localSlopes: cell.ns.length >= 3 ? localSlopes(cell.ns, d, 3) : [],
        convergence: {
          runs: runs.length,
          converged,
          nonConvergenceRate: (runs.length - converged) / runs.length,
        },
        winners,
        atBound,
        multiDominated,
        nullFits,
        matched: withTheta ? endpoint(table(gate, (r) => matchedCheck(r).matched)) : undefined,
        extraTerm: withTheta && cell.fit === "over"
          ? endpoint(table(gate, (r) => matchedCheck(r).extra))
          : undefined,
      };
    });
    const options = { resamples: 4000, level: 0.95, seed: 2502 };
    const difference = slopeDifferenceCI(
      cell.ns,
      table("sigmoid", (r) => r.result.voronoi),
      table("softmax", (r) => r.result.voronoi),
      options,
    );
    const functionErrorDifference = slopeDifferenceCI(
      cell.ns,
      table("sigmoid", (r) => r.result.functionError),
      table("softmax", (r) => r.result.functionError),
      options,
    );
    const nullRemoved = !withTheta ? undefined : NULL_TOLERANCES.map((tolerance) => ({
      tolerance,
      difference: slopeDifferenceCI(
        cell.ns,
        table("sigmoid", (r) => check(r, tolerance).voronoi),
        table("softmax", (r) => check(r, tolerance).voronoi),
        options,
      ),
      verdict: "cannot tell" as const,
    }));
    const matched = !withTheta ? undefined : {
      difference: slopeDifferenceCI(
        cell.ns,
        table("sigmoid", (r) => matchedCheck(r).matched),
        table("softmax", (r) => matchedCheck(r).matched),
        options,
      ),
      mde: NaN,
      verdict: "cannot tell" as const,
    };
    return {
      ...base,
      curves,
      difference,
      functionErrorDifference,
      matched: matched as PaperCellAnalysis["matched"],
      nullRemoved: nullRemoved as PaperCellAnalysis["nullRemoved"],
      verdict: "cannot tell" as const,
      verdictText: "",
    };
  });
  // Holm across the primary cells that have data; then the verdicts.
  const primary = cells.filter((c) => c.role === "primary" && c.difference);
  const adjusted = holmAdjust(primary.map((c) => c.difference!.pValue));
  primary.forEach((c, i) => (c.holmP = adjusted[i]));
  const primaryNull = cells.filter((c) => c.role === "primary" && c.nullRemoved);
  const primaryMatched = cells.filter((c) => c.role === "primary" && c.matched);
  holmAdjust(primaryMatched.map((c) => c.matched!.difference.pValue))
    .forEach((p, i) => (primaryMatched[i].matched!.holmP = p));
  // Power: at the level of Holm's first step for the primary cells, α for a control.
  for (const c of cells) {
    const level = c.role === "primary" ? ALPHA / Math.max(primary.length, 1) : ALPHA;
    if (c.difference) c.mde = minimalDetectableDifference(c.difference.perSeed, level);
    if (c.matched) {
      const m = c.matched;
      const levelM = c.role === "primary" ? ALPHA / Math.max(primaryMatched.length, 1) : ALPHA;
      m.mde = minimalDetectableDifference(m.difference.perSeed, levelM);
      m.verdict = verdictOf(c, m.difference, m.holmP, levelM);
    }
  }
  NULL_TOLERANCES.forEach((_, t) => {
    const adjustedNull = holmAdjust(primaryNull.map((c) => c.nullRemoved![t].difference.pValue));
    primaryNull.forEach((c, i) => (c.nullRemoved![t].holmP = adjustedNull[i]));
  });
  for (const c of cells) {
    for (const s of c.nullRemoved ?? []) {
      s.verdict = verdictOf(c, s.difference, s.holmP, ALPHA / Math.max(primaryNull.length, 1));
    }
  }
  for (const c of cells) {
    if (!c.difference) continue;
    const d = c.difference;
    const text = `slope difference sigmoid − softmax ${d.estimate.toFixed(3)} [${
      d.lo.toFixed(3)
    }, ${d.hi.toFixed(3)}] over ${c.seeds.length} seeds`;
    c.verdict = verdictOf(c, d, c.holmP, ALPHA / Math.max(primary.length, 1));
    if (c.role === "primary") {
      c.verdictText = c.verdict === "holds"
        ? `the claim holds here: sigmoid's Voronoi loss falls faster (${text}, Holm p = ${
          c.holmP!.toPrecision(2)
        })`
        : c.verdict === "fails"
        ? `the claim fails here: softmax's Voronoi loss falls faster (${text}, Holm p = ${
          c.holmP!.toPrecision(2)
        })`
        : `this experiment cannot tell the gates apart here (${text}, Holm p = ${
          c.holmP!.toPrecision(2)
        })`;
    } else if (c.role === "planted") {
      const p = c.planted!;
      const expected = (p.gate === "sigmoid" ? -1 : 1) * p.exponent;
      const covers = d.lo <= expected && expected <= d.hi;
      c.verdictText = `positive control (${p.gate}'s noise shrinks as (n/n₀)^−${p.exponent}, ` +
        `so its slope must be steeper by ${p.exponent}): ${
          c.verdict === "detected" ? "detected" : "missed"
        } at the primary cells' level, p ≤ ${
          (ALPHA / Math.max(primary.length, 1)).toPrecision(2)
        } (${text}, p = ${d.pValue.toPrecision(2)}; the planted ${
          expected >= 0 ? "+" : ""
        }${expected} is ${covers ? "inside" : "outside"} the interval)`;
    } else {
      c.verdictText = c.verdict === "ties"
        ? `control: the gates tie, as theory predicts for an exact-specified fit (${text})`
        : `control: the gates differ where theory predicts a tie (${text}) — read the primary cells with care`;
    }
  }
  const all = used;
  const converged = all.filter((r) => r.result.converged).length;
  return {
    version: 1,
    kind: "paper",
    preset: preset.name,
    date: new Date().toISOString(),
    runs: all.length,
    fitSeconds: all.reduce((s, r) => s + r.result.seconds, 0),
    seeds: preset.seeds,
    noise: preset.noise,
    randomStarts: preset.randomStarts,
    stopping: { ...preset.stopping },
    alpha: ALPHA,
    cells,
    convergence: {
      runs: all.length,
      converged,
      nonConvergenceRate: all.length ? (all.length - converged) / all.length : NaN,
    },
  };
}
