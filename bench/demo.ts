/**
 * The demo behind `deno task demo`: which adapter runs, whether the kernels
 * agree with the reference, and how fused and unfused softmax and sigmoid
 * attention compare in speed on this machine.
 *
 * @module
 */

import {
  adapterReport,
  attention,
  attentionBackward,
  attentionBackwardReference,
  type AttentionPass,
  attentionReference,
  type AttentionShape,
  attentionWorkload,
  compareAttention,
  getDevice,
  seededInputs,
} from "../mod.ts";
import { isSoftwareDevice } from "../kernels/device.ts";
import { fusedTiles } from "../kernels/attention_fused.ts";
import { fusedBackwardTiles } from "../kernels/attention_fused_backward.ts";
import { GPU_COSTS, KERNELS, predictedSpeedup, SOFTWARE_COSTS } from "./op_model.ts";

/** Settings of the demo (the CLI's flags). */
export interface DemoOptions {
  seqLens: number[];
  heads: number;
  headDims: number[];
  reps: number;
  /** Time the backward pass too. */
  backward: boolean;
  /** Run the S = 16384 long-context check. */
  long: boolean;
}

/**
 * Defaults: B=1, H=4, D=64, S ∈ {256, 512, 1024}, 10 timed rounds, forward
 * and backward, long-context check on.
 */
export const DEMO_DEFAULTS: DemoOptions = {
  seqLens: [256, 512, 1024],
  heads: 4,
  headDims: [64],
  reps: 10,
  backward: true,
  long: true,
};

/** Runs the demo, printing as it goes; returns false if a kernel disagreed with the reference. */
export async function runDemo(options: DemoOptions, log = console.log): Promise<boolean> {
  const report = await adapterReport();
  const software = isSoftwareDevice(await getDevice());
  log(`adapter: ${report.description}${software ? " (software)" : ""}`);
  if (software) {
    log(
      "  (a first run compiles every kernel's shader, a few minutes on a software adapter; " +
        "Mesa caches them for later runs)",
    );
  }
  log(
    `  shader-f16: ${report.shaderF16 ? "yes" : "no"}, timestamp-query: ${
      report.timestampQuery ? "yes" : "no"
    }, workgroup memory: ${report.limits.maxComputeWorkgroupStorageSize} B, ` +
      `max storage binding: ${report.limits.maxStorageBufferBindingSize / 2 ** 20} MiB`,
  );

  log("\nkernels against the f64 reference (tolerance |err| ≤ 1e-5 + 1e-4·|ref|):");
  let allGood = true;
  const checks: [AttentionShape, boolean][] = [
    [{ batch: 1, heads: 2, seqLen: 97, headDim: 33 }, true],
    [{ batch: 2, heads: 2, seqLen: 64, headDim: 64 }, false],
    [{ batch: 1, heads: 1, seqLen: 257, headDim: 16 }, true],
  ];
  for (const [shape, causal] of checks) {
    const n = shape.batch * shape.heads * shape.seqLen * shape.headDim;
    const [q, k, v] = [seededInputs(n, 1), seededInputs(n, 2), seededInputs(n, 3)];
    const cells: string[] = [];
    for (const { implementation, activation } of KERNELS) {
      const opts = { activation, causal, implementation };
      const got = await attention(q, k, v, shape, opts);
      const ref = attentionReference(q, k, v, shape, opts);
      let maxErr = 0;
      let ok = true;
      for (let i = 0; i < n; i++) {
        const err = Math.abs(got[i] - ref[i]);
        if (!(err <= 1e-5 + 1e-4 * Math.abs(ref[i]))) ok = false;
        maxErr = Math.max(maxErr, err);
      }
      allGood &&= ok;
      cells.push(
        `${implementation} ${activation} ${maxErr.toExponential(1)} ${ok ? "ok" : "FAIL"}`,
      );
    }
    const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
    log(`  [${B},${H},${S},${D}]${causal ? " causal" : "       "}  ${cells.join("  ")}`);
  }
  log("backward (dq, dk, dv; tolerance |err| ≤ 1e-4 + 1e-3·|ref|):");
  {
    const shape = { batch: 1, heads: 2, seqLen: 97, headDim: 33 };
    const n = shape.batch * shape.heads * shape.seqLen * shape.headDim;
    const [q, k, v, dOut] = [1, 2, 3, 4].map((seed) => seededInputs(n, seed));
    const cells: string[] = [];
    for (const { implementation, activation } of KERNELS) {
      const opts = { activation, causal: true, implementation };
      const got = await attentionBackward(q, k, v, dOut, shape, opts);
      const ref = attentionBackwardReference(q, k, v, dOut, shape, opts);
      let maxErr = 0;
      let ok = true;
      for (const g of ["dq", "dk", "dv"] as const) {
        for (let i = 0; i < n; i++) {
          const err = Math.abs(got[g][i] - ref[g][i]);
          if (!(err <= 1e-4 + 1e-3 * Math.abs(ref[g][i]))) ok = false;
          maxErr = Math.max(maxErr, err);
        }
      }
      allGood &&= ok;
      cells.push(
        `${implementation} ${activation} ${maxErr.toExponential(1)} ${ok ? "ok" : "FAIL"}`,
      );
    }
    log(`  [1,2,97,33] causal  ${cells.join("  ")}`);
  }

  const H = options.heads;
  const costs = software ? SOFTWARE_COSTS : GPU_COSTS;
  const storage = report.limits.maxComputeWorkgroupStorageSize;
  const clocks = new Set<string>();
  const passes: AttentionPass[] = options.backward ? ["forward", "backward"] : ["forward"];
  for (const pass of passes) {
    log(
      `\n${pass} time, B=1 H=${H}: kernels interleaved, median of ${options.reps} rounds ` +
        `(ms and GFLOP/s, ${pass === "forward" ? "" : "2.5 × "}4·B·H·S²·D FLOPs)`,
    );
    log(
      "       D       S" + KERNELS.map((k) => k.name.padStart(20)).join("") +
        "  sig/soft fused (model)  fused/unfused soft  sig",
    );
    for (const D of options.headDims) {
      const tiles = pass === "forward"
        ? fusedTiles("softmax", D, storage, software)
        : fusedBackwardTiles("dq", "softmax", D, storage, software);
      const model = predictedSpeedup("fused sigmoid", "fused softmax", D, tiles, costs, pass);
      for (const S of options.seqLens) {
        const shape = { batch: 1, heads: H, seqLen: S, headDim: D };
        const times = await compareAttention(shape, [...KERNELS], { reps: options.reps, pass });
        const ms = times.map((t) => t.msMedian);
        for (const t of times) {
          clocks.add(t.clock === "timestamp" ? "GPU timestamps" : "wall clock (submit to done)");
        }
        const cells = times.map((t) => `${t.msMedian.toFixed(1)} ms ${t.gflops.toFixed(2)}`);
        const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
        log(
          `  ${String(D).padStart(6)}${String(S).padStart(8)}${
            cells.map((c) => c.padStart(20)).join("")
          }` +
            `  ${ratio(ms[0], ms[1]).padStart(8)} (${model.toFixed(2)}×)` +
            `  ${ratio(ms[2], ms[0]).padStart(14)}  ${ratio(ms[3], ms[1]).padStart(6)}`,
        );
      }
    }
  }
  log("  ratios are time(baseline)/time(kernel): above 1× the kernel is faster.");
  log(`  timed with ${[...clocks].join(" and ")}; the model's prediction in brackets.`);

  if (options.long) {
    const S = 16384;
    const shape = { batch: 1, heads: 1, seqLen: S, headDim: 32 };
    log(`\nlong context, S=${S} H=1 D=32:`);
    try {
      const unfused = await attentionWorkload(shape, {
        activation: "sigmoid",
        implementation: "unfused",
      });
      await unfused.run();
      unfused.destroy();
      log("  unfused: ran (this adapter has room for the S×S scores)");
    } catch (error) {
      log(`  unfused: refused: ${(error as Error).message}`);
    }
    // One run: this shows memory, not speed (the table above is the timing).
    const work = await attentionWorkload(shape, { activation: "sigmoid" });
    try {
      const ms = await work.run();
      const mib = (4 * work.plan.tensorBytes) / 2 ** 20;
      log(
        `  fused sigmoid: ran in ${(ms / 1000).toFixed(1)} s ` +
          `(${(work.plan.forwardFlops / ms / 1e6).toFixed(2)} GFLOP/s, one run); ` +
          `global memory ${mib.toFixed(0)} MiB for q, k, v, out: O(S·D)`,
      );
    } finally {
      work.destroy();
    }
  }
  return allGood;
}
