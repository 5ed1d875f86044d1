/**
 * `deno bench` for the attention forward pass: per shape group, fused softmax
 * (the baseline) against fused sigmoid, unfused softmax and unfused sigmoid.
 * deno bench's own table times each iteration by wall clock. When the run
 * ends a summary gives each kernel's GFLOP/s (FlashAttention's FLOP count)
 * from GPU timestamps (where the adapter has them; deno bench's warmup
 * iteration left out) and, per group, the measured speed ratios beside those
 * the operation-count model (bench/op_model.ts) predicts.
 *
 *     deno task bench bench/attention_forward_bench.ts
 */

import {
  adapterReport,
  type AttentionShape,
  type AttentionWorkload,
  attentionWorkload,
  getDevice,
  seededInputs,
} from "../mod.ts";
import { fusedTiles } from "../kernels/attention_fused.ts";
import {
  GPU_COSTS,
  KERNELS,
  type ModelledKernel,
  predictedSpeedup,
  SOFTWARE_COSTS,
} from "./op_model.ts";
import { isSoftwareDevice, summarize, timeSubmit, uploadBuffer } from "../kernels/device.ts";
import { MatmulPlan, type MatmulShape } from "../kernels/matmul.ts";

// What the model needs to know about the adapter: tiles and cost table.
const device = await getDevice();
const software = isSoftwareDevice(device);
const costs = software ? SOFTWARE_COSTS : GPU_COSTS;
const { description } = await adapterReport();
const tiles = (headDim: number) =>
  fusedTiles("softmax", headDim, device.limits.maxComputeWorkgroupStorageSize, software);

/** Shape groups: B=1, H=4; D=64 at S ∈ {256, 1024} causal off and on, and D ∈ {32, 128} at S=1024. */
const GROUPS: { seqLen: number; headDim: number; causal: boolean }[] = [
  { seqLen: 256, headDim: 64, causal: false },
  { seqLen: 256, headDim: 64, causal: true },
  { seqLen: 1024, headDim: 32, causal: false },
  { seqLen: 1024, headDim: 64, causal: false },
  { seqLen: 1024, headDim: 64, causal: true },
  { seqLen: 1024, headDim: 128, causal: false },
];

/** Every timed iteration, by group and kernel. */
const samples = new Map<string, Map<ModelledKernel, { ms: number[]; flops: number }>>();

for (const { seqLen, headDim, causal } of GROUPS) {
  const shape: AttentionShape = { batch: 1, heads: 4, seqLen, headDim };
  const group = `B=1 H=4 S=${seqLen} D=${headDim}${causal ? " causal" : ""}`;
  samples.set(group, new Map());
  for (const { name, implementation, activation } of KERNELS) {
    let work: AttentionWorkload | undefined; // built on first use, kept for every iteration
    Deno.bench({
      name,
      group,
      baseline: name === "fused softmax",
      // Each iteration is a whole kernel (tens to hundreds of ms on a software adapter).
      n: seqLen >= 1024 ? 5 : 20,
      warmup: 1,
      async fn(b) {
        if (!work) {
          work = await attentionWorkload(shape, { activation, causal, implementation });
          await work.run(); // the first run compiles; keep it out of the timed region
          samples.get(group)!.set(name, { ms: [], flops: work.plan.forwardFlops });
        }
        b.start();
        const ms = await work.run();
        b.end();
        samples.get(group)!.get(name)!.ms.push(ms);
      },
    });
  }
}

/**
 * The roofline: sigmax's matmul at the unfused path's two shapes (batch 4),
 * on resident buffers, timed like the kernels above.
 */
const ROOFLINE: { name: string; shape: MatmulShape }[] = [
  { name: "matmul Q·Kᵀ 1024×1024×64", shape: { batch: 4, m: 1024, n: 1024, k: 64, transB: true } },
  { name: "matmul P·V 1024×64×1024", shape: { batch: 4, m: 1024, n: 64, k: 1024 } },
];
const roofline = new Map<string, { ms: number[]; flops: number }>();
for (const { name, shape } of ROOFLINE) {
  let run: (() => Promise<number>) | undefined;
  Deno.bench({
    name,
    group: "roofline: matmul, batch 4",
    n: 5,
    warmup: 1,
    async fn(b) {
      if (!run) {
        const plan = await MatmulPlan.create(device, shape);
        const { batch, m, n, k } = shape;
        const [a, bb, c] = [m * k, k * n, m * n].map((size) =>
          uploadBuffer(device, seededInputs(batch * size, size), "bench.matmul")
        );
        run = () => timeSubmit(device, (encoder) => plan.encode(encoder, a, bb, c));
        await run(); // compile outside the timed region
        roofline.set(name, { ms: [], flops: plan.flops });
      }
      b.start();
      const ms = await run();
      b.end();
      roofline.get(name)!.ms.push(ms);
    },
  });
}

globalThis.addEventListener("unload", () => {
  if (![...samples.values()].some((g) => g.size)) return;
  const lines = [
    "",
    `summary (median of each kernel's timed runs; ratio = time(baseline) / time(kernel), model in brackets):`,
    `${"group".padEnd(26)} ${
      KERNELS.map((k) => `${k.implementation} ${k.activation}`.padStart(17)).join("")
    }` +
    `   sig/soft fused   fused/unfused softmax   fused/unfused sigmoid`,
  ];
  for (const { seqLen, headDim, causal } of GROUPS) {
    const group = `B=1 H=4 S=${seqLen} D=${headDim}${causal ? " causal" : ""}`;
    const g = samples.get(group)!;
    if (g.size < KERNELS.length) continue;
    // The first sample is deno bench's warmup iteration.
    const ms = (k: ModelledKernel) => summarize(g.get(k)!.ms.slice(1)).msMedian;
    const gflops = (k: ModelledKernel) => g.get(k)!.flops / ms(k) / 1e6;
    const cell = (k: ModelledKernel) => `${gflops(k).toFixed(2)} GFLOP/s`.padStart(17);
    const pair = (kernel: ModelledKernel, baseline: ModelledKernel) => {
      const model = predictedSpeedup(kernel, baseline, headDim, tiles(headDim), costs);
      return `${(ms(baseline) / ms(kernel)).toFixed(2)}× (${model.toFixed(2)}×)`;
    };
    lines.push(
      `${group.padEnd(26)} ${KERNELS.map((k) => cell(k.name)).join("")}` +
        `   ${pair("fused sigmoid", "fused softmax").padStart(14)}   ${
          pair("fused softmax", "unfused softmax").padStart(21)
        }   ${pair("fused sigmoid", "unfused sigmoid").padStart(21)}`,
    );
  }
  for (const [name, { ms, flops }] of roofline) {
    const median = summarize(ms.slice(1)).msMedian; // without deno bench's warmup iteration
    lines.push(`roofline: ${name}: ${(flops / median / 1e6).toFixed(2)} GFLOP/s`);
  }
  lines.push(
    `model costs: ${software ? "software adapter" : "GPU (FP32 units)"} (bench/op_model.ts); ` +
      `adapter: ${description}`,
    `times from GPU timestamps where the adapter has timestamp-query and they read sane values, ` +
      `else submit to done; deno bench's table above is wall clock, submit to done`,
  );
  console.log(lines.join("\n"));
});
