import assert from "node:assert/strict";
import {
  attention,
  attentionBackward,
  attentionBackwardReference,
  type AttentionOptions,
  AttentionPlan,
  attentionReference,
  type AttentionShape,
} from "../mod.ts";

const SHAPE: AttentionShape = { batch: 1, heads: 2, seqLen: 5, headDim: 4 };
const N = 40;
const good = () => new Float32Array(N);

/** A device that fails the test if anything touches it: proves errors come before GPU work. */
const untouchable = new Proxy({}, {
  get(_target, key) {
    throw new Error(`the GPU device was touched (${String(key)}) before the input was checked`);
  },
}) as GPUDevice;

async function rejects(
  run: () => Promise<unknown>,
  type: typeof RangeError | typeof TypeError,
  ...mentions: string[]
) {
  await assert.rejects(run, (error: Error) => {
    assert.ok(
      error instanceof type,
      `expected ${type.name}, got ${error.constructor.name}: ${error.message}`,
    );
    for (const m of mentions) {
      assert.match(error.message, new RegExp(m.replace(/[.[\]()+*]/g, "\\$&")));
    }
    return true;
  });
}

Deno.test("attention() rejects tensors whose length does not match the shape, naming the argument", async () => {
  for (const name of ["q", "k", "v"] as const) {
    const t = { q: good(), k: good(), v: good() };
    t[name] = new Float32Array(N - 1);
    const options = { activation: "softmax", device: untouchable } as const;
    await rejects(
      () => attention(t.q, t.k, t.v, SHAPE, options),
      RangeError,
      `${name}.length`,
      "40",
      "39",
    );
    assert.throws(() => attentionReference(t.q, t.k, t.v, SHAPE, options), RangeError);
  }
  const options = { activation: "sigmoid", device: untouchable } as const;
  await rejects(
    () => attention([1, 2] as unknown as Float32Array, good(), good(), SHAPE, options),
    TypeError,
    "q must be a Float32Array",
  );
});

Deno.test("attention() rejects dimensions that are not positive integers, and headDim over 256", async () => {
  for (const dim of ["batch", "heads", "seqLen", "headDim"] as const) {
    for (const bad of [0, -1, 1.5, NaN, "4"]) {
      const shape = { ...SHAPE, [dim]: bad } as AttentionShape;
      await rejects(
        () =>
          attention(good(), good(), good(), shape, { activation: "softmax", device: untouchable }),
        RangeError,
        `shape.${dim} must be a positive integer`,
      );
    }
  }
  const wide = { batch: 1, heads: 1, seqLen: 1, headDim: 257 };
  const x = new Float32Array(257);
  await rejects(
    () => attention(x, x, x, wide, { activation: "sigmoid", device: untouchable }),
    RangeError,
    "shape.headDim must be at most 256",
    "257",
  );
});

Deno.test("attention() rejects bad options with the expected values", async () => {
  const cases: [
    Record<string, unknown>,
    typeof RangeError | typeof TypeError,
    string,
  ][] = [
    [{ activation: "relu" }, TypeError, 'options.activation must be "softmax" or "sigmoid"'],
    [{ activation: "softmax", causal: "yes" }, TypeError, "options.causal must be a boolean"],
    [
      { activation: "softmax", scale: Infinity },
      RangeError,
      "options.scale must be a finite number",
    ],
    [
      { activation: "sigmoid", sigmoidBias: NaN },
      RangeError,
      "options.sigmoidBias must be a finite number",
    ],
    [
      { activation: "softmax", precision: "f64" },
      TypeError,
      'options.precision must be "f32" or "f16"',
    ],
    [
      { activation: "softmax", implementation: "naive" },
      TypeError,
      'options.implementation must be "fused" or "unfused"',
    ],
    [
      { activation: "softmax", tiling: "cpu" },
      TypeError,
      'options.tiling must be "auto", "gpu" or "software", got "cpu"',
    ],
  ];
  for (const [options, type, message] of cases) {
    await rejects(
      () =>
        attention(
          good(),
          good(),
          good(),
          SHAPE,
          { ...options, device: untouchable } as AttentionOptions,
        ),
      type,
      message,
    );
  }
});

Deno.test("attention() rejects f16 on a device without shader-f16, with no silent fallback", async () => {
  const adapter = await navigator.gpu.requestAdapter();
  assert.ok(adapter, "a WebGPU adapter");
  const device = await adapter.requestDevice({ label: "test.no-f16" }); // no features requested
  try {
    assert.equal(device.features.has("shader-f16"), false);
    await rejects(
      () =>
        attention(good(), good(), good(), SHAPE, {
          activation: "softmax",
          precision: "f16",
          device,
        }),
      RangeError,
      'options.precision "f16"',
      "shader-f16",
    );
  } finally {
    device.destroy();
  }
});

Deno.test("attention() rejects an unfused S×S buffer over the device's limit, pointing to fused", async () => {
  const adapter = await navigator.gpu.requestAdapter();
  const device = await adapter!.requestDevice({ label: "test.limits" });
  try {
    const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    const seqLen = Math.ceil(Math.sqrt(limit / 4)) + 1; // one head of scores no longer fits
    const shape = { batch: 1, heads: 1, seqLen, headDim: 1 };
    await rejects(
      () =>
        AttentionPlan.create(shape, { activation: "softmax", implementation: "unfused", device }),
      RangeError,
      "maxStorageBufferBindingSize",
      '"fused" implementation needs O(S·D)',
    );
    // The fused implementation takes the same shape.
    const plan = await AttentionPlan.create(shape, { activation: "softmax", device });
    plan.destroy();
  } finally {
    device.destroy();
  }
});

Deno.test("attention() rejects f16 inputs outside f16's range instead of storing Inf", async () => {
  const q = good();
  q[7] = 70000;
  await rejects(
    () =>
      attention(q, good(), good(), SHAPE, {
        activation: "softmax",
        precision: "f16",
        device: untouchable,
      }),
    RangeError,
    "q[7] = 70000 does not fit f16",
  );
});

Deno.test("AttentionPlan.encodeForward() rejects buffers smaller than the shape", async () => {
  const plan = await AttentionPlan.create(SHAPE, { activation: "softmax" });
  const { device } = plan;
  const usage = GPUBufferUsage.STORAGE;
  const full = () => device.createBuffer({ size: plan.tensorBytes, usage });
  const small = device.createBuffer({ size: plan.tensorBytes - 4, usage });
  const buffers = { q: full(), k: full(), v: full(), out: small };
  try {
    assert.throws(
      () => plan.encodeForward(device.createCommandEncoder(), buffers),
      (error: Error) =>
        error instanceof RangeError &&
        /buffers\.out must hold at least 160 bytes/.test(error.message),
    );
    const lse = device.createBuffer({ size: 4, usage });
    assert.throws(
      () => plan.encodeForward(device.createCommandEncoder(), { ...buffers, out: full(), lse }),
      (error: Error) =>
        error instanceof RangeError &&
        /buffers\.lse must hold at least 40 bytes/.test(error.message),
    );
  } finally {
    plan.destroy();
  }
});

Deno.test("attentionBackward() rejects bad tensors and options before any GPU work", async () => {
  for (const name of ["q", "k", "v", "dOut"] as const) {
    const t = { q: good(), k: good(), v: good(), dOut: good() };
    t[name] = new Float32Array(N + 1);
    const options = { activation: "sigmoid", device: untouchable } as const;
    await rejects(
      () => attentionBackward(t.q, t.k, t.v, t.dOut, SHAPE, options),
      RangeError,
      `${name}.length must be 40`,
      "41",
    );
    assert.throws(
      () => attentionBackwardReference(t.q, t.k, t.v, t.dOut, SHAPE, options),
      RangeError,
    );
  }
  await rejects(
    () =>
      attentionBackward(good(), good(), good(), good(), { ...SHAPE, seqLen: 0 }, {
        activation: "softmax",
        device: untouchable,
      }),
    RangeError,
    "shape.seqLen must be a positive integer",
  );
  await rejects(
    () =>
      attentionBackward(good(), good(), good(), good(), SHAPE, {
        activation: "sigmoid",
        tiling: "GPU",
        device: untouchable,
      } as unknown as AttentionOptions),
    TypeError,
    "options.tiling must be",
  );
  await rejects(
    () =>
      attentionBackward(good(), good(), good(), good(), SHAPE, {
        activation: "tanh",
        device: untouchable,
      } as unknown as AttentionOptions),
    TypeError,
    "options.activation",
  );
  const dOut = good();
  dOut[3] = -1e5;
  await rejects(
    () =>
      attentionBackward(good(), good(), good(), dOut, SHAPE, {
        activation: "softmax",
        precision: "f16",
        device: untouchable,
      }),
    RangeError,
    "dOut[3] = -100000 does not fit f16",
  );
});

Deno.test("attentionBackward() rejects f16 on a device without shader-f16", async () => {
  const adapter = await navigator.gpu.requestAdapter();
  const device = await adapter!.requestDevice({ label: "test.no-f16.backward" });
  try {
    await rejects(
      () =>
        attentionBackward(good(), good(), good(), good(), SHAPE, {
          activation: "sigmoid",
          precision: "f16",
          device,
        }),
      RangeError,
      "shader-f16",
    );
  } finally {
    device.destroy();
  }
});

Deno.test("AttentionPlan.encodeBackward() rejects a forward-only plan, a missing lse and small buffers", async () => {
  const forwardOnly = await AttentionPlan.create(SHAPE, { activation: "sigmoid" });
  const plan = await AttentionPlan.create(SHAPE, { activation: "softmax" }, { backward: true });
  const { device } = plan;
  const usage = GPUBufferUsage.STORAGE;
  const full = () => device.createBuffer({ size: plan.tensorBytes, usage });
  const buffers = {
    q: full(),
    k: full(),
    v: full(),
    out: full(),
    dOut: full(),
    dq: full(),
    dk: full(),
    dv: full(),
  };
  const lse = device.createBuffer({ size: 40, usage });
  const fails = (run: () => void, type: typeof Error, message: RegExp) =>
    assert.throws(run, (e: Error) => e instanceof type && message.test(e.message));
  try {
    assert.equal(forwardOnly.hasBackward, false);
    fails(
      () => forwardOnly.encodeBackward(device.createCommandEncoder(), buffers),
      TypeError,
      /created without the backward pass.*\{ backward: true \}/,
    );
    fails(
      () => plan.encodeBackward(device.createCommandEncoder(), buffers),
      TypeError,
      /buffers\.lse is required by the softmax backward pass/,
    );
    for (const name of ["dOut", "dq", "dk", "dv"] as const) {
      const small = device.createBuffer({ size: plan.tensorBytes - 4, usage });
      fails(
        () =>
          plan.encodeBackward(device.createCommandEncoder(), { ...buffers, lse, [name]: small }),
        RangeError,
        new RegExp(`buffers\\.${name} must hold at least 160 bytes`),
      );
    }
    fails(
      () =>
        plan.encodeBackward(device.createCommandEncoder(), {
          ...buffers,
          lse: device.createBuffer({ size: 16, usage }),
        }),
      RangeError,
      /buffers\.lse must hold at least 40 bytes/,
    );
    // A written buffer passed twice would make WebGPU drop the dispatch: refused up front.
    fails(
      () => plan.encodeBackward(device.createCommandEncoder(), { ...buffers, lse, dk: buffers.q }),
      RangeError,
      /buffers\.dk and buffers\.q are the same GPUBuffer/,
    );
    fails(
      () => plan.encodeBackward(device.createCommandEncoder(), { ...buffers, lse, dv: buffers.dq }),
      RangeError,
      /buffers\.dq and buffers\.dv are the same GPUBuffer/,
    );
    fails(
      () => plan.encodeForward(device.createCommandEncoder(), { ...buffers, out: buffers.v }),
      RangeError,
      /buffers\.out and buffers\.v are the same GPUBuffer/,
    );
    await assert.rejects(
      () =>
        AttentionPlan.create(SHAPE, { activation: "softmax" }, {
          backward: "yes",
        } as unknown as { backward: boolean }),
      TypeError,
    );
  } finally {
    plan.destroy();
    forwardOnly.destroy();
  }
});
