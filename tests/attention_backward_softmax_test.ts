import { gridCases, variants } from "./_helpers.ts";
import { checkBackwardCase } from "./_backward_helpers.ts";

// One file per activation, so that `deno test --parallel` runs the two in parallel; this one takes
// the head dims from the smallest up, the sigmoid file from the largest down (see gridCases).
for (const { implementation, tiling } of variants()) {
  const name = tiling ? `${implementation} (tiling "${tiling}")` : implementation;
  Deno.test(`attentionBackward() matches the reference: ${name} softmax, odd sizes, causal on and off`, async () => {
    let seed = 1;
    for (const { shape, options } of gridCases("softmax", implementation, tiling, "ascending")) {
      await checkBackwardCase(shape, options, seed++);
    }
  });
}
