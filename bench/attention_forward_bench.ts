/**
 * `deno bench` for the attention forward pass: per shape group, fused softmax
 * (the baseline) against fused sigmoid, unfused softmax and unfused sigmoid.
 * Each iteration is timed from submit to `onSubmittedWorkDone()`; a summary
 * with GFLOP/s (FlashAttention's FLOP count) is printed when the run ends.
 *
 *     deno task bench bench/attention_forward_bench.ts
 */

import {
  type Activation,
  type AttentionShape,
  type AttentionWorkload,
  attentionWorkload,
} from "../mod.ts";

const IMPLS: { implementation: "fused" | "unfused"; activation: Activation }[] = [
  { implementation: "fused", activation: "softmax" },
  { implementation: "fused", activation: "sigmoid" },
  { implementation: "unfused", activation: "softmax" },
  { implementation: "unfused", activation: "sigmoid" },
];

/** Shape groups: B=1, H=4; D=64 at S ∈ {256, 1024} causal off and on, and D ∈ {32, 128} at S=1024. */
const GROUPS: { seqLen: number; headDim: number; causal: boolean }[] = [
  { seqLen: 256, headDim: 64, causal: false },
  { seqLen: 256, headDim: 64, causal: true },
  { seqLen: 1024, headDim: 64, causal: false },
  { seqLen: 1024, headDim: 64, causal: true },
  { seqLen: 1024, headDim: 32, causal: false },
  { seqLen: 1024, headDim: 128, causal: false },
];

for (const { seqLen, headDim, causal } of GROUPS) {
  const shape: AttentionShape = { batch: 1, heads: 4, seqLen, headDim };
  const group = `B=1 H=4 S=${seqLen} D=${headDim}${causal ? " causal" : ""}`;
  for (const { implementation, activation } of IMPLS) {
    const name = `${implementation} ${activation}`;
    const samples: number[] = [];
    let work: AttentionWorkload | undefined; // built on first use, kept for every iteration
    Deno.bench({
      name,
      group,
      baseline: implementation === "fused" && activation === "softmax",
      // Each iteration is a whole kernel (tens to hundreds of ms on a software adapter).
      n: seqLen >= 1024 ? 5 : 20,
      warmup: 1,
      async fn(b) {
        if (!work) {
          work = await attentionWorkload(shape, { activation, causal, implementation });
          await work.run(); // the first run compiles; keep it out of the timed region
        }
        b.start();
        samples.push(await work.run());
        b.end();
      },
    });
    globalThis.addEventListener("unload", () => {
      if (!work || !samples.length) return;
      const flops = work.plan.forwardFlops;
      const sorted = samples.slice().sort((x, y) => x - y);
      const median = sorted[sorted.length >> 1];
      console.log(
        `${group.padEnd(28)} ${name.padEnd(16)} median ${median.toFixed(2).padStart(9)} ms ` +
          `${(flops / median / 1e6).toFixed(2).padStart(7)} GFLOP/s (${samples.length} runs)`,
      );
    });
  }
}
