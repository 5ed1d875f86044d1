/**
 * The throughput sweep on a tiny preset: records, recorded failures, the
 * probes, the file; and with the peers ONNX Runtime Web and jax-js (skipped
 * with the reason where they cannot load, required in CI).
 */

import assert from "node:assert/strict";
import { estimateBytes, PRESETS, runSweep, smokePreset, type SweepPreset } from "../bench/sweep.ts";
import type { SweepResults } from "../bench/results.ts";
import { validateResults } from "../bench/report.ts";
import { loadPeers } from "../bench/peers/peers.ts";
import { skipPeer } from "./_helpers.ts";

const TINY: SweepPreset = {
  name: "tiny",
  batch: 1,
  heads: 2,
  seqLens: [8, 16],
  headDims: [8, 300], // 300 is over the kernels' limit: every variant of it must fail, recorded
  causal: [false],
  precisions: ["f32"],
  passes: ["forward", "backward"],
  implementations: ["fused", "unfused"],
  warmup: 0,
  reps: 5,
  maxSeqLen: { heads: 1, headDim: 8, seqLens: [64, 128, 256], boundBytes: 200 * 1024 },
  rooflineSizes: [32],
  training: false,
};

Deno.test("the sweep records every case, records failures and goes on, probes lengths, writes JSON", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigmax-sweep-" });
  try {
    const out = `${dir}/results.json`;
    const results = await runSweep(TINY, { out, progress: false });
    const saved: SweepResults = JSON.parse(await Deno.readTextFile(out));
    assert.deepEqual(saved, JSON.parse(JSON.stringify(results)));
    // 2 seqLens × 2 passes × (fused, unfused) × (softmax, sigmoid) at D = 8.
    assert.equal(results.records.length, 16);
    for (const r of results.records) {
      assert.equal(r.headDim, 8);
      assert.ok(r.msMedian > 0 && r.msMin <= r.msMedian && r.msMedian <= r.msMax);
      assert.ok(r.gflops > 0 && r.peakBytes > 0 && r.msWallMedian > 0);
    }
    const fusedBwd = results.records.find((r) => r.impl === "fused" && r.pass === "backward")!;
    const unfusedBwd = results.records.find((r) => r.impl === "unfused" && r.pass === "backward")!;
    assert.ok(unfusedBwd.peakBytes > fusedBwd.peakBytes, "unfused holds the S×S buffers");
    // The same at D = 300: all failed, each with the kernel's message.
    assert.equal(results.failures.length, 16);
    for (const f of results.failures) assert.match(f.error, /headDim/);
    // The probe: fused fits all three lengths; unfused hits the 200 KiB bound at S = 256.
    const probe = (impl: string) =>
      results.maxSeqLen.find((m) => m.impl === impl && m.activation === "softmax")!;
    assert.equal(probe("fused").maxSeqLen, 256);
    assert.equal(probe("unfused").maxSeqLen, 128);
    assert.equal(probe("unfused").failedAt, 256);
    assert.ok(
      estimateBytes("unfused", { batch: 1, heads: 1, seqLen: 256, headDim: 8 }) > 200 * 1024,
    );
    assert.ok(results.roofline!.gflops > 0);
    assert.equal(results.roofline!.size, 32);
    assert.equal(results.version, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the sweep times ORT (forward only, with the kernel it ran) and jax-js beside sigmax", async () => {
  const peers = await loadPeers(["ort", "jax"]);
  const unavailable = [...peers.skipped].map(([p, why]) => `${p}: ${why}`).join("; ") || undefined;
  if (skipPeer("tests/sweep_test.ts (peers)", unavailable)) return;
  const dir = await Deno.makeTempDir({ prefix: "sigmax-sweep-peers-" });
  try {
    const preset: SweepPreset = {
      ...TINY,
      seqLens: [16],
      headDims: [8],
      implementations: ["fused", "ort", "jax"],
      maxSeqLen: { ...TINY.maxSeqLen, seqLens: [64] },
    };
    const results = await runSweep(preset, { out: `${dir}/results.json`, progress: false });
    assert.deepEqual(results.failures, []);
    assert.equal(results.peersSkipped, undefined);
    const of = (impl: string, pass: string) =>
      results.records.filter((r) => r.impl === impl && r.pass === pass);
    // ORT has no backward; jax-js has both passes; both activations each.
    assert.equal(of("ort", "forward").length, 2);
    assert.equal(of("ort", "backward").length, 0);
    assert.equal(of("jax", "forward").length, 2);
    assert.equal(of("jax", "backward").length, 2);
    for (const r of results.records.filter((r) => r.impl === "ort" || r.impl === "jax")) {
      assert.equal(r.clock, "wall");
      assert.equal(r.precision, "f32");
      assert.ok(r.msMin <= r.msMedian && r.msMedian <= r.msMax);
      assert.equal(r.msWallMedian, r.msMedian);
      assert.ok(r.gflops > 0 && r.ran);
    }
    const ortSoftmax = of("ort", "forward").find((r) => r.activation === "softmax")!;
    assert.match(
      ortSoftmax.ran!,
      /^MultiHeadAttention; FlashAttention \(fused;.*ORT's own device$/,
    );
    const ortSigmoid = of("ort", "forward").find((r) => r.activation === "sigmoid")!;
    assert.match(ortSigmoid.ran!, /^unfused composition; unfused/);
    // sigmax's records carry their wall-clock spread, the ratios' band across clocks.
    for (const r of results.records.filter((r) => r.impl === "fused")) {
      assert.ok(r.msWallMin! <= r.msWallMedian && r.msWallMedian <= r.msWallMax!);
    }
    // No longest-sequence probe for the peers on devices of their own; jax-js's matmul.
    assert.deepEqual([...new Set(results.maxSeqLen.map((m) => m.impl))], ["fused"]);
    assert.ok(results.roofline!.jaxGflops! > 0);
    // The report takes it.
    assert.equal(validateResults(JSON.parse(JSON.stringify(results))).records.length, 10);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the presets time every peer, and the quick curves have four sequence lengths", () => {
  for (const preset of Object.values(PRESETS)) {
    assert.deepEqual(preset.implementations, ["fused", "unfused", "tfjs", "ort", "jax"]);
  }
  assert.ok(PRESETS.quick.seqLens.length >= 4, `${PRESETS.quick.seqLens}`);
  assert.ok(smokePreset(PRESETS.quick).seqLens.length >= 4);
});
