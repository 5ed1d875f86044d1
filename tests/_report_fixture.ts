/**
 * TEST DATA for the report tests: a fake but plausible sweep results document
 * built in code. Every number here is made up by a formula below; none is a
 * measurement, and the adapter says so.
 */

import type {
  Implementation,
  MaxSeqLenRecord,
  SweepFailure,
  SweepRecord,
  SweepResults,
  TrainingStepRecord,
} from "../bench/results.ts";

/** What the fake sweep covers; every field has a default. */
export interface FixtureOptions {
  seqLens?: number[];
  headDims?: number[];
  causal?: boolean[];
  /** f16 records (fused only, as the sweep does). Default true. */
  f16?: boolean;
  /** TF.js records, longest-sequence rows and training steps. Default true. */
  tfjs?: boolean;
  /** ONNX Runtime Web (forward only, with the kernel it ran) and jax-js records. Default true. */
  peers?: boolean;
  /** The matmul roofline. Default true. */
  roofline?: boolean;
  /** A few recorded failures (TF.js backward out of memory at the longest S). Default true. */
  failures?: boolean;
  /** Training step records. Default true. */
  training?: boolean;
}

/** Our made-up "GFLOP/s at S → ∞" per implementation, forward f32 softmax, D = 64. */
const PEAK: Record<Implementation, number> = {
  fused: 180,
  unfused: 70,
  tfjs: 45,
  ort: 60,
  jax: 40,
};
/** Made-up sigmoid / softmax speed-ups. */
const SIGMOID_GAIN: Record<Implementation, number> = {
  fused: 1.12,
  unfused: 1.04,
  tfjs: 1.01,
  ort: 0.7,
  jax: 1.02,
};
/** Made-up descriptions of what a peer ran (ORT's names its kernel, as the sweep records it). */
const RAN: Partial<Record<Implementation, Record<"softmax" | "sigmoid", string>>> = {
  ort: {
    softmax: "TEST DATA: MultiHeadAttention; FlashAttention (fused; programs: CopyKVCache, " +
      "FlashAttention); ORT's own device",
    sigmoid: "TEST DATA: unfused composition; unfused (programs: Transpose, MatMul, Mul, Add, " +
      "Sigmoid, MatMul); ORT's own device",
  },
  jax: {
    softmax: "TEST DATA: jit(nn.dotProductAttention); jax-js's own device",
    sigmoid: "TEST DATA: jit(composed ops); jax-js's own device",
  },
};

/** The fake GFLOP/s of one case: saturating in S, a little jitter, two decimals. */
function fakeGflops(
  impl: Implementation,
  activation: "softmax" | "sigmoid",
  pass: "forward" | "backward",
  precision: "f32" | "f16",
  seqLen: number,
  headDim: number,
  causal: boolean,
): number {
  let g = PEAK[impl] * seqLen / (seqLen + 512) * Math.sqrt(headDim / 64);
  if (activation === "sigmoid") g *= SIGMOID_GAIN[impl];
  if (pass === "backward") g *= 0.72;
  if (precision === "f16") g *= 1.31;
  if (causal) g *= 0.83;
  const jitter = 1 + 0.01 * Math.sin(seqLen * 0.37 + headDim * 1.3 + (causal ? 0.5 : 0));
  return Math.round(g * jitter * 100) / 100;
}

/** The attention FLOPs of one pass (the sweep's convention: backward = 2.5 × forward). */
function flops(
  batch: number,
  heads: number,
  seqLen: number,
  headDim: number,
  causal: boolean,
  pass: "forward" | "backward",
): number {
  const forward = 4 * batch * heads * seqLen * seqLen * headDim * (causal ? 0.5 : 1);
  return pass === "backward" ? 2.5 * forward : forward;
}

/** Bytes of q, k, v, out (+ S×S scratch for unfused and TF.js, + gradients backward). */
function fakeBytes(
  impl: Implementation,
  pass: "forward" | "backward",
  precision: "f32" | "f16",
  batch: number,
  heads: number,
  seqLen: number,
  headDim: number,
): number {
  const el = precision === "f16" ? 2 : 4;
  const tensors = (pass === "backward" ? 8 : 4) * batch * heads * seqLen * headDim * el;
  const scores = batch * heads * seqLen * seqLen * 4;
  const scratch = impl === "fused" ? batch * heads * seqLen * 4 : (impl === "tfjs" ? 3 : 1) *
    scores * (pass === "backward" ? 2 : 1);
  return tensors + scratch;
}

/**
 * TEST DATA: a fake sweep results document (B=1, H=4; forward and backward;
 * fused and unfused in f32, fused in f16, TF.js in f32), plausible in shape
 * and size but made up. Deterministic: the same options give the same document.
 */
export function fixtureResults(options: FixtureOptions = {}): SweepResults {
  const seqLens = options.seqLens ?? [256, 512, 1024, 2048];
  const headDims = options.headDims ?? [32, 64];
  const causals = options.causal ?? [false, true];
  const withTfjs = options.tfjs ?? true;
  const withPeers = options.peers ?? true;
  const withF16 = options.f16 ?? true;
  const withFailures = options.failures ?? true;
  const batch = 1;
  const heads = 4;
  const records: SweepRecord[] = [];
  const failures: SweepFailure[] = [];
  const longest = Math.max(...seqLens);
  for (const headDim of headDims) {
    for (const seqLen of seqLens) {
      for (const causal of causals) {
        for (const pass of ["forward", "backward"] as const) {
          for (const precision of withF16 ? ["f32", "f16"] as const : ["f32"] as const) {
            for (const impl of ["fused", "unfused", "tfjs", "ort", "jax"] as const) {
              if (impl === "tfjs" && !withTfjs) continue;
              if ((impl === "ort" || impl === "jax") && !withPeers) continue;
              if (impl === "ort" && pass === "backward") continue; // ORT has no backward
              if (precision === "f16" && impl !== "fused") continue;
              for (const activation of ["softmax", "sigmoid"] as const) {
                const base = {
                  impl,
                  activation,
                  pass,
                  precision,
                  batch,
                  heads,
                  seqLen,
                  headDim,
                  causal,
                };
                if (
                  withFailures && impl === "tfjs" && pass === "backward" && seqLen === longest &&
                  headDim === Math.max(...headDims)
                ) {
                  failures.push({
                    ...base,
                    error: "TEST DATA: out of memory allocating the S×S gradient buffers",
                  });
                  continue;
                }
                const gflops = fakeGflops(
                  impl,
                  activation,
                  pass,
                  precision,
                  seqLen,
                  headDim,
                  causal,
                );
                const ms = flops(batch, heads, seqLen, headDim, causal, pass) / gflops / 1e6;
                const peer = impl === "tfjs" || impl === "ort" || impl === "jax";
                // The peers have only the wall clock; sigmax's wall clock adds submit overhead.
                const wall = peer ? ms : ms * 1.15 + 0.2;
                records.push({
                  ...base,
                  msMedian: ms,
                  msMin: ms * 0.97,
                  msMax: ms * 1.08,
                  gflops,
                  // ORT and jax-js allocate on devices of their own: unknown (0).
                  peakBytes: impl === "ort" || impl === "jax"
                    ? 0
                    : fakeBytes(impl, pass, precision, batch, heads, seqLen, headDim),
                  clock: peer ? "wall" : "timestamp",
                  msWallMedian: wall,
                  msWallMin: peer ? ms * 0.97 : wall * 0.95,
                  msWallMax: peer ? ms * 1.08 : wall * 1.1,
                  ...(RAN[impl] ? { ran: RAN[impl]![activation] } : {}),
                });
              }
            }
          }
        }
      }
    }
  }
  const boundBytes = 2 ** 30;
  const maxSeqLen: MaxSeqLenRecord[] = [];
  for (const impl of ["fused", "unfused", "tfjs"] as const) {
    if (impl === "tfjs" && !withTfjs) continue;
    for (const activation of ["softmax", "sigmoid"] as const) {
      if (impl === "fused") {
        maxSeqLen.push({ impl, activation, headDim: 32, maxSeqLen: 65536, boundBytes });
      } else {
        const limit = impl === "unfused" ? 16384 : 8192;
        maxSeqLen.push({
          impl,
          activation,
          headDim: 32,
          maxSeqLen: limit,
          failedAt: limit * 2,
          reason: `TEST DATA: needs about ${
            impl === "unfused" ? "1.00" : "3.00"
          } GiB, over the 1 GiB bound`,
          boundBytes,
        });
      }
    }
  }
  const model = { width: 64, layers: 2, heads: 4, seqLen: 64, batch: 16 };
  const training: TrainingStepRecord[] = [];
  if (options.training ?? true) {
    for (const activation of ["softmax", "sigmoid"] as const) {
      training.push({
        impl: "sigmax",
        activation,
        tokensPerSecond: activation === "sigmoid" ? 41234.5 : 39876.25,
        msMedian: activation === "sigmoid" ? 24.84 : 25.68,
        model,
      });
      if (withTfjs) {
        training.push({
          impl: "tfjs",
          activation,
          tokensPerSecond: activation === "sigmoid" ? 20876.5 : 21012.75,
          msMedian: activation === "sigmoid" ? 49.05 : 48.73,
          model,
        });
      }
    }
  }
  const results: SweepResults = {
    version: 1,
    preset: "test-fixture",
    date: "2026-01-02T03:04:05.000Z",
    adapter: {
      description: "TEST FIXTURE <not a measurement> & made-up numbers",
      software: false,
      shaderF16: withF16,
    },
    seconds: 754.3,
    records,
    failures,
    maxSeqLen,
    training,
  };
  if (options.roofline ?? true) {
    results.roofline = { gflops: 612.4, size: 2048 };
    if (withTfjs) results.roofline.tfjsGflops = 433.9;
    if (withPeers) results.roofline.jaxGflops = 287.6;
  }
  return results;
}

/** The one record of the fixture that matches `where` (throws when there is not exactly one). */
export function recordOf(results: SweepResults, where: Partial<SweepRecord>): SweepRecord {
  const found = results.records.filter((r) =>
    Object.entries(where).every(([k, v]) => (r as unknown as Record<string, unknown>)[k] === v)
  );
  if (found.length !== 1) {
    throw new Error(`fixture: ${found.length} records match ${JSON.stringify(where)}`);
  }
  return found[0];
}
