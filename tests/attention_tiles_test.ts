import assert from "node:assert/strict";
import {
  FUSED_STORAGE_BUDGET,
  fusedForwardWgsl,
  fusedStorageBytes,
  fusedTiles,
} from "../kernels/attention_fused.ts";

Deno.test("fusedTiles() fits WebGPU's guaranteed 16 KiB of workgroup memory for every head dim", () => {
  for (const software of [false, true]) {
    for (const activation of ["softmax", "sigmoid"] as const) {
      for (let headDim = 1; headDim <= 256; headDim++) {
        // Adapters may offer more (llvmpipe: 32 KiB); the kernels never plan for it.
        for (const limit of [16384, 32768]) {
          const tiles = fusedTiles(activation, headDim, limit, software);
          const bytes = fusedStorageBytes(activation, headDim, tiles);
          assert.ok(bytes <= FUSED_STORAGE_BUDGET, `${activation} D=${headDim}: ${bytes} bytes`);
          assert.equal(tiles.keys % 4, 0, "keys go four at a time");
          assert.ok(tiles.keys >= 4);
        }
      }
    }
  }
});

Deno.test("fusedForwardWgsl() specialises the kernel: no row statistics in sigmoid, no sigmoid in softmax", () => {
  const base = { causal: true, headDim: 33, precision: "f32", rowsPerLane: 2 } as const;
  const softmax = fusedForwardWgsl({ ...base, activation: "softmax" });
  const sigmoid = fusedForwardWgsl({ ...base, activation: "sigmoid" });
  assert.match(softmax, /tileMax/);
  assert.match(softmax, /lse\[/);
  assert.doesNotMatch(softmax, /sigmoid4/);
  assert.match(sigmoid, /sigmoid4/);
  assert.doesNotMatch(sigmoid, /tileMax|lse|sTile/);
  assert.match(
    fusedForwardWgsl({ ...base, activation: "sigmoid", precision: "f16" }),
    /enable f16;/,
  );
});
