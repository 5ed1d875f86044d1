/** The throughput sweep on a tiny preset: records, recorded failures, the probes, the file. */

import assert from "node:assert/strict";
import { estimateBytes, runSweep, type SweepPreset } from "../bench/sweep.ts";
import type { SweepResults } from "../bench/results.ts";

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
