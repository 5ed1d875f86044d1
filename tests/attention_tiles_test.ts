import assert from "node:assert/strict";
import { fusedForwardWgsl, fusedStorageBytes, fusedTiles } from "../kernels/attention_fused.ts";
import {
  fusedBackwardStorageBytes,
  fusedBackwardTiles,
  fusedBackwardWgsl,
} from "../kernels/attention_fused_backward.ts";
import {
  gpuForwardTiles,
  gpuForwardWgsl,
  gpuStorageBytes,
} from "../kernels/attention_fused_gpu.ts";
import { gpuBackwardTiles, gpuBackwardWgsl } from "../kernels/attention_fused_gpu_backward.ts";

/** Bytes of the kernel's `var<workgroup>` arrays, read off its WGSL with the override constants. */
function workgroupBytes(wgsl: string, constants: Record<string, number>): number {
  let bytes = 0;
  for (
    const [, type, count] of wgsl.matchAll(
      /var<workgroup> \w+: array<(vec4<f32>|f32), ([^;]+)>;/g,
    )
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

Deno.test("software-tiling kernels' workgroup arrays fit WebGPU's guaranteed 16 KiB for every head dim", () => {
  let checked = 0;
  for (const software of [true]) {
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
  assert.ok(checked > 50);
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

Deno.test("direct-read software kernels use no workgroup memory and no barrier, and stage nothing", () => {
  for (const headDim of [8, 33, 64, 128]) {
    const forward = ["softmax", "sigmoid"].map((activation) => {
      const tiles = fusedTiles(activation as "softmax", headDim, 32768, true, true);
      assert.equal(tiles.direct, true);
      assert.equal(fusedStorageBytes(activation as "softmax", headDim, tiles), 0);
      return fusedForwardWgsl({
        activation: activation as "softmax",
        headDim,
        precision: "f32",
        rowsPerLane: tiles.rowsPerLane,
        directKeys: tiles.keys,
      });
    });
    const backward = (["dq", "dkv"] as const).map((kernel) => {
      const tiles = fusedBackwardTiles(kernel, "softmax", headDim, 32768, true, true);
      assert.equal(fusedBackwardStorageBytes(kernel, "softmax", headDim, tiles), 0);
      return fusedBackwardWgsl({
        kernel,
        headDim,
        precision: "f32",
        rowsPerLane: tiles.rowsPerLane,
        directKeys: tiles.keys,
      });
    });
    for (const wgsl of [...forward, ...backward]) {
      assert.doesNotMatch(wgsl, /var<workgroup>|workgroupBarrier|Tile\[/);
      assert.match(wgsl, /\.direct32/, "the label names the block");
      assert.match(wgsl, /const B[KQ]: u32 = 32u;/, "the block is compiled in");
      assert.match(wgsl, /min\([kq]0 \+ j \+ 3u, S - 1u\)/, "reads past S are clamped");
    }
    assert.match(forward[0], /var sLocal: array<vec4<f32>, BK \/ 4u \* R>;/, "private scores");
  }
});

Deno.test("software-tiling backward kernels' workgroup arrays fit 16 KiB for every head dim", () => {
  let checked = 0;
  for (const software of [true]) {
    for (const activation of ["softmax", "sigmoid"] as const) {
      for (const kernel of ["dq", "dkv"] as const) {
        for (let headDim = 1; headDim <= 256; headDim += headDim < 16 ? 1 : 7) {
          const tiles = fusedBackwardTiles(kernel, activation, headDim, 32768, software);
          const wgsl = fusedBackwardWgsl({
            kernel,
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
  assert.ok(checked > 100);
});

Deno.test("fusedBackwardWgsl() serves both activations: the uniform picks, one tile size fits both", () => {
  const base = { headDim: 33, precision: "f32", rowsPerLane: 2 } as const;
  for (const kernel of ["dq", "dkv"] as const) {
    const wgsl = fusedBackwardWgsl({ ...base, kernel });
    assert.match(wgsl, /let softmax = params\.softmax != 0u;/);
    assert.match(wgsl, /lse/);
    assert.match(wgsl, /delta/);
    // One exp per score for either activation: exp(s − lse) or exp(−|s|).
    assert.match(wgsl, /exp\(select\(-abs\(s4_0\), s4_0 - /);
    assert.match(wgsl, new RegExp(`attention\\.backward\\.${kernel}\\.d33\\.r2`));
    for (const headDim of [1, 33, 64, 128, 256]) {
      const soft = fusedBackwardTiles(kernel, "softmax", headDim, 32768, true);
      const sig = fusedBackwardTiles(kernel, "sigmoid", headDim, 32768, true);
      assert.deepEqual(sig, soft, `${kernel} D=${headDim}: one pipeline serves both`);
    }
  }
  // Only the dq kernel writes Δ (dkv reads it).
  const dq = fusedBackwardWgsl({ ...base, kernel: "dq" });
  const dkv = fusedBackwardWgsl({ ...base, kernel: "dkv" });
  assert.match(dq, /var<storage, read_write> delta/);
  assert.match(dkv, /var<storage, read> delta/);
  assert.match(fusedBackwardWgsl({ ...base, kernel: "dkv", precision: "f16" }), /enable f16;/);
});

Deno.test("GPU-tiling kernels: compile-time key step, no score scratch, bounded slices, within 16 KiB", () => {
  let checked = 0;
  for (const subgroups of [false, true]) {
    for (const activation of ["softmax", "sigmoid"] as const) {
      for (let headDim = 1; headDim <= 256; headDim += headDim < 16 ? 1 : 7) {
        const D4 = Math.ceil(headDim / 4);
        const kernels = [
          ["forward", gpuForwardTiles(headDim, 32768, subgroups), 16, 0, 1],
          ["dq", gpuBackwardTiles("dq", activation, headDim, 32768, subgroups), 8, 0, 2],
          [
            "dkv",
            gpuBackwardTiles("dkv", activation, headDim, 32768, subgroups),
            8,
            activation === "softmax" ? 8 : 0,
            2,
          ],
        ] as const;
        for (const [kernel, tiles, maxWidth, statBytes, exchanged] of kernels) {
          const where = `${kernel} ${activation} D=${headDim} subgroups=${subgroups}`;
          const config = { activation, headDim, precision: "f32", tiles } as const;
          const wgsl = kernel === "forward"
            ? gpuForwardWgsl(config)
            : gpuBackwardWgsl({ ...config, kernel });
          // A lane holds at most maxWidth vec4s of each row vector, whatever the head dim.
          assert.ok(tiles.width <= maxWidth && tiles.width * tiles.split >= D4, where);
          assert.equal(tiles.keys % 4, 0, where);
          assert.match(wgsl, new RegExp(`const KS: u32 = ${tiles.keys}u;`), where);
          assert.doesNotMatch(wgsl, /override (BK|BQ|KS)|sTile/, where);
          const bytes = workgroupBytes(wgsl, { WG: tiles.lanes });
          assert.equal(bytes, gpuStorageBytes(tiles, D4, 2, { statBytes, exchanged }), where);
          assert.ok(bytes <= 16384, `${where}: ${bytes} bytes`);
          // Split rows: shuffles with subgroups, the exchange array without; neither when unsplit.
          const shuffles = /subgroupShuffleXor/.test(wgsl);
          const exchange = /var<workgroup> red/.test(wgsl);
          assert.equal(shuffles, tiles.split > 1 && subgroups, where);
          assert.equal(exchange, tiles.split > 1 && !subgroups, where);
          checked++;
        }
      }
    }
  }
  assert.ok(checked > 300);
});
