import assert from "node:assert/strict";
import { fusedForwardWgsl, fusedStorageBytes, fusedTiles } from "../kernels/attention_fused.ts";
import {
  fusedBackwardStorageBytes,
  fusedBackwardTiles,
  fusedBackwardWgsl,
} from "../kernels/attention_fused_backward.ts";

/** Bytes of the kernel's `var<workgroup>` arrays, read off its WGSL with the override constants. */
function workgroupBytes(wgsl: string, constants: Record<string, number>): number {
  let bytes = 0;
  for (
    const [, type, count] of wgsl.matchAll(/var<workgroup> \w+: array<(vec4<f32>|f32), ([^;]+)>;/g)
  ) {
    const expr = count.replace(/\b([A-Z][A-Z0-9]*)\b/g, (name) => {
      const value = constants[name] ??
        Number(wgsl.match(new RegExp(`const ${name}: u32 = (\\d+)u;`))?.[1]);
      assert.ok(Number.isFinite(value), `a value for ${name}`);
      return String(value);
    }).replace(/(\d+)u\b/g, "$1");
    assert.match(expr, /^[\d\s*/+()-]+$/, `a plain arithmetic size: ${expr}`);
    bytes += Function(`return Math.floor(${expr})`)() * (type === "f32" ? 4 : 16);
  }
  return bytes;
}

Deno.test("fused kernels' workgroup arrays fit WebGPU's guaranteed 16 KiB for every head dim", () => {
  let checked = 0;
  for (const software of [false, true]) {
    for (const activation of ["softmax", "sigmoid"] as const) {
      for (let headDim = 1; headDim <= 256; headDim += headDim < 16 ? 1 : 7) {
        // llvmpipe offers 32 KiB; the kernels still plan for the guaranteed 16 KiB.
        const tiles = fusedTiles(activation, headDim, 32768, software);
        const wgsl = fusedForwardWgsl({
          activation,
          headDim,
          precision: "f32",
          rowsPerLane: tiles.rowsPerLane,
        });
        const bytes = workgroupBytes(wgsl, { WG: tiles.lanes, BK: tiles.keys });
        assert.ok(bytes > 0 && bytes <= 16384, `${activation} D=${headDim}: ${bytes} bytes`);
        assert.equal(bytes, fusedStorageBytes(activation, headDim, tiles));
        assert.equal(tiles.keys % 4, 0, "keys go four at a time");
        checked++;
      }
    }
  }
  assert.ok(checked > 100);
});

Deno.test("fusedForwardWgsl() specialises the kernel: no row statistics in sigmoid, no sigmoid in softmax", () => {
  const base = { headDim: 33, precision: "f32", rowsPerLane: 2 } as const;
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

Deno.test("fused backward kernels' workgroup arrays fit 16 KiB for every head dim", () => {
  let checked = 0;
  for (const software of [false, true]) {
    for (const activation of ["softmax", "sigmoid"] as const) {
      for (const kernel of ["dq", "dkv"] as const) {
        for (let headDim = 1; headDim <= 256; headDim += headDim < 16 ? 1 : 7) {
          const tiles = fusedBackwardTiles(kernel, activation, headDim, 32768, software);
          const wgsl = fusedBackwardWgsl({
            kernel,
            activation,
            headDim,
            precision: "f32",
            rowsPerLane: tiles.rowsPerLane,
          });
          const tile = kernel === "dq" ? "BK" : "BQ";
          const bytes = workgroupBytes(wgsl, { WG: tiles.lanes, [tile]: tiles.keys });
          const where = `${kernel} ${activation} D=${headDim}`;
          assert.ok(bytes > 0 && bytes <= 16384, `${where}: ${bytes} bytes`);
          assert.equal(bytes, fusedBackwardStorageBytes(kernel, activation, headDim, tiles));
          assert.equal(tiles.keys % 4, 0, "rows go four at a time");
          checked++;
        }
      }
    }
  }
  assert.ok(checked > 200);
});

Deno.test("fusedBackwardWgsl() specialises: sigmoid has no row terms, softmax reads lse and Δ", () => {
  const base = { headDim: 33, precision: "f32", rowsPerLane: 2 } as const;
  for (const kernel of ["dq", "dkv"] as const) {
    const softmax = fusedBackwardWgsl({ ...base, kernel, activation: "softmax" });
    const sigmoid = fusedBackwardWgsl({ ...base, kernel, activation: "sigmoid" });
    assert.match(softmax, /lse/);
    assert.match(softmax, /delta/);
    assert.doesNotMatch(sigmoid, /lse|delta/);
    assert.match(sigmoid, /exp\(-abs\(s4_0\)\)/);
  }
  // Only the dq kernel writes Δ (dkv reads it).
  const dq = fusedBackwardWgsl({ ...base, kernel: "dq", activation: "softmax" });
  const dkv = fusedBackwardWgsl({ ...base, kernel: "dkv", activation: "softmax" });
  assert.match(dq, /var<storage, read_write> delta/);
  assert.match(dkv, /var<storage, read> delta/);
  assert.match(
    fusedBackwardWgsl({ ...base, kernel: "dkv", activation: "sigmoid", precision: "f16" }),
    /enable f16;/,
  );
});
