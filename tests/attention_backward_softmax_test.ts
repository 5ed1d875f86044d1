import { gridCases } from "./_helpers.ts";
import { checkBackwardCase } from "./_backward_helpers.ts";

// One file per activation, so that `deno test --parallel` compiles the two in parallel.
for (const implementation of ["fused", "unfused"] as const) {
  Deno.test(`attentionBackward() matches the reference: ${implementation} softmax, odd sizes, causal on and off`, async () => {
    let seed = 1;
    for (const { shape, options } of gridCases("softmax", implementation)) {
      await checkBackwardCase(shape, options, seed++);
    }
  });
}
