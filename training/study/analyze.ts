/**
 * The study's analysis: from the finished runs of a grid to the numbers the
 * report shows, every mean with a bootstrap 95% interval over seeds.
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
 * Every interval is a percentile bootstrap over seeds (training/study/stats.ts) with a
 * fixed resampling seed, so the same runs always give the same analysis.
 *
 * @module
 */

import type { RunSpec, StudyCell } from "./grid.ts";
import { STUDY_PRESETS } from "./grid.ts";
import type { RunRecord } from "./runner.ts";
import {
  type Interval,
  meanCI,
  pairedCI,
  samplesToTarget,
  slopeCI,
  type SlopeInterval,
  stepsToTarget,
} from "./stats.ts";

type Act = "softmax" | "sigmoid";
const ACTS: Act[] = ["softmax", "sigmoid"];

/** Bootstrap settings of every interval in the analysis. */
const BOOTSTRAP = { resamples: 4000, level: 0.95, seed: 2502 };

/** A teacher cell's numbers for one student activation. */
export interface TeacherCurve {
  student: Act;
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
  /** Mean of log2(samples-to-target) over the seeds that reached it, as n (a geometric mean). */
  samplesToTargetMean?: Interval;
  /** Per n: steps to reach the target over the runs that did, and how many did. */
  stepsToTarget: { n: number; reached: number; runs: number; steps?: Interval }[];
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

/** Analyses the runs of `grid` (all of them must be present). */
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
    out.push({ n, difference: pairedCI(a, b, BOOTSTRAP) });
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
      points: [...byN].map(([n, list]) => ({ n, ci: meanCI(list.map(value), BOOTSTRAP) })),
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
      metric: meanCI(list.map((r) => r.result.final.metric), BOOTSTRAP),
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
    const reachedN = perSeed.filter((x): x is number => x !== null);
    const logMean = reachedN.length > 0
      ? meanCI(reachedN.map((n) => Math.log2(n)), BOOTSTRAP)
      : undefined;
    const steps = [...byN].map(([n, list]) => {
      const firsts = target === undefined ? [] : list
        .map((r) => stepsToTarget(r.result.evals, target, higher))
        .filter((s): s is number => s !== undefined);
      return {
        n,
        reached: firsts.length,
        runs: list.length,
        steps: firsts.length > 0 ? meanCI(firsts, BOOTSTRAP) : undefined,
      };
    });
    return {
      activation,
      points,
      samplesToTarget: perSeed,
      samplesToTargetMean: logMean && {
        estimate: 2 ** logMean.estimate,
        low: 2 ** logMean.low,
        high: 2 ** logMean.high,
        level: logMean.level,
      },
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
