/**
 * The throughput sweep: `deno task bench -- --preset quick|full|gpu [--out FILE]`.
 *
 * Times attention over seqLen × headDim × causal × activation × pass ×
 * implementation (fused, unfused, and the peers: TF.js, ONNX Runtime Web,
 * jax-js) × precision, finds the longest
 * sequence each implementation runs within a memory bound, measures our
 * matmul's best GFLOP/s (the roofline) and a training step, and writes one
 * JSON document ({@linkcode SweepResults}) for `deno task report`.
 *
 * Within a shape, the sigmax variants run interleaved (each round runs every
 * variant once) so that the machine's noise hits them alike; each record
 * keeps the GPU-timestamp median where the adapter has timestamps and the
 * wall-clock median (submit → done) beside it, which is what the peers
 * can be compared on. The peers run after sigmax's variants in each group,
 * each on the wall clock (f32 only; ORT forward only, as it has no
 * backward), every ORT record naming the kernel ORT ran. A peer that cannot
 * load here is left out with its reason, printed and recorded in
 * `peersSkipped`. A case that fails (a device limit, out of memory) is recorded
 * with its error and the sweep goes on. The results file is rewritten
 * (atomically) after every shape, so an interrupted sweep keeps what it
 * measured.
 *
 * @module
 */

import {
  adapterReport,
  attention,
  attentionBackward,
  attentionBackwardReference,
  type AttentionOptions,
  attentionReference,
  type AttentionShape,
  type AttentionWorkload,
  attentionWorkload,
  getDevice,
  seededInputs,
} from "../mod.ts";
import {
  createStorageBuffer,
  isSoftwareDevice,
  measureSubmit,
  pickClock,
  type SubmitTime,
  summarize,
} from "../kernels/device.ts";
import { MatmulPlan } from "../kernels/matmul.ts";
import { formatSeconds } from "../training/format.ts";
import { prepareTrainingStep } from "../training/trainer.ts";
import { GPU_COSTS, modelledTiles, predictedSpeedup, SOFTWARE_COSTS } from "./op_model.ts";
import {
  loadPeers,
  peerCase,
  type PeerCaseOptions,
  type PeerName,
  type Peers,
} from "./peers/peers.ts";
import { attentionPassFlops, timeWall } from "./peers/timing.ts";
import type {
  Implementation,
  MaxSeqLenRecord,
  ModelPrediction,
  SpotCheck,
  SweepFailure,
  SweepRecord,
  SweepResults,
  TrainingStepRecord,
} from "./results.ts";

/** What a preset sweeps. */
export interface SweepPreset {
  name: string;
  batch: number;
  heads: number;
  seqLens: number[];
  headDims: number[];
  causal: boolean[];
  precisions: ("f32" | "f16")[];
  passes: ("forward" | "backward")[];
  implementations: Implementation[];
  /** Untimed rounds, then timed rounds (at least 5). */
  warmup: number;
  reps: number;
  /** The longest-sequence probe: forward, B=1, these heads and head dim, doubling seqLen. */
  maxSeqLen: { heads: number; headDim: number; seqLens: number[]; boundBytes: number };
  /** Square matmul sizes for the roofline. */
  rooflineSizes: number[];
  /** Training-step comparison (the default transformer on mqar). */
  training: { steps: number } | false;
  /**
   * Spot checks of the fused kernels against the f64 reference before any
   * timing: every shape at both tilings, both activations, causal on and off,
   * forward and backward, f32 (and f16 where the adapter has it).
   */
  checks?: AttentionShape[];
  /** Seconds the timed groups may take; the groups past it are listed as skipped. */
  budgetSeconds?: number;
  /** Unfused and peer cases whose forward needs more bytes than this are skipped, not run. */
  peerBoundBytes?: number;
}

/**
 * The presets: `quick` fits a 2-core CPU's software adapter in minutes;
 * `full` sweeps many sizes on a real GPU; `gpu` is the one prepared run for
 * an H100/H200-class GPU (about 8 minutes): spot checks at both tilings,
 * then S ∈ {1024, 4096, 16384} × D ∈ {64, 128} × causal × f32/f16 ×
 * forward/backward (S = 4096 first, the headline size).
 */
export const PRESETS: Record<"quick" | "full" | "gpu", SweepPreset> = {
  quick: {
    name: "quick",
    batch: 1,
    heads: 4,
    seqLens: [128, 256, 512, 1024],
    headDims: [64],
    causal: [false, true],
    precisions: ["f32", "f16"],
    passes: ["forward", "backward"],
    implementations: ["fused", "unfused", "tfjs", "ort", "jax"],
    warmup: 1,
    reps: 5,
    maxSeqLen: {
      heads: 1,
      headDim: 32,
      seqLens: [1024, 2048, 4096, 8192, 16384],
      boundBytes: 2 ** 30,
    },
    rooflineSizes: [256, 512, 1024],
    training: { steps: 12 },
  },
  full: {
    name: "full",
    batch: 1,
    heads: 4,
    seqLens: [128, 256, 512, 1024, 2048, 4096],
    headDims: [32, 64, 128],
    causal: [false, true],
    precisions: ["f32", "f16"],
    passes: ["forward", "backward"],
    implementations: ["fused", "unfused", "tfjs", "ort", "jax"],
    warmup: 2,
    reps: 10,
    maxSeqLen: {
      heads: 1,
      headDim: 32,
      seqLens: [1024, 2048, 4096, 8192, 16384, 32768, 65536],
      boundBytes: 2 ** 30,
    },
    rooflineSizes: [256, 512, 1024, 2048],
    training: { steps: 20 },
  },
  gpu: {
    name: "gpu",
    batch: 1,
    heads: 16,
    seqLens: [4096, 1024, 16384],
    headDims: [64, 128],
    causal: [false, true],
    precisions: ["f32", "f16"],
    passes: ["forward", "backward"],
    implementations: ["fused", "unfused", "tfjs", "ort", "jax"],
    warmup: 2,
    reps: 7,
    maxSeqLen: {
      heads: 1,
      headDim: 64,
      seqLens: [8192, 16384, 32768, 65536],
      boundBytes: 2 ** 32,
    },
    rooflineSizes: [1024, 2048, 4096],
    training: { steps: 20 },
    checks: [
      { batch: 1, heads: 2, seqLen: 257, headDim: 64 },
      { batch: 1, heads: 2, seqLen: 97, headDim: 128 },
    ],
    budgetSeconds: 330,
    peerBoundBytes: 2 ** 32,
  },
};

/**
 * A preset shrunk to run end to end on a software adapter (`--smoke`): the
 * same phases and code paths at sizes a 2-core CPU finishes in minutes: one
 * head, S of 32, 64, 128 and 256 (four points per curve), head dim 32,
 * spot checks at S = 37, D = 32, few reps, no long-sequence probe beyond 2048.
 */
export function smokePreset(preset: SweepPreset): SweepPreset {
  return {
    ...preset,
    name: `${preset.name}-smoke`,
    batch: 1,
    heads: 1,
    seqLens: [32, 64, 128, 256],
    headDims: [32],
    warmup: 1,
    reps: 5,
    maxSeqLen: { ...preset.maxSeqLen, headDim: 32, seqLens: [1024, 2048] },
    rooflineSizes: [256],
    training: preset.training ? { steps: 4 } : false,
    checks: preset.checks ? [{ batch: 1, heads: 2, seqLen: 37, headDim: 32 }] : undefined,
  };
}

/** Options of {@linkcode runSweep}. */
export interface SweepOptions {
  /** Where the results go (rewritten after every shape). */
  out: string;
  /** Progress lines on stderr. Default true. */
  progress?: boolean;
}

/**
 * How the TF.js baseline writes Kᵀ: as an explicit transpose, the faster of
 * the two ways on the software adapter (TF.js 4.22's matmul with `transposeB`
 * ran Q·Kᵀ 2–3× slower), so sigmax is compared with TF.js at its best.
 */
const TFJS_K_TRANSPOSE = "explicit";

/** TF.js's timing functions, loaded on demand (TF.js is heavy and optional). */
type Tfjs = typeof import("./peers/tfjs.ts");

/** The peers {@linkcode loadPeers} drives (TF.js has its own timers). */
const FUSED_PEERS: readonly PeerName[] = ["ort", "jax"];

const ACTIVATIONS = ["softmax", "sigmoid"] as const;

/** Runs a preset and returns (and writes) its results. */
export async function runSweep(preset: SweepPreset, options: SweepOptions): Promise<SweepResults> {
  const started = performance.now();
  const device = await getDevice();
  const report = await adapterReport();
  const results: SweepResults = {
    version: 1,
    preset: preset.name,
    date: new Date().toISOString(),
    adapter: {
      description: report.description,
      software: isSoftwareDevice(device),
      shaderF16: report.shaderF16,
    },
    seconds: 0,
    records: [],
    failures: [],
    maxSeqLen: [],
    training: [],
  };
  results.model = modelPredictions(device, preset, results.adapter.software);
  if (preset.checks) {
    results.adapterReport = { ...report, isSoftwareDevice: results.adapter.software };
  }
  const log = (line: string) => {
    if (options.progress !== false) console.error(line);
  };
  const save = async () => {
    results.seconds = (performance.now() - started) / 1000;
    await writeAtomic(options.out, JSON.stringify(results, null, 1));
  };

  const skipPeer = (impl: Implementation, reason: string) => {
    (results.peersSkipped ??= []).push({ impl, reason });
    log(`${impl}: not available: ${reason}`);
  };
  let tfjs: { mod: Tfjs; handle: unknown } | undefined;
  if (preset.implementations.includes("tfjs")) {
    try {
      const mod: Tfjs = await import("./peers/tfjs.ts");
      const handle = await mod.loadTfjs();
      if ("error" in (handle as object)) skipPeer("tfjs", (handle as { error: string }).error);
      else tfjs = { mod, handle };
    } catch (err) {
      skipPeer("tfjs", (err as Error).message);
    }
  }
  const peers = await loadPeers(FUSED_PEERS.filter((p) => preset.implementations.includes(p)));
  for (const [peer, reason] of peers.skipped) skipPeer(peer, reason);

  if (preset.checks) {
    results.checks = [];
    for (const check of await spotChecks(preset.checks, report.shaderF16, log)) {
      results.checks.push(check);
    }
    await save();
  }

  // Shapes × passes: each a group of interleaved sigmax variants, then TF.js.
  const groups: { shape: AttentionShape; causal: boolean; pass: "forward" | "backward" }[] = [];
  for (const headDim of preset.headDims) {
    for (const seqLen of preset.seqLens) {
      for (const causal of preset.causal) {
        for (const pass of preset.passes) {
          groups.push({
            shape: { batch: preset.batch, heads: preset.heads, seqLen, headDim },
            causal,
            pass,
          });
        }
      }
    }
  }
  const eta = new Eta(groups.length);
  const groupsStarted = performance.now();
  for (const [g, { shape, causal, pass }] of groups.entries()) {
    const label = `${pass} B=${shape.batch} H=${shape.heads} S=${shape.seqLen} D=${shape.headDim}` +
      (causal ? " causal" : "");
    if (
      preset.budgetSeconds !== undefined &&
      (performance.now() - groupsStarted) / 1000 > preset.budgetSeconds
    ) {
      (results.skipped ??= []).push(label);
      log(
        `[${g + 1}/${groups.length}] ${label}: skipped (past the ${preset.budgetSeconds} s budget)`,
      );
      continue;
    }
    const overBound = (impl: Implementation) =>
      preset.peerBoundBytes !== undefined && estimateBytes(impl, shape) > preset.peerBoundBytes;
    const variants: { impl: Implementation; options: AttentionOptions }[] = [];
    for (const precision of preset.precisions) {
      for (const impl of ["fused", "unfused"] as const) {
        if (!preset.implementations.includes(impl)) continue;
        if (precision === "f16" && (impl === "unfused" || !results.adapter.shaderF16)) continue;
        for (const activation of ACTIVATIONS) {
          if (impl === "unfused" && overBound(impl)) {
            results.failures.push({
              impl,
              activation,
              pass,
              precision,
              ...shape,
              causal,
              error: _skippedOverBound(impl, shape, preset.peerBoundBytes!),
            });
            continue;
          }
          variants.push({ impl, options: { activation, causal, precision, implementation: impl } });
        }
      }
    }
    const timed = await timeVariants(shape, variants, pass, preset);
    for (const t of timed) {
      if ("error" in t) results.failures.push(t.error);
      else results.records.push(t.record);
    }
    if (tfjs) {
      for (const activation of ACTIVATIONS) {
        const base = {
          impl: "tfjs" as const,
          activation,
          pass,
          precision: "f32" as const,
          ...shape,
          causal,
        };
        if (overBound("tfjs")) {
          results.failures.push({
            ...base,
            error: _skippedOverBound("tfjs", shape, preset.peerBoundBytes!),
          });
          continue;
        }
        try {
          const r = await tfjs.mod.timeTfjsAttention(tfjs.handle as never, shape, {
            activation,
            causal,
            pass,
            kTranspose: TFJS_K_TRANSPOSE,
            warmup: preset.warmup,
            reps: preset.reps,
          });
          const flops = attentionPassFlops(shape, causal, pass);
          results.records.push({
            ...base,
            msMedian: r.msMedian,
            msMin: r.msMin,
            msMax: r.msMax,
            msWallMedian: r.msMedian,
            msWallMin: r.msMin,
            msWallMax: r.msMax,
            gflops: flops / r.msMedian / 1e6,
            peakBytes: r.peakBytes,
            clock: "wall",
            ran: "tf.* ops, unfused (Kᵀ transposed explicitly); sigmax's device",
          });
        } catch (err) {
          results.failures.push({ ...base, error: (err as Error).message });
        }
      }
    }
    for (const peer of FUSED_PEERS) {
      if (!preset.implementations.includes(peer) || (peer === "ort" && pass === "backward")) {
        continue;
      }
      for (const activation of ACTIVATIONS) {
        const base = { impl: peer, activation, pass, precision: "f32" as const, ...shape, causal };
        if (overBound(peer)) {
          results.failures.push({
            ...base,
            error: _skippedOverBound(peer, shape, preset.peerBoundBytes!),
          });
          continue;
        }
        try {
          const r = await timePeer(peers, peer, shape, { activation, causal, pass }, preset);
          if (r) results.records.push({ ...base, ...r });
        } catch (err) {
          results.failures.push({ ...base, error: (err as Error).message.split("\n")[0] });
        }
      }
    }
    const line = results.records.filter((r) =>
      r.pass === pass && r.seqLen === shape.seqLen && r.headDim === shape.headDim &&
      r.causal === causal
    ).map((r) =>
      `${r.impl}${r.precision === "f16" ? "-f16" : ""} ${r.activation} ${r.gflops.toFixed(2)}`
    );
    log(`[${g + 1}/${groups.length}] ${label}: ${line.join(", ")} GFLOP/s  ETA ${eta.tick()}`);
    await save();
  }

  // The longest sequence each implementation completes within the memory bound.
  const probe = preset.maxSeqLen;
  for (const impl of preset.implementations) {
    // The probe runs sigmax and TF.js (on sigmax's device); ORT and jax-js hold devices of their own.
    if ((impl === "tfjs" && !tfjs) || impl === "ort" || impl === "jax") continue;
    for (const activation of ACTIVATIONS) {
      const rec: MaxSeqLenRecord = {
        impl,
        activation,
        headDim: probe.headDim,
        maxSeqLen: 0,
        boundBytes: probe.boundBytes,
      };
      for (const seqLen of probe.seqLens) {
        const shape = { batch: 1, heads: probe.heads, seqLen, headDim: probe.headDim };
        const need = estimateBytes(impl, shape);
        if (need > probe.boundBytes) {
          rec.failedAt = seqLen;
          rec.reason = `needs about ${(need / 2 ** 30).toFixed(2)} GiB, over the ${
            (probe.boundBytes / 2 ** 30).toFixed(0)
          } GiB bound`;
          break;
        }
        try {
          if (impl === "tfjs") {
            await tfjs!.mod.timeTfjsAttention(tfjs!.handle as never, shape, {
              activation,
              causal: false,
              pass: "forward",
              kTranspose: TFJS_K_TRANSPOSE,
              warmup: 0,
              reps: 1,
            });
          } else {
            const work = await attentionWorkload(
              shape,
              { activation, implementation: impl },
              "forward",
            );
            try {
              await work.run();
            } finally {
              work.destroy();
            }
          }
          rec.maxSeqLen = seqLen;
        } catch (err) {
          rec.failedAt = seqLen;
          rec.reason = (err as Error).message.split("\n")[0];
          break;
        }
      }
      results.maxSeqLen.push(rec);
      log(
        `longest: ${impl} ${activation} D=${probe.headDim}: ${rec.maxSeqLen}` +
          (rec.failedAt ? ` (S=${rec.failedAt}: ${rec.reason})` : ""),
      );
      await save();
    }
  }

  // The roofline: our matmul's best GFLOP/s, and TF.js's at that size.
  let best = { gflops: 0, size: 0 };
  for (const size of preset.rooflineSizes) {
    const gflops = await timeMatmul(device, size, preset);
    log(`matmul ${size}³: ${gflops.toFixed(2)} GFLOP/s`);
    if (gflops > best.gflops) best = { gflops, size };
  }
  results.roofline = { ...best };
  if (tfjs) {
    try {
      const { gflops } = await tfjs.mod.timeTfjsMatmul(tfjs.handle as never, best.size);
      results.roofline.tfjsGflops = gflops;
      log(`tfjs matmul ${best.size}³: ${gflops.toFixed(2)} GFLOP/s`);
    } catch (err) {
      log(`tfjs matmul failed: ${(err as Error).message}`);
    }
  }
  if (peers.jax) {
    try {
      const { gflops } = await peers.jax.mod.timeJaxMatmul(peers.jax.handle, best.size, {
        warmup: preset.warmup,
        reps: Math.max(5, preset.reps),
      });
      results.roofline.jaxGflops = gflops;
      log(`jax matmul ${best.size}³: ${gflops.toFixed(2)} GFLOP/s`);
    } catch (err) {
      log(`jax matmul failed: ${(err as Error).message}`);
    }
  }
  await save();

  // A training step of the default transformer (mqar), sigmax and TF.js.
  if (preset.training) {
    for (const activation of ACTIVATIONS) {
      const rec = await timeTrainingStep(activation, preset.training.steps);
      results.training.push(rec);
      log(`training step sigmax ${activation}: ${rec.tokensPerSecond.toFixed(0)} tokens/s`);
      if (tfjs && "timeTfjsTrainingStep" in tfjs.mod) {
        try {
          const m = rec.model;
          const r = await tfjs.mod.timeTfjsTrainingStep(tfjs.handle as never, {
            ...m,
            vocab: 32,
            classes: 32,
            activation,
            causal: true,
            kTranspose: TFJS_K_TRANSPOSE,
            stepsPerCall: 4,
            warmup: 1,
            reps: 5,
          });
          results.training.push({
            impl: "tfjs",
            activation,
            model: m,
            msMedian: r.msPerStep,
            tokensPerSecond: r.tokensPerSecond,
          });
          log(`training step tfjs ${activation}: ${r.tokensPerSecond.toFixed(0)} tokens/s`);
        } catch (err) {
          log(`tfjs training step failed: ${(err as Error).message}`);
        }
      }
    }
  }
  await save();
  return results;
}

/** The operation-count model's ratios for every pass and head dim of the preset. */
function modelPredictions(
  device: GPUDevice,
  preset: SweepPreset,
  software: boolean,
): ModelPrediction[] {
  const costs = software ? SOFTWARE_COSTS : GPU_COSTS;
  const out: ModelPrediction[] = [];
  for (const pass of preset.passes) {
    for (const headDim of preset.headDims) {
      if (headDim > 256) continue;
      const tiles = modelledTiles(device, pass, headDim, software);
      const p = (
        a: Parameters<typeof predictedSpeedup>[0],
        b: Parameters<typeof predictedSpeedup>[0],
      ) => predictedSpeedup(a, b, headDim, tiles, costs, pass);
      out.push({
        pass,
        headDim,
        sigmoidOverSoftmax: p("fused sigmoid", "fused softmax"),
        fusedOverUnfusedSoftmax: p("fused softmax", "unfused softmax"),
        fusedOverUnfusedSigmoid: p("fused sigmoid", "unfused sigmoid"),
      });
    }
  }
  return out;
}

/** The failure message of a case the preset's memory bound leaves out. */
function _skippedOverBound(impl: Implementation, shape: AttentionShape, bound: number): string {
  const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(1);
  return `skipped: needs about ${gib(estimateBytes(impl, shape))} GiB (the S×S scores), over ` +
    `the preset's ${gib(bound)} GiB bound`;
}

/** DESIGN.md's tolerances, as the tests use them. */
const _TOL = {
  forward: { atol: 1e-5, rtol: 1e-4 },
  backward: { atol: 1e-4, rtol: 1e-3 },
  f16: { atol: 2e-3, rtol: 1e-2 },
} as const;

/**
 * Spot checks: each shape at both tilings × both activations × causal off
 * and on × f32 (and f16 with `f16`), forward and backward, against the f64
 * reference (fed the f16-rounded inputs for f16). Printed as they run.
 */
export async function spotChecks(
  shapes: AttentionShape[],
  f16: boolean,
  log: (line: string) => void,
): Promise<SpotCheck[]> {
  const out: SpotCheck[] = [];
  let seed = 1;
  for (const shape of shapes) {
    const n = shape.batch * shape.heads * shape.seqLen * shape.headDim;
    for (const precision of f16 ? (["f32", "f16"] as const) : (["f32"] as const)) {
      const round = (x: Float32Array) =>
        precision === "f16" ? Float32Array.from(Float16Array.from(x)) : x;
      const [q, k, v, dOut] = [0, 1, 2, 3].map((i) => round(seededInputs(n, seed * 4 + i)));
      seed++;
      for (const tiling of ["gpu", "software"] as const) {
        for (const activation of ACTIVATIONS) {
          for (const causal of [false, true]) {
            const options: AttentionOptions = { activation, causal, precision, tiling };
            for (const pass of ["forward", "backward"] as const) {
              const tol = precision === "f16" ? _TOL.f16 : _TOL[pass];
              const base = { tiling, activation, pass, precision, ...shape, causal };
              try {
                const pairs: [Float32Array, Float32Array][] = [];
                if (pass === "forward") {
                  pairs.push([
                    await attention(q, k, v, shape, options),
                    attentionReference(q, k, v, shape, options),
                  ]);
                } else {
                  const got = await attentionBackward(q, k, v, dOut, shape, options);
                  const ref = attentionBackwardReference(q, k, v, dOut, shape, options);
                  for (const g of ["dq", "dk", "dv"] as const) pairs.push([got[g], ref[g]]);
                }
                let maxAbsErr = 0, worst = 0;
                for (const [got, ref] of pairs) {
                  for (let i = 0; i < got.length; i++) {
                    const err = Math.abs(got[i] - ref[i]);
                    maxAbsErr = Math.max(maxAbsErr, err);
                    const over = err / (tol.atol + tol.rtol * Math.abs(ref[i]));
                    worst = Math.max(worst, Number.isFinite(got[i]) ? over : Infinity);
                  }
                }
                out.push({ ...base, maxAbsErr, worst, ok: worst <= 1 });
              } catch (err) {
                out.push({
                  ...base,
                  maxAbsErr: NaN,
                  worst: Infinity,
                  ok: false,
                  error: (err as Error).message.split("\n")[0],
                });
              }
              const c = out[out.length - 1];
              log(
                `check ${c.ok ? "ok  " : "FAIL"} ${tiling.padEnd(8)} ${pass.padEnd(8)} ` +
                  `${precision} ${activation}${causal ? " causal" : ""} ` +
                  `[${shape.batch},${shape.heads},${shape.seqLen},${shape.headDim}] ` +
                  (c.error ??
                    `max |err| ${c.maxAbsErr.toExponential(2)} (${
                      c.worst.toPrecision(2)
                    } of the tolerance)`),
              );
            }
          }
        }
      }
    }
  }
  return out;
}

/**
 * A Markdown summary of a sweep in TFLOP/s (GFLOP/s when no case reaches one
 * TFLOP/s), with the ratios that matter:
 * sigmoid/softmax (fused), fused/unfused and fused/peer for TF.js, ORT and
 * jax-js (on the wall clock, the clock the peers have), per pass, precision,
 * head dim, seqLen and causal; then the spot checks and what was skipped.
 */
export function tflopsSummary(results: SweepResults): string {
  const lines: string[] = [];
  const a = results.adapterReport ?? results.adapter;
  lines.push(
    `# sigmax ${results.preset}: ${results.adapter.description}`,
    "",
    `Adapter: ${JSON.stringify(a)}`,
    "",
  );
  if (results.checks) {
    const failed = results.checks.filter((c) => !c.ok);
    lines.push(
      `Spot checks against the f64 reference: ${results.checks.length - failed.length} of ` +
        `${results.checks.length} within tolerance` +
        (failed.length
          ? `; FAILED: ${
            failed.map((c) =>
              `${c.tiling} ${c.pass} ${c.precision} ${c.activation}${c.causal ? " causal" : ""} ` +
              `D=${c.headDim} (${c.error ?? `${c.worst.toFixed(2)}× tolerance`})`
            ).join("; ")
          }`
          : "") +
        ".",
      "",
    );
  }
  const find = (r: Partial<SweepRecord>) =>
    results.records.find((x) =>
      (Object.keys(r) as (keyof SweepRecord)[]).every((key) => x[key] === r[key])
    );
  // TFLOP/s on a GPU; GFLOP/s where nothing reaches one TFLOP/s (a software adapter).
  const tera = results.records.some((r) => r.gflops >= 1000);
  const unit = tera ? "TFLOP/s" : "GFLOP/s";
  const tf = (x?: SweepRecord) => x ? (x.gflops / (tera ? 1000 : 1)).toFixed(2) : "–";
  const ratio = (num?: SweepRecord, den?: SweepRecord, wall = false) =>
    num && den
      ? `${(wall ? den.msWallMedian / num.msWallMedian : num.gflops / den.gflops).toFixed(2)}×`
      : "–";
  lines.push(
    `| pass | prec | D | S | causal | softmax ${unit} | sigmoid ${unit} | sig/soft | ` +
      "fused/unfused soft | sig | fused/TF.js soft | sig | fused/ORT soft | sig | " +
      "fused/jax-js soft | sig |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  );
  const keys = new Set(
    results.records.filter((r) => r.impl === "fused").map((r) =>
      JSON.stringify([r.pass, r.precision, r.headDim, r.seqLen, r.causal])
    ),
  );
  for (const key of [...keys].sort()) {
    const [pass, precision, headDim, seqLen, causal] = JSON.parse(key);
    const at = { pass, headDim, seqLen, causal };
    type Act = SweepRecord["activation"];
    const fused = (activation: Act) => find({ ...at, precision, impl: "fused", activation });
    const peer = (impl: Implementation, activation: Act) =>
      find({ ...at, precision: "f32", impl, activation });
    const [soft, sig] = [fused("softmax"), fused("sigmoid")];
    lines.push(
      `| ${pass} | ${precision} | ${headDim} | ${seqLen} | ${causal ? "yes" : "no"} | ` +
        `${tf(soft)} | ${tf(sig)} | ${ratio(sig, soft)} | ` +
        `${ratio(soft, peer("unfused", "softmax"), true)} | ` +
        `${ratio(sig, peer("unfused", "sigmoid"), true)} | ` +
        (["tfjs", "ort", "jax"] as const).map((p) =>
          `${ratio(soft, peer(p, "softmax"), true)} | ${ratio(sig, peer(p, "sigmoid"), true)} |`
        ).join(" "),
    );
  }
  const tilings = new Set(results.records.filter((r) => r.tiling).map((r) => r.tiling));
  lines.push(
    "",
    `Fused tiling timed: ${[...tilings].join(", ") || "–"}. Times: ${
      results.records[0]?.clock === "timestamp" ? "GPU timestamps" : "wall clock"
    } for sigmax; ratios against unfused and the peers use the wall clock (submit → done) of both.`,
  );
  if (results.failures.length) {
    lines.push("", `Failures and skips (${results.failures.length}):`);
    for (const f of results.failures) {
      lines.push(
        `- ${f.impl} ${f.pass} ${f.precision} ${f.activation}${f.causal ? " causal" : ""} ` +
          `S=${f.seqLen} D=${f.headDim}: ${f.error}`,
      );
    }
  }
  for (const p of results.peersSkipped ?? []) lines.push("", `Not run: ${p.impl}: ${p.reason}`);
  if (results.skipped?.length) {
    lines.push("", `Past the time budget, not run: ${results.skipped.join("; ")}`);
  }
  return lines.join("\n") + "\n";
}

/** FLOPs of one pass, FlashAttention's convention (bench/peers/timing.ts). */
export { attentionPassFlops };

/**
 * Bytes a forward pass needs: q, k, v, out, plus S×S buffers: one for
 * sigmax's unfused path and ORT (whose sigmoid composition writes the scores
 * out; its softmax FlashAttention needs none, so this bounds it from above),
 * three for TF.js and jax-js (scores, scaled scores, weights).
 */
export function estimateBytes(impl: Implementation, shape: AttentionShape): number {
  const { batch, heads, seqLen, headDim } = shape;
  const tensors = 4 * batch * heads * seqLen * headDim * 4;
  const scores = batch * heads * seqLen * seqLen * 4;
  if (impl === "fused") return tensors;
  return tensors + (impl === "unfused" || impl === "ort" ? 1 : 3) * scores;
}

/**
 * Times one peer case (bench/peers/peers.ts) on the wall clock: the preset's
 * warmup, then at least 5 timed calls; the record's timing fields and what
 * the peer ran, or `undefined` when the peer has no such case.
 */
async function timePeer(
  peers: Peers,
  peer: PeerName,
  shape: AttentionShape,
  options: PeerCaseOptions,
  preset: SweepPreset,
): Promise<
  | Omit<
    SweepRecord,
    "impl" | "activation" | "pass" | "precision" | keyof AttentionShape | "causal"
  >
  | undefined
> {
  const c = await peerCase(peers, peer, shape, options);
  if (!c) return undefined;
  try {
    const t = await timeWall(c.run, {
      flops: c.flops,
      warmup: preset.warmup,
      reps: Math.max(5, preset.reps),
      device: c.device,
      ran: c.ran,
    });
    return {
      msMedian: t.msMedian,
      msMin: t.msMin,
      msMax: t.msMax,
      msWallMedian: t.msMedian,
      msWallMin: t.msMin,
      msWallMax: t.msMax,
      gflops: t.gflops,
      // Unknown: the peers allocate on devices of their own.
      peakBytes: 0,
      clock: "wall",
      ran: t.ran,
    };
  } finally {
    await c.free();
  }
}

/** Times sigmax variants of one shape and pass, interleaved; a variant that fails is reported. */
async function timeVariants(
  shape: AttentionShape,
  variants: { impl: Implementation; options: AttentionOptions }[],
  pass: "forward" | "backward",
  preset: SweepPreset,
): Promise<({ record: SweepRecord } | { error: SweepFailure })[]> {
  const base = (v: { impl: Implementation; options: AttentionOptions }) => ({
    impl: v.impl,
    activation: v.options.activation,
    pass,
    precision: v.options.precision ?? "f32",
    ...shape,
    causal: v.options.causal ?? false,
  });
  const out: ({ record: SweepRecord } | { error: SweepFailure })[] = [];
  const works: { v: (typeof variants)[number]; work: AttentionWorkload }[] = [];
  try {
    for (const v of variants) {
      try {
        works.push({ v, work: await attentionWorkload(shape, v.options, pass) });
      } catch (err) {
        out.push({ error: { ...base(v), error: (err as Error).message.split("\n")[0] } });
      }
    }
    const runs = works.map(() => [] as SubmitTime[]);
    for (let round = -preset.warmup; round < Math.max(5, preset.reps); round++) {
      for (const [i, { work }] of works.entries()) {
        const t = await measureSubmit(work.plan.device, work.encode);
        if (round >= 0) runs[i].push(t);
      }
    }
    const { clock, samples } = pickClock(runs);
    for (const [i, { v, work }] of works.entries()) {
      const stats = summarize(samples[i]);
      out.push({
        record: {
          ...base(v),
          ...stats,
          ...wallStats(runs[i]),
          gflops: work.flops / stats.msMedian / 1e6,
          peakBytes: work.bytes,
          clock,
          ...(v.impl === "fused" ? { tiling: work.plan.tiling } : {}),
          kernels: [...work.plan.kernels],
        },
      });
    }
  } finally {
    for (const { work } of works) work.destroy();
  }
  return out;
}

/** The wall-clock median and extremes of a variant's runs. */
function wallStats(
  runs: SubmitTime[],
): Pick<SweepRecord, "msWallMedian" | "msWallMin" | "msWallMax"> {
  const s = summarize(runs.map((r) => r.wallMs));
  return { msWallMedian: s.msMedian, msWallMin: s.msMin, msWallMax: s.msMax };
}

/** Best-of-median GFLOP/s of a square f32 matmul on resident buffers. */
async function timeMatmul(device: GPUDevice, size: number, preset: SweepPreset): Promise<number> {
  const plan = await MatmulPlan.create(device, { batch: 1, m: size, n: size, k: size });
  const bytes = size * size * 4;
  const [a, b, c] = ["a", "b", "c"].map((n) => createStorageBuffer(device, bytes, `roofline.${n}`));
  try {
    const encode = (enc: GPUCommandEncoder) => plan.encode(enc, a, b, c);
    const runs: SubmitTime[] = [];
    for (let round = -preset.warmup; round < Math.max(5, preset.reps); round++) {
      const t = await measureSubmit(device, encode);
      if (round >= 0) runs.push(t);
    }
    const { samples: [ms] } = pickClock([runs]);
    return plan.flops / summarize(ms).msMedian / 1e6;
  } finally {
    plan.destroy();
    for (const buf of [a, b, c]) buf.destroy();
  }
}

/** Tokens/s of the default transformer's training step on mqar (pairs 6: S = 18), 4 steps per wait. */
async function timeTrainingStep(
  activation: "softmax" | "sigmoid",
  steps: number,
): Promise<TrainingStepRecord> {
  const config = {
    task: "mqar" as const,
    taskOptions: { pairs: 6 },
    attention: activation,
    n: 1024,
  };
  const step = await prepareTrainingStep(config);
  try {
    for (let t = 0; t < 3; t++) step.run(t);
    await step.done();
    const ms: number[] = [];
    for (let t = 3; t < 3 + steps; t += 4) {
      const t0 = performance.now();
      for (let i = 0; i < 4; i++) step.run(t + i);
      await step.done();
      ms.push((performance.now() - t0) / 4);
    }
    const { msMedian } = summarize(ms);
    return {
      impl: "sigmax",
      activation,
      msMedian,
      tokensPerSecond: step.tokensPerStep / msMedian * 1000,
      model: { width: 32, layers: 2, heads: 2, seqLen: step.tokensPerStep / 32, batch: 32 },
    };
  } finally {
    step.destroy();
  }
}

/** An ETA from the mean time per finished item. */
class Eta {
  readonly #start = performance.now();
  #done = 0;
  constructor(readonly total: number) {}
  tick(): string {
    this.#done++;
    return formatSeconds(
      (performance.now() - this.#start) / 1000 / this.#done * (this.total - this.#done),
    );
  }
}

/** Writes `text` to `path` through a temporary file and a rename. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}
