import { gridCases, variants } from "./_helpers.ts";
import { checkBackwardCase } from "./_backward_helpers.ts";

// One file per activation, so that `deno test --parallel` compiles the two in parallel.
for (const { implementation, tiling } of variants()) {
  const name = tiling ? `${implementation} (tiling "${tiling}")` : implementation;
  Deno.test(`attentionBackward() matches the reference: ${name} sigmoid, odd sizes, causal on and off`, async () => {
    let seed = 1;
    for (const { shape, options } of gridCases("sigmoid", implementation, tiling)) {
      await checkBackwardCase(shape, options, seed++);
    }
  });
}
