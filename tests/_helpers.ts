/** Shared test helpers: seeded random data and tolerance checks that print their max error. */

import assert from "node:assert/strict";
import {
  type Activation,
  adapterReport,
  type AttentionOptions,
  type AttentionShape,
} from "../mod.ts";

/** Deterministic PRNG (mulberry32) returning floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` uniform samples in [-1, 1), as a Float32Array. */
export function uniform(n: number, seed: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: n }, () => 2 * next() - 1);
}

/** `n` standard normal samples (Box–Muller) times `std`, as a Float32Array. */
export function randn(n: number, seed: number, std = 1): Float32Array {
  const next = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(next(), 1e-12);
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  }
  return out;
}

/**
 * The fused kernels' tile configurations: every test of the fused kernels
 * runs at both, on whatever adapter runs the tests. `SIGMAX_TEST_TILINGS`
 * (`gpu`, `software`, or both comma-separated) narrows that for a local run.
 */
export const TILINGS: readonly ("software" | "gpu")[] = _testTilings();

function _testTilings(): ("software" | "gpu")[] {
  const all = ["software", "gpu"] as const;
  const env = Deno.env.get("SIGMAX_TEST_TILINGS");
  if (!env) return [...all];
  const picked = env.split(",").map((t) => t.trim());
  for (const t of picked) {
    if (!(all as readonly string[]).includes(t)) {
      throw new Error(`SIGMAX_TEST_TILINGS must list gpu and/or software, got "${env}"`);
    }
  }
  return all.filter((t) => picked.includes(t));
}

/** `fused software`, `fused gpu` or `unfused`: the implementation as the test names print it. */
export function implementationLabel(options: AttentionOptions): string {
  const implementation = options.implementation ?? "fused";
  return implementation === "fused" && options.tiling && options.tiling !== "auto"
    ? `fused ${options.tiling}`
    : implementation;
}

/** The variants a test runs: fused at each tiling, then (unless `fusedOnly`) unfused. */
export function variants(
  fusedOnly = false,
): { implementation: "fused" | "unfused"; tiling?: "software" | "gpu" }[] {
  const fused = TILINGS.map((tiling) => ({ implementation: "fused" as const, tiling }));
  return fusedOnly ? fused : [...fused, { implementation: "unfused" }];
}

/** DESIGN.md's tolerance table. */
export const TOL = {
  f32Forward: { atol: 1e-5, rtol: 1e-4 },
  f32Backward: { atol: 1e-4, rtol: 1e-3 },
  f16: { atol: 2e-3, rtol: 1e-2 },
} as const;

/**
 * Asserts `|got − ref| ≤ atol + rtol·|ref|` element-wise (and that nothing is
 * NaN or infinite), printing the case's max absolute error.
 */
export function assertClose(
  label: string,
  got: Float32Array,
  ref: Float32Array,
  tol: { atol: number; rtol: number },
): number {
  assert.equal(got.length, ref.length, `${label}: length`);
  let maxErr = 0;
  let worst = -1;
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    if (!Number.isFinite(got[i]) || !(err <= tol.atol + tol.rtol * Math.abs(ref[i]))) {
      assert.fail(
        `${label}: element ${i} is ${got[i]}, reference ${ref[i]} ` +
          `(|err| ${err} > ${tol.atol} + ${tol.rtol}·|ref|)`,
      );
    }
    if (err > maxErr) [maxErr, worst] = [err, i];
  }
  console.log(`  ${label.padEnd(60)} max |err| ${maxErr.toExponential(2)} at ${worst}`);
  return maxErr;
}

/**
 * DESIGN.md's test grid: seqLen {1, 7, 64, 97, 257} × headDim {1, 8, 33, 64,
 * 128, 256} × causal off and on, for one activation and implementation. Each
 * (S, D) runs the default scale and bias with B·H = 2 and an explicit scale
 * (1.5× wider scores) and bias -1.25 with B·H = 6, one causal and the other
 * not, alternating so that both pairings occur across the grid. Far larger
 * scores (|s| ~ 1e3) have their own tests. `tiling` goes into the options
 * when given (fused only).
 *
 * The cases come one head dim at a time (the head dim picks the pipelines),
 * in `headDims` order: two test modules that run in parallel and need the
 * same pipelines (the software backward kernels serve both activations)
 * take the head dims in opposite orders, so that each compiles about half
 * and finds the other half in Mesa's disk cache, instead of both compiling
 * every one at the same time.
 */
export function gridCases(
  activation: Activation,
  implementation: "fused" | "unfused",
  tiling?: "software" | "gpu",
  headDims: "ascending" | "descending" = "ascending",
): { shape: AttentionShape; options: AttentionOptions }[] {
  const cases = [];
  const dims = [1, 8, 33, 64, 128, 256];
  for (const headDim of headDims === "ascending" ? dims : dims.reverse()) {
    for (const seqLen of [1, 7, 64, 97, 257]) {
      for (const causal of [false, true]) {
        const explicit = ((seqLen + headDim) % 2 === 0) !== causal;
        cases.push(
          explicit
            ? {
              shape: { batch: 2, heads: 3, seqLen, headDim },
              options: {
                activation,
                causal,
                implementation,
                ...(tiling ? { tiling } : {}),
                scale: 1.5 / Math.sqrt(headDim),
                sigmoidBias: -1.25,
              },
            }
            : {
              shape: { batch: 1, heads: 2, seqLen, headDim },
              options: { activation, causal, implementation, ...(tiling ? { tiling } : {}) },
            },
        );
      }
    }
  }
  return cases;
}

/**
 * Whether the adapter has `shader-f16`, so that the f16 tests run. Without
 * it they are skipped with a message, unless `SIGMAX_REQUIRE_F16` is set (as
 * CI sets it): then this throws, and the skip cannot pass unnoticed.
 */
export async function f16Available(what: string): Promise<boolean> {
  if ((await adapterReport()).shaderF16) return true;
  if (Deno.env.get("SIGMAX_REQUIRE_F16")) {
    throw new Error(`SIGMAX_REQUIRE_F16 is set but this adapter has no shader-f16 (${what})`);
  }
  console.log(`no shader-f16 on this adapter: the ${what} is skipped`);
  return false;
}

/**
 * Whether a peer's tests are skipped: `unavailable` is why its package could
 * not load (undefined when it loaded). The tests are skipped with that reason,
 * unless `SIGMAX_REQUIRE_PEERS` is set (as CI sets it, where npm is reachable):
 * then a failing test says so, and the skip cannot pass unnoticed.
 */
export function skipPeer(file: string, unavailable: string | undefined): boolean {
  if (unavailable === undefined) return false;
  if (Deno.env.get("SIGMAX_REQUIRE_PEERS")) {
    Deno.test(`${file}: the peer loads (SIGMAX_REQUIRE_PEERS is set)`, () => {
      throw new Error(`SIGMAX_REQUIRE_PEERS is set but the peer could not load: ${unavailable}`);
    });
  } else {
    console.warn(`${file}: skipped: ${unavailable}`);
  }
  return true;
}

/** Encodes a dispatch of `pipeline` (`workgroups` of them) with `buffer` at group 0, binding 0. */
export function encodeOnBuffer(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  pipeline: GPUComputePipeline,
  buffer: GPUBuffer,
  workgroups = 1,
): void {
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(
    0,
    device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer } }],
    }),
  );
  pass.dispatchWorkgroups(workgroups);
  pass.end();
}

/** Submits one dispatch of `pipeline`, a single workgroup, with `buffer` at group 0, binding 0. */
export function dispatchOnBuffer(
  device: GPUDevice,
  pipeline: GPUComputePipeline,
  buffer: GPUBuffer,
): void {
  const encoder = device.createCommandEncoder();
  encodeOnBuffer(device, encoder, pipeline, buffer);
  device.queue.submit([encoder.finish()]);
}
