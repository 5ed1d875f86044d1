/**
 * The whole model's hand-written backward pass against finite differences of
 * its own forward pass, for both activations and every architecture piece.
 *
 * For each parameter tensor p, a random direction u (nonzero only in p) gives
 * the directional derivative two ways: ⟨∇_p L, u⟩ from the backward pass, and
 * (L(θ + εu) − L(θ − εu)) / 2ε from two forward passes. The loss is computed
 * in f32 (absolute rounding ~1e-7 here), so with ε = 1e-3 the difference
 * quotient carries ~1e-4 of rounding noise plus O(ε²) truncation; a missing or
 * wrong term in a layer's backward pass shows up as an error of the order of
 * the derivative itself.
 */

import assert from "node:assert/strict";
import { getDevice, readFloat32 } from "../kernels/device.ts";
import { type Graph, Model, type ModelConfig, resolveModelConfig } from "../training/model.ts";
import { Rng } from "../training/rng.ts";
import type { Batch, TaskInput, TaskOutput } from "../training/tasks/task.ts";

const EPS = 1e-3;

async function loss(graph: Graph, device: GPUDevice): Promise<number> {
  const enc = device.createCommandEncoder();
  graph.encodeForward(enc);
  graph.encodeLoss(enc);
  device.queue.submit([enc.finish()]);
  return (await readFloat32(device, graph.loss.buffer, 1))[0];
}

function randomBatch(config: ModelConfig, batch: number, rng: Rng): Batch {
  const N = batch * config.seqLen;
  const data: Batch = { size: batch };
  if (config.input.kind === "tokens") {
    const vocab = config.input.vocab;
    data.tokens = Int32Array.from({ length: N }, () => rng.int(vocab));
  } else {
    data.inputs = rng.normals(N * config.input.dim);
  }
  if (config.output.kind === "regression") {
    data.targets = rng.normals(N * config.output.dim);
  } else {
    const classes = config.output.classes;
    const rows = config.output.kind === "seq-class" ? batch : N;
    // Some rows unlabelled (−1), as mqar's non-query positions are.
    data.labels = Int32Array.from(
      { length: rows },
      (_, i) => (i % 3 === 1 ? -1 : rng.int(classes)),
    );
  }
  return data;
}

async function gradcheck(
  name: string,
  partial: Partial<ModelConfig> & { input: TaskInput; output: TaskOutput; seqLen: number },
) {
  const device = await getDevice();
  const config = resolveModelConfig(partial);
  const model = Model.create(device, config, 7);
  const graph = await model.graph(2, { backward: true });
  try {
    const rng = new Rng(11);
    graph.upload(randomBatch(config, 2, rng));
    const enc = device.createCommandEncoder();
    graph.encodeForward(enc);
    graph.encodeLoss(enc);
    graph.encodeBackward(enc);
    device.queue.submit([enc.finish()]);
    const base = (await readFloat32(device, graph.loss.buffer, 1))[0];
    assert.ok(Number.isFinite(base), `${name}: loss ${base}`);
    let worst = 0;
    const failures: string[] = [];
    for (const p of model.params) {
      const grad = await readFloat32(device, p.grad.buffer, p.value.size);
      const u = rng.normals(p.value.size);
      let analytic = 0;
      for (let i = 0; i < u.length; i++) analytic += grad[i] * u[i];
      const shifted = (sign: number) => Float32Array.from(p.init, (x, i) => x + sign * EPS * u[i]);
      device.queue.writeBuffer(p.value.buffer, 0, shifted(1));
      const plus = await loss(graph, device);
      device.queue.writeBuffer(p.value.buffer, 0, shifted(-1));
      const minus = await loss(graph, device);
      device.queue.writeBuffer(p.value.buffer, 0, p.init);
      const numeric = (plus - minus) / (2 * EPS);
      const err = Math.abs(numeric - analytic);
      const tol = 5e-4 + 3e-2 * Math.abs(numeric);
      worst = Math.max(worst, err / tol);
      // GRADCHECK_VERBOSE=1 prints every tensor's check; the assertion below holds either way.
      if (Deno.env.get("GRADCHECK_VERBOSE")) {
        console.log(
          `    ${p.name.padEnd(10)} ${analytic.toExponential(4)} ${numeric.toExponential(4)} ${
            (err / tol).toFixed(2)
          }`,
        );
      }
      if (err > tol) {
        failures.push(
          `${name}: ∂L/∂${p.name}·u analytic ${analytic.toExponential(4)} vs finite difference ` +
            `${numeric.toExponential(4)} (|err| ${err.toExponential(2)} > ${tol.toExponential(2)})`,
        );
      }
    }
    assert.ok(failures.length === 0, failures.join("\n"));
    console.log(`  ${name.padEnd(44)} loss ${base.toFixed(4)}  worst err/tol ${worst.toFixed(3)}`);
  } finally {
    graph.destroy();
    model.destroy();
  }
}

const tokens: TaskInput = { kind: "tokens", vocab: 7 };

for (const attention of ["softmax", "sigmoid"] as const) {
  Deno.test(`whole-model gradients match finite differences: ${attention} transformer`, async () => {
    await gradcheck(`${attention} token-class causal`, {
      input: tokens,
      output: { kind: "token-class", classes: 5 },
      seqLen: 5,
      width: 8,
      heads: 2,
      layers: 2,
      attention,
      causal: true,
    });
    await gradcheck(`${attention} vectors→seq-class, qk-norm`, {
      input: { kind: "vectors", dim: 3 },
      output: { kind: "seq-class", classes: 4 },
      seqLen: 4,
      width: 8,
      heads: 2,
      layers: 1,
      attention,
      qkNorm: true,
    });
    await gradcheck(`${attention} tokens→regression`, {
      input: tokens,
      output: { kind: "regression", dim: 3 },
      seqLen: 3,
      width: 4,
      heads: 1,
      layers: 1,
      attention,
    });
  });

  Deno.test(`whole-model gradients match finite differences: ${attention} attention layer`, async () => {
    for (const expert of ["linear", "relu", "gelu"] as const) {
      await gradcheck(`${attention} attention layer, ${expert} experts`, {
        arch: "attention",
        input: { kind: "vectors", dim: 4 },
        output: { kind: "regression", dim: 4 },
        seqLen: 5,
        width: 4,
        heads: 2,
        headDim: 4,
        attention,
        expert,
      });
    }
  });
}
