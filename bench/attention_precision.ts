/**
 * f16 against f32 storage for the fused kernels (B=1, H=4, S=1024, D=64),
 * where the adapter has `shader-f16`: a bench group that the forward and
 * backward bench files register.
 *
 * f16 halves the bytes of q, k, v, out (and the gradients); the arithmetic
 * stays f32, so on FP32 units the gain is memory traffic only.
 */

import type { Activation, AttentionPass } from "../mod.ts";
import {
  benchAttention,
  medianMs,
  type Samples,
  type ShapeGroup,
} from "./attention_bench_common.ts";

const SHAPE: ShapeGroup = { seqLen: 1024, headDim: 64, causal: false };

/** Per activation, the f32 and f16 samples. */
export type PrecisionSamples = Map<Activation, { f32: Samples; f16: Samples }>;

/** Registers fused f32 (baseline) and f16 benches of `pass` for both activations. */
export function benchPrecision(pass: AttentionPass): PrecisionSamples {
  const group = `${pass} f16 vs f32, fused, B=1 H=4 S=${SHAPE.seqLen} D=${SHAPE.headDim}`;
  const all: PrecisionSamples = new Map();
  for (const activation of ["softmax", "sigmoid"] as const) {
    const bench = (precision: "f32" | "f16") =>
      benchAttention(
        group,
        `fused ${activation} ${precision}`,
        activation === "softmax" && precision === "f32",
        pass,
        SHAPE,
        { activation, precision },
      );
    all.set(activation, { f32: bench("f32"), f16: bench("f16") });
  }
  return all;
}

/** Summary lines: GFLOP/s of each and the f16 speed-up `time(f32) / time(f16)`. */
export function precisionSummary(pass: AttentionPass, all: PrecisionSamples): string[] {
  const lines: string[] = [];
  for (const [activation, { f32, f16 }] of all) {
    if (f32.ms.length < 2 || f16.ms.length < 2) continue;
    const gflops = (s: Samples) => (s.flops / medianMs(s) / 1e6).toFixed(2);
    lines.push(
      `${pass} fused ${activation} S=${SHAPE.seqLen} D=${SHAPE.headDim}: f32 ${gflops(f32)}, ` +
        `f16 ${gflops(f16)} GFLOP/s; f16/f32 speed ${(medianMs(f32) / medianMs(f16)).toFixed(2)}×`,
    );
  }
  return lines;
}
