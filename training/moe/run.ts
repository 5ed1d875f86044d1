/**
 * One run of the paper study: draw n samples from the true mixture, fit the
 * least-squares estimator with the same gate from several starts, and measure
 * the kept fit (Voronoi loss against the truth, function error on held-out
 * inputs, optimisation diagnostics).
 *
 * @module
 */

import { Rng } from "../rng.ts";
import {
  fitMultiStart,
  type FitOptions,
  randomStart,
  type StartResult,
  truthSplitStart,
} from "./fit.ts";
import {
  checkSpec,
  evaluate,
  type Expert,
  type Gate,
  type Inputs,
  type MoeSpec,
  packAtoms,
  type Regime,
  sampleData,
  sampleInputs,
  type Score,
  trueAtoms,
} from "./model.ts";
import { voronoiLoss } from "./voronoi.ts";

/** What one paper-study run fits. */
export interface MoeRunConfig {
  gate: Gate;
  score: Score;
  expert: Expert;
  regime: Regime;
  /** "over": k = k* + 1 fitted experts; "exact": k = k* (the control). */
  fit: "over" | "exact";
  n: number;
  seed: number;
  /** Noise standard deviation. Default 0.05. */
  noise?: number;
  /** Random starts beside the truth-split one. Default 3. */
  randomStarts?: number;
  /** Held-out inputs for the function error. Default 2000. */
  testSize?: number;
  /** The stopping rule of each start. */
  stopping?: FitOptions;
}

/** What one run measured (stored in runs/<id>.json). */
export interface MoeRunResult {
  kind: "moe";
  config: MoeRunConfig;
  /** Fitted experts k and true experts k*. */
  k: number;
  kStar: number;
  /** The Voronoi loss of the kept fit and its parts. */
  voronoi: number;
  voronoiParts: { mass: number; single: number; multi: number; cellSizes: number[] };
  /** Mean squared difference of the fitted and true regression functions on held-out inputs. */
  functionError: number;
  /** Training mean squared error of the kept fit. */
  trainLoss: number;
  /** Whether the kept start met the stopping rule. */
  converged: boolean;
  /** Name of the kept start. */
  winner: string;
  starts: StartResult[];
  /** The kept parameters. */
  theta: number[];
  seconds: number;
}

/** Seed of the held-out inputs (independent of every training draw). */
const TEST_SEED = 0x5eed;

/** The held-out inputs of every run: `testSize` draws, the same for every run and seed. */
export function testInputs(testSize = 2000): Inputs {
  return sampleInputs(2, testSize, TEST_SEED);
}

/** Which true atom the truth-split start duplicates: the input-independent one when sparse. */
export function splitAtom(regime: Regime): number {
  return regime === "sparse" ? 1 : 0;
}

/** Runs one paper-study fit. */
export function runMoe(config: MoeRunConfig): MoeRunResult {
  const started = performance.now();
  const noise = config.noise ?? 0.05;
  const randomStarts = config.randomStarts ?? 3;
  if (!Number.isInteger(randomStarts) || randomStarts < 0) {
    throw new RangeError(`randomStarts must be a non-negative integer, got ${randomStarts}`);
  }
  const truthAtoms = trueAtoms(config.regime);
  const kStar = truthAtoms.length;
  const base = { gate: config.gate, score: config.score, expert: config.expert, dim: 2 };
  const truthSpec: MoeSpec = { ...base, experts: kStar };
  const k = config.fit === "over" ? kStar + 1 : kStar;
  if (config.fit !== "over" && config.fit !== "exact") {
    throw new RangeError(`fit must be "over" or "exact", got ${JSON.stringify(config.fit)}`);
  }
  const spec: MoeSpec = { ...base, experts: k };
  checkSpec(spec);
  const truth = packAtoms(truthSpec, truthAtoms);
  const data = sampleData(truthSpec, truth, config.n, noise, config.seed);
  // Starts depend on the seed only, not on n or the gate: the same starts for every n of a seed.
  const rng = new Rng(config.seed * 7919 + 17);
  const starts = [{
    name: "truth-split",
    theta: truthSplitStart(spec, truthAtoms, splitAtom(config.regime), rng.fork(1)),
  }];
  for (let s = 0; s < randomStarts; s++) {
    starts.push({ name: `random-${s + 1}`, theta: randomStart(spec, rng.fork(100 + s)) });
  }
  const fit = fitMultiStart(spec, data.inputs, data.y, starts, config.stopping);
  const loss = voronoiLoss(spec, fit.theta, truth);
  const test = testInputs(config.testSize ?? 2000);
  const fHat = evaluate(spec, fit.theta, test), fStar = evaluate(truthSpec, truth, test);
  let fe = 0;
  for (let i = 0; i < test.n; i++) fe += (fHat[i] - fStar[i]) ** 2;
  return {
    kind: "moe",
    config,
    k,
    kStar,
    voronoi: loss.value,
    voronoiParts: {
      mass: loss.mass,
      single: loss.single,
      multi: loss.multi,
      cellSizes: loss.cells.map((c) => c.length),
    },
    functionError: fe / test.n,
    trainLoss: fit.loss,
    converged: fit.converged,
    winner: fit.starts[fit.winner].start,
    starts: fit.starts,
    theta: Array.from(fit.theta),
    seconds: (performance.now() - started) / 1000,
  };
}
