/**
 * `deno bench bench/matmul_bench.ts`: sigmax's f32 matmul (the roofline the
 * attention kernels are measured against) and TF.js's on its WebGPU backend,
 * square sizes, on the same device. Both are timed on the wall clock (submit →
 * result; TF.js has no other clock); the summary also gives sigmax's
 * GPU-timestamp figure.
 *
 * @module
 */

import { createStorageBuffer, getDevice, measureSubmit, summarize } from "../kernels/device.ts";
import { MatmulPlan } from "../kernels/matmul.ts";
import { loadTfjs, timeTfjsMatmul } from "./peers/tfjs.ts";

const SIZES = [256, 512, 1024];
const device = await getDevice();
const tfjs = await loadTfjs();
const results: { size: number; impl: string; wallMs: number[]; gpuMs: number[]; flops: number }[] =
  [];

for (const size of SIZES) {
  const group = `matmul ${size}×${size}×${size}`;
  const ours = {
    size,
    impl: "sigmax",
    wallMs: [] as number[],
    gpuMs: [] as number[],
    flops: 2 * size ** 3,
  };
  results.push(ours);
  let run: (() => Promise<void>) | undefined;
  Deno.bench({
    name: "sigmax",
    group,
    baseline: true,
    n: 10,
    warmup: 1,
    async fn(b) {
      if (!run) {
        const plan = await MatmulPlan.create(device, { batch: 1, m: size, n: size, k: size });
        const [a, bb, c] = ["a", "b", "c"].map((n) =>
          createStorageBuffer(device, size * size * 4, n)
        );
        run = async () => {
          const t = await measureSubmit(device, (enc) => plan.encode(enc, a, bb, c));
          ours.wallMs.push(t.wallMs);
          if (t.gpuMs !== undefined) ours.gpuMs.push(t.gpuMs);
        };
        await run(); // compiles
        ours.wallMs.length = ours.gpuMs.length = 0;
      }
      b.start();
      await run();
      b.end();
    },
  });
  if ("error" in tfjs) continue;
  const theirs = {
    size,
    impl: "tfjs",
    wallMs: [] as number[],
    gpuMs: [] as number[],
    flops: 2 * size ** 3,
  };
  results.push(theirs);
  let warm = false;
  Deno.bench({
    name: "tfjs",
    group,
    n: 10,
    warmup: 1,
    async fn(b) {
      if (!warm) {
        await timeTfjsMatmul(tfjs, size, { warmup: 1, reps: 1 });
        warm = true;
      }
      b.start();
      const t = await timeTfjsMatmul(tfjs, size, { warmup: 0, reps: 1 });
      b.end();
      theirs.wallMs.push(t.msMedian);
    },
  });
}

globalThis.addEventListener("unload", () => {
  const lines = [
    "",
    "matmul, GFLOP/s from wall-clock medians (sigmax's GPU-timestamp figure in brackets):",
  ];
  if ("error" in tfjs) lines.push(`tfjs: not run (${tfjs.error})`);
  for (const size of SIZES) {
    const cells = results.filter((r) => r.size === size && r.wallMs.length > 1).map((r) => {
      const wall = r.flops / summarize(r.wallMs.slice(1)).msMedian / 1e6;
      const gpu = r.gpuMs.length > 1
        ? ` (${(r.flops / summarize(r.gpuMs.slice(1)).msMedian / 1e6).toFixed(2)})`
        : "";
      return { impl: r.impl, wall, text: `${r.impl} ${wall.toFixed(2)}${gpu}` };
    });
    const ours = cells.find((c) => c.impl === "sigmax");
    const theirs = cells.find((c) => c.impl === "tfjs");
    const ratio = ours && theirs ? `  sigmax/tfjs ${(ours.wall / theirs.wall).toFixed(2)}×` : "";
    lines.push(`  ${String(size).padStart(5)}³: ${cells.map((c) => c.text).join("   ")}${ratio}`);
  }
  console.log(lines.join("\n"));
});
