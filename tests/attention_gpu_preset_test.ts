// The pieces of `deno task bench -- --preset gpu`: the spot checks at both tilings, the shrunk
// preset a software adapter runs (--smoke), and the TFLOP/s summary with its ratios.

import assert from "node:assert/strict";
import { PRESETS, smokePreset, spotChecks, tflopsSummary } from "../bench/sweep.ts";
import type { SweepRecord, SweepResults } from "../bench/results.ts";

Deno.test("spotChecks() checks both tilings forward and backward, and records a case that cannot run", async () => {
  const lines: string[] = [];
  const checks = await spotChecks(
    [{ batch: 1, heads: 1, seqLen: 7, headDim: 8 }, {
      batch: 1,
      heads: 1,
      seqLen: 7,
      headDim: 300,
    }],
    false,
    (line) => lines.push(line),
  );
  // 2 shapes × 2 tilings × 2 activations × causal off/on × forward/backward, f32 only.
  assert.equal(checks.length, 32);
  assert.equal(lines.length, 32);
  const [good, bad] = [checks.slice(0, 16), checks.slice(16)];
  for (const c of good) {
    assert.ok(c.ok && c.worst <= 1 && c.maxAbsErr < 1e-4 && !c.error, JSON.stringify(c));
  }
  assert.deepEqual(new Set(good.map((c) => c.tiling)), new Set(["gpu", "software"]));
  assert.deepEqual(new Set(good.map((c) => c.pass)), new Set(["forward", "backward"]));
  // headDim 300 is over the kernels' limit: every case fails, with the message, not silently.
  for (const c of bad) assert.ok(!c.ok && /shape\.headDim must be at most 256/.test(c.error!));
  assert.match(lines[16], /^check FAIL/);
});

Deno.test("the gpu preset covers the issue's grid, and --smoke shrinks it for a software adapter", () => {
  const gpu = PRESETS.gpu;
  assert.deepEqual([...gpu.seqLens].sort((a, b) => a - b), [1024, 4096, 16384]);
  assert.deepEqual(gpu.headDims, [64, 128]);
  assert.deepEqual(gpu.causal, [false, true]);
  assert.deepEqual(gpu.precisions, ["f32", "f16"]);
  assert.deepEqual(gpu.passes, ["forward", "backward"]);
  assert.deepEqual(gpu.implementations, ["fused", "unfused", "tfjs", "ort", "jax"]);
  assert.ok(gpu.checks && gpu.checks.length > 0 && gpu.budgetSeconds! < 480);
  const smoke = smokePreset(gpu);
  assert.equal(smoke.name, "gpu-smoke");
  assert.ok(Math.max(...smoke.seqLens) <= 256 && Math.max(...smoke.headDims) <= 32);
  assert.equal(smoke.heads, 1);
  assert.ok(smoke.checks && smoke.checks.length === 1);
  assert.deepEqual(smoke.passes, gpu.passes);
  assert.deepEqual(smoke.implementations, gpu.implementations);
});

Deno.test("tflopsSummary() gives TFLOP/s and the sigmoid/softmax, fused/unfused and fused/peer ratios", () => {
  const record = (
    impl: SweepRecord["impl"],
    activation: SweepRecord["activation"],
    gflops: number,
    msWallMedian: number,
  ): SweepRecord => ({
    impl,
    activation,
    pass: "forward",
    precision: "f32",
    batch: 1,
    heads: 16,
    seqLen: 4096,
    headDim: 64,
    causal: false,
    msMedian: msWallMedian,
    msMin: msWallMedian,
    msMax: msWallMedian,
    gflops,
    peakBytes: 1,
    clock: "timestamp",
    msWallMedian,
  });
  const results: SweepResults = {
    version: 1,
    preset: "gpu",
    date: "2026-12-01T00:00:00Z",
    adapter: { description: "test adapter", software: false, shaderF16: true },
    seconds: 1,
    records: [
      record("fused", "softmax", 20000, 10),
      record("fused", "sigmoid", 24000, 8),
      record("unfused", "softmax", 5000, 40),
      record("unfused", "sigmoid", 6000, 32),
      record("tfjs", "softmax", 2000, 100),
      record("tfjs", "sigmoid", 2500, 80),
      { ...record("ort", "softmax", 3000, 60), ran: "MultiHeadAttention; FlashAttention" },
      record("jax", "softmax", 6000, 30),
      record("jax", "sigmoid", 5000, 40),
    ],
    failures: [],
    maxSeqLen: [],
    training: [],
    checks: [],
    skipped: ["backward B=1 H=16 S=16384 D=128 causal"],
  };
  const text = tflopsSummary(results);
  const row = text.split("\n").find((line) => line.startsWith("| forward | f32 | 64 | 4096 |"));
  assert.ok(row, text);
  const cells = row.split("|").map((c) => c.trim()).filter(Boolean);
  // softmax 20.00, sigmoid 24.00 TFLOP/s; sig/soft 1.20×; fused/unfused 4.00× both (wall clock);
  // fused/TF.js 10.00× both; fused/ORT 6.00× softmax, none for sigmoid (no ORT record);
  // fused/jax-js 3.00× and 5.00×.
  assert.deepEqual(cells.slice(5), [
    "20.00",
    "24.00",
    "1.20×",
    "4.00×",
    "4.00×",
    "10.00×",
    "10.00×",
    "6.00×",
    "–",
    "3.00×",
    "5.00×",
  ]);
  assert.match(text, /softmax TFLOP\/s \| sigmoid TFLOP\/s/);
  assert.match(text, /Past the time budget, not run: backward B=1 H=16 S=16384 D=128 causal/);
  // Below one TFLOP/s (a software adapter) the table is in GFLOP/s.
  const slow = tflopsSummary({
    ...results,
    records: results.records.map((r) => ({ ...r, gflops: r.gflops / 1000 })),
  });
  assert.match(slow, /softmax GFLOP\/s \| sigmoid GFLOP\/s/);
  assert.match(slow, /\| forward \| f32 \| 64 \| 4096 \| no \| 20\.00 \| 24\.00 \| 1\.20× \|/);
});
