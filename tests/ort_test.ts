/**
 * The ONNX Runtime Web peer of bench/peers/ort.ts computes the same function
 * as sigmax: its MultiHeadAttention graph (softmax, ORT's fused kernels) and
 * its composed sigmoid graph against sigmax's f64 reference, forward (ORT has
 * no backward), on the device the benches time it on (ORT's own). Skipped, with the reason, where ORT's WebGPU execution
 * provider cannot start.
 */

import assert from "node:assert/strict";
import { attentionReference, type AttentionShape, getDevice } from "../mod.ts";
import {
  loadOrt,
  onnxModel,
  OrtAttention,
  ortKernel,
  timeOrtAttention,
  transposeHeads,
} from "../bench/peers/ort.ts";
import { assertClose, randn, skipPeer, TOL } from "./_helpers.ts";

const handle = await loadOrt();
const unavailable = "error" in handle ? handle.error : undefined;
const ignore = skipPeer("tests/ort_test.ts", unavailable);

const SHAPES: AttentionShape[] = [
  { batch: 1, heads: 2, seqLen: 33, headDim: 16 },
  { batch: 2, heads: 1, seqLen: 7, headDim: 5 },
];

Deno.test("transposeHeads: [B,H,S,D] → [B,S,H,D] and back", () => {
  const shape = { batch: 2, heads: 3, seqLen: 4, headDim: 5 };
  const x = randn(2 * 3 * 4 * 5, 1);
  const t = transposeHeads(x, shape);
  // Element (b=1, h=2, s=3, d=4) moves from ((1·3+2)·4+3)·5+4 to ((1·4+3)·3+2)·5+4.
  assert.equal(t[((1 * 4 + 3) * 3 + 2) * 5 + 4], x[((1 * 3 + 2) * 4 + 3) * 5 + 4]);
  assert.deepEqual(transposeHeads(t, shape, true), x);
});

Deno.test("onnxModel writes the protobuf fields ORT reads", () => {
  const bytes = onnxModel({
    nodes: [{ op: "Sigmoid", inputs: ["x"], outputs: ["y"] }],
    inputs: [["x", [2, 300]]],
    outputs: [["y", [2, 300]]],
  });
  // ir_version = 8 is the first field (tag 0x08, value 8).
  assert.deepEqual([...bytes.subarray(0, 2)], [0x08, 8]);
  const text = new TextDecoder().decode(bytes);
  for (const s of ["Sigmoid", "com.microsoft", "sigmax_peer"]) assert.ok(text.includes(s), s);
  // 300 as a varint: 0xac 0x02.
  assert.ok(bytes.some((b, i) => b === 0xac && bytes[i + 1] === 0x02), "varint 300");
});

Deno.test({
  name: "ORT softmax runs its FlashAttention program, on its own device and on sigmax's",
  ignore,
  async fn() {
    if ("error" in handle) return;
    const sigmaxDevice = await getDevice();
    assert.equal(handle.device, sigmaxDevice);
    for (const device of ["ort", "shared"] as const) {
      // S = 16: where the subgroup variant (on sigmax's device) is still right.
      const shape = { batch: 1, heads: 2, seqLen: 16, headDim: 16 };
      const n = 2 * 16 * 16;
      const [q, k, v] = [0, 1, 2].map((i) => randn(n, 40 + i));
      const attn = await OrtAttention.create(handle, shape, { activation: "softmax", device }, {
        q,
        k,
        v,
      });
      try {
        assert.equal(attn.device === sigmaxDevice, device === "shared", device);
        const programs = await attn.programs();
        assert.ok(
          programs.some((p) => p.startsWith("FlashAttention")),
          `${device}: programs ${programs}`,
        );
        assert.match(ortKernel(programs), /^FlashAttention/);
        const ref = attentionReference(q, k, v, shape, { activation: "softmax" });
        assertClose(
          `ort softmax on the ${device} device`,
          await attn.output(),
          ref,
          TOL.f32Forward,
        );
      } finally {
        await attn.release();
      }
    }
  },
});

for (const activation of ["softmax", "sigmoid"] as const) {
  for (const causal of [false, true]) {
    const label = `${activation}${causal ? " causal" : ""}`;
    Deno.test({
      name: `ORT attention matches attentionReference: ${label}`,
      ignore,
      async fn() {
        if ("error" in handle) return;
        let seed = 21;
        for (const shape of SHAPES) {
          const n = shape.batch * shape.heads * shape.seqLen * shape.headDim;
          const [q, k, v] = [0, 1, 2].map((i) => randn(n, seed + i));
          seed += 10;
          const attn = await OrtAttention.create(handle, shape, { activation, causal }, {
            q,
            k,
            v,
          });
          try {
            const got = await attn.output();
            const programs = await attn.programs();
            const ref = attentionReference(q, k, v, shape, { activation, causal });
            const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
            assertClose(
              `ort ${label} [${B},${H},${S},${D}] (${ortKernel(programs)})`,
              got,
              ref,
              TOL.f32Forward,
            );
          } finally {
            await attn.release();
          }
        }
      },
    });
  }
}

Deno.test({
  name: "ORT timer returns a median, a FLOP rate and the kernel it ran",
  ignore,
  async fn() {
    if ("error" in handle) return;
    const shape = { batch: 1, heads: 2, seqLen: 32, headDim: 16 };
    const t = await timeOrtAttention(handle, shape, {
      activation: "softmax",
      causal: true,
      warmup: 1,
      reps: 3,
    });
    assert.equal(t.samples.length, 3);
    assert.ok(t.msMin <= t.msMedian && t.msMedian <= t.msMax);
    assert.equal(t.clock, "wall");
    assert.equal(t.flops, 4 * 2 * 32 * 32 * 16 * 0.5);
    assert.ok(t.gflops > 0 && Number.isFinite(t.gflops));
    assert.equal(t.device, "ort");
    // What ran: the operator, the kernel its programs amount to, the device.
    assert.match(
      t.ran,
      /^MultiHeadAttention; FlashAttention \(fused; programs: [^)]*\); ORT's own device$/,
    );
    assert.ok(t.programs!.some((p) => p.startsWith("FlashAttention")), t.programs!.join(", "));
    await assert.rejects(
      () =>
        OrtAttention.create(handle, shape, { activation: "softmax" }, {
          q: new Float32Array(3),
          k: new Float32Array(3),
          v: new Float32Array(3),
        }),
      /inputs\.q: expected 1024 elements/,
    );
  },
});
