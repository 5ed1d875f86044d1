import { gridCases, variants } from "./_helpers.ts";
import { checkBackwardCase } from "./_backward_helpers.ts";

// One file per activation, so that `deno test --parallel` runs the two in parallel. The software
// backward kernels serve both activations: this file takes the head dims from the largest down,
// the softmax file from the smallest up, so that they compile different pipelines at a time.
for (const { implementation, tiling } of variants()) {
  const name = tiling ? `${implementation} (tiling "${tiling}")` : implementation;
  Deno.test(`attentionBackward() matches the reference: ${name} sigmoid, odd sizes, causal on and off`, async () => {
    let seed = 1;
    for (const { shape, options } of gridCases("sigmoid", implementation, tiling, "descending")) {
      await checkBackwardCase(shape, options, seed++);
    }
  });
}
