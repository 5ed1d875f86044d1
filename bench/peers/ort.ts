/**
 * ONNX Runtime Web (`onnxruntime-web` 1.30.0 from npm) on its WebGPU
 * execution provider, in the same Deno process and on the same adapter as
 * sigmax: the peer that has fused attention kernels in WGSL (ORT's
 * FlashAttention-2 style `FlashAttention` program), forward only.
 *
 * How it is loaded. The package's `npm:onnxruntime-web` entry resolves, under
 * Deno (which matches the `node` export condition), to `ort.node.min.mjs`: a
 * build without WebGPU. The `onnxruntime-web/webgpu` subpath has no `node`
 * condition and resolves to `dist/ort.webgpu.bundle.min.mjs`, the build with
 * ORT's native (C++, compiled to wasm) WebGPU execution provider; that is the
 * one {@linkcode loadOrt} imports, at run time (a non-literal `import()`, so
 * commands that never use the peer never install it).
 *
 * Which device. ORT takes a `GPUDevice` in the execution provider's options
 * (`{ name: "webgpu", device }`; `ort.env.webgpu.device` is only an output
 * there), and sigmax's {@linkcode getDevice} device can be passed
 * (`device: "shared"`). That device has the `subgroups` feature, so ORT then
 * emits `enable subgroups;` at the top of its shaders, which Deno 2.9's WGSL
 * front end (Naga) rejects although it compiles the subgroup built-ins
 * without the directive (sigmax's kernels leave it out for that reason); the
 * shim {@linkcode loadOrt} installs on each device ORT uses comments out a
 * leading `enable subgroups;` (and changes nothing else). With it, ORT's
 * subgroup FlashAttention variant runs on sigmax's device, but on lavapipe
 * (subgroup size 8) it returns wrong results once S ≥ 32 (max error about
 * 0.1 against the f64 reference at S = 32…256, D = 16 and 64; right at
 * S ≤ 16), and ORT's generic ops (MatMul, Transpose) fail to compile there
 * (Naga refuses subgroup built-ins on a multi-dimensional workgroup). So the
 * default, and every figure the benches report, is `device: "ort"`: a device
 * ORT requests itself on the same adapter (no `subgroups`), where its
 * FlashAttention variant without subgroup shuffles matches the reference.
 * Both devices share the adapter and the process, not the queue; every
 * figure records which device it ran on.
 *
 * Which kernel ran. The shim also remembers each shader module's label (ORT
 * labels them with its program names: `FlashAttention`, `CopyKVCache`, or the
 * unfused fallback's `AttentionProbs`, `InPlaceSoftmax`, `VxAttentionScore`),
 * and {@linkcode OrtAttention.programs} records the programs that one run
 * dispatches (it watches `setPipeline` on the command encoders made during
 * that run). Every timing carries that list.
 *
 * The graph. A one-node ONNX model built in memory (a hand-written protobuf
 * encoder below, so no model file and no protobuf library): `com.microsoft`
 * `MultiHeadAttention` with inputs query, key, value `[B,S,H·D]` (ORT's BSNH
 * layout; the timers upload sigmax's `[B,H,S,D]` data transposed, outside the
 * timed region), attributes `num_heads`, `scale` and `unidirectional`
 * (causal), and outputs `output`, `present_key`, `present_value` (older ORT
 * sources run FlashAttention only when the present K/V outputs exist; 1.30
 * ran the same two programs, `CopyKVCache` then `FlashAttention`, with only
 * `output` declared, so they cost nothing extra here).
 *
 * Sigmoid attention: ORT has no sigmoid attention operator. The peer offers
 * it composed from standard ONNX ops (`Transpose`, `MatMul`, `Mul`, `Add`,
 * `Sigmoid`, a causal 0/1 mask by `Mul`, `MatMul`), which ORT runs unfused;
 * such figures are labelled `"unfused composition"`.
 *
 * @module
 */

import type * as OrtTypes from "npm:onnxruntime-web@1.30.0/webgpu";
import { getDevice } from "../../kernels/device.ts";
import type { AttentionShape } from "../../kernels/attention_options.ts";
import { seededInputs } from "../../kernels/attention_timing.ts";
import { attentionPassFlops, timeWall, type WallTiming } from "./timing.ts";

/** The `onnxruntime-web/webgpu` namespace. */
export type Ort = typeof OrtTypes;

/** The npm specifier {@linkcode loadOrt} imports (pinned, as deno.lock records it). */
export const ORT_PACKAGE = "npm:onnxruntime-web@1.30.0/webgpu";

/** What {@linkcode loadOrt} returns when ORT's WebGPU execution provider is up. */
export interface OrtHandle {
  /** The `onnxruntime-web/webgpu` namespace. */
  ort: Ort;
  /** ORT's version (`ort.env.versions.web`). */
  version: string;
  /** sigmax's `getDevice()` device (what `device: "shared"` runs on). */
  device: GPUDevice;
  /** The adapter's description. */
  adapter: string;
  /** The build loaded and the shim installed, in words (for reports). */
  build: string;
}

/** Shader module → its label, and pipeline → its module's label, on the patched device. */
const _moduleLabel = new WeakMap<GPUShaderModule, string>();
const _pipelineLabel = new WeakMap<GPUComputePipeline, string>();
/** While set, every `setPipeline` on a compute pass of the patched device appends here. */
let _recording: string[] | undefined;
const _patched = new WeakSet<GPUDevice>();

/**
 * Installs the shim described in the module doc on `device` (once): strip a
 * leading `enable subgroups;`, remember shader and pipeline labels, and,
 * while {@linkcode _recording} is set, record the pipelines compute passes
 * set.
 */
function _patchDevice(device: GPUDevice): void {
  if (_patched.has(device)) return;
  _patched.add(device);
  const d = device as GPUDevice & Record<string, unknown>;
  const createShaderModule = device.createShaderModule.bind(device);
  d.createShaderModule = (desc: GPUShaderModuleDescriptor) => {
    const code = desc.code.startsWith("enable subgroups;")
      ? "// enable subgroups; (Naga takes the built-ins without it)" +
        desc.code.slice("enable subgroups;".length)
      : desc.code;
    const module = createShaderModule({ ...desc, code });
    _moduleLabel.set(module, desc.label ?? "(unlabelled)");
    return module;
  };
  const label = (desc: GPUComputePipelineDescriptor) =>
    desc.label || _moduleLabel.get(desc.compute.module) || "(unlabelled)";
  const createPipeline = device.createComputePipeline.bind(device);
  d.createComputePipeline = (desc: GPUComputePipelineDescriptor) => {
    const p = createPipeline(desc);
    _pipelineLabel.set(p, label(desc));
    return p;
  };
  const createPipelineAsync = device.createComputePipelineAsync.bind(device);
  d.createComputePipelineAsync = async (desc: GPUComputePipelineDescriptor) => {
    const p = await createPipelineAsync(desc);
    _pipelineLabel.set(p, label(desc));
    return p;
  };
  const createCommandEncoder = device.createCommandEncoder.bind(device);
  d.createCommandEncoder = (desc?: GPUCommandEncoderDescriptor) => {
    const encoder = createCommandEncoder(desc);
    if (!_recording) return encoder;
    const begin = encoder.beginComputePass.bind(encoder);
    (encoder as GPUCommandEncoder & Record<string, unknown>).beginComputePass = (
      passDesc?: GPUComputePassDescriptor,
    ) => {
      const pass = begin(passDesc);
      const setPipeline = pass.setPipeline.bind(pass);
      (pass as GPUComputePassEncoder & Record<string, unknown>).setPipeline = (
        p: GPUComputePipeline,
      ) => {
        _recording?.push(_pipelineLabel.get(p) ?? "(unknown)");
        setPipeline(p);
      };
      return pass;
    };
    return encoder;
  };
}

let _loaded: Promise<OrtHandle | { error: string }> | undefined;

/**
 * Loads ORT's WebGPU build once per process (later calls get the cached
 * result). Its runs go to a WebGPU device ORT creates itself on the same
 * adapter (on sigmax's device ORT's subgroup kernels give wrong answers on
 * lavapipe; `handle.device` is sigmax's, kept for `device: "shared"`). Returns a handle, or `{ error }` with
 * the reason it cannot run here (the package failed to load, no WebGPU, or a
 * smoke-test attention call failed). Never falls back to ORT's wasm CPU
 * execution provider.
 */
export function loadOrt(): Promise<OrtHandle | { error: string }> {
  _loaded ??= _load().catch((e: unknown) => ({
    error: `ONNX Runtime Web's WebGPU execution provider unavailable: ${
      e instanceof Error ? e.message : String(e)
    }`,
  }));
  return _loaded;
}

async function _load(): Promise<OrtHandle> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    throw new Error("navigator.gpu is missing: this runtime has no WebGPU");
  }
  const device = await getDevice();
  _patchDevice(device);
  const ort = await _importAtRuntime(ORT_PACKAGE) as Ort;
  ort.env.logLevel = "warning";
  // One wasm thread: ORT's CPU side only schedules here, and worker threads
  // would compete with the GPU's software rasteriser for the machine's cores.
  ort.env.wasm.numThreads = 1;
  const handle: OrtHandle = {
    ort,
    version: ort.env.versions.web ?? "(unknown)",
    device,
    adapter: (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo?.description ||
      "(no description)",
    build: "onnxruntime-web/webgpu (dist/ort.webgpu.bundle.min.mjs, native WebGPU EP); " +
      "shim: a leading `enable subgroups;` commented out for Naga",
  };
  // Smoke test: one head, two positions, head dim 4, against a hand
  // computation (each row's softmax over its two scores).
  const q = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0]);
  const k = new Float32Array([2, 0, 0, 0, 0, 2, 0, 0]);
  const v = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const attn = await OrtAttention.create(
    handle,
    { batch: 1, heads: 1, seqLen: 2, headDim: 4 },
    { activation: "softmax" },
    { q, k, v },
  );
  try {
    const out = await attn.output();
    // Row 0 scores (1/√4)·[2, 0] = [1, 0]; row 1 scores [0, 1].
    const w = 1 / (1 + Math.exp(-1)); // the larger weight
    const want = [0, 1, 2, 3].map((j) => w * v[j] + (1 - w) * v[4 + j]);
    want.push(...[0, 1, 2, 3].map((j) => (1 - w) * v[j] + w * v[4 + j]));
    const err = Math.max(...want.map((x, i) => Math.abs(x - out[i])));
    if (!(err < 1e-4)) {
      throw new Error(`smoke test: output ${[...out]} differs from ${want} (max error ${err})`);
    }
  } finally {
    await attn.release();
  }
  return handle;
}

// ---------------------------------------------------------------------------
// A minimal ONNX (protobuf) writer: only the fields the graphs below use.

class _Proto {
  bytes: number[] = [];
  varint(n: number): void {
    while (n > 127) {
      this.bytes.push((n & 127) | 128);
      n = Math.floor(n / 128);
    }
    this.bytes.push(n);
  }
  int(field: number, n: number): void {
    this.varint(field * 8);
    this.varint(n);
  }
  float(field: number, x: number): void {
    this.varint(field * 8 + 5);
    this.bytes.push(...new Uint8Array(new Float32Array([x]).buffer));
  }
  raw(field: number, data: Uint8Array | number[]): void {
    this.varint(field * 8 + 2);
    this.varint(data.length);
    for (const b of data) this.bytes.push(b);
  }
  str(field: number, s: string): void {
    this.raw(field, new TextEncoder().encode(s));
  }
  msg(field: number, build: (m: _Proto) => void): void {
    const m = new _Proto();
    build(m);
    this.raw(field, m.bytes);
  }
}

/** An ONNX node: op, domain, inputs, outputs, int/float attributes. */
interface _Node {
  op: string;
  domain?: string;
  inputs: string[];
  outputs: string[];
  ints?: Record<string, number | number[]>;
  floats?: Record<string, number>;
}

/**
 * Serialises an ONNX ModelProto (IR 8; opsets ai.onnx 17 and com.microsoft 1)
 * with f32 inputs and outputs of fixed shape and f32 scalar initializers.
 */
export function onnxModel(graph: {
  nodes: _Node[];
  inputs: [string, number[]][];
  outputs: [string, number[]][];
  scalars?: Record<string, number>;
}): Uint8Array {
  const FLOAT = 1, ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_INTS = 7;
  const valueInfo = (g: _Proto, field: number, [name, dims]: [string, number[]]) =>
    g.msg(field, (v) => {
      v.str(1, name);
      v.msg(2, (t) =>
        t.msg(1, (tensor) => {
          tensor.int(1, FLOAT);
          tensor.msg(2, (shape) => {
            for (const d of dims) shape.msg(1, (dim) => dim.int(1, d));
          });
        }));
    });
  const model = new _Proto();
  model.int(1, 8); // ir_version
  model.str(2, "sigmax bench/peers/ort.ts");
  model.msg(8, (o) => (o.str(1, ""), o.int(2, 17)));
  model.msg(8, (o) => (o.str(1, "com.microsoft"), o.int(2, 1)));
  model.msg(7, (g) => {
    for (const [i, n] of graph.nodes.entries()) {
      g.msg(1, (node) => {
        for (const x of n.inputs) node.str(1, x);
        for (const x of n.outputs) node.str(2, x);
        node.str(3, `${n.op.toLowerCase()}${i}`);
        node.str(4, n.op);
        for (const [name, value] of Object.entries(n.ints ?? {})) {
          node.msg(5, (a) => {
            a.str(1, name);
            if (Array.isArray(value)) {
              for (const v of value) a.int(8, v);
              a.int(20, ATTR_INTS);
            } else {
              a.int(3, value);
              a.int(20, ATTR_INT);
            }
          });
        }
        for (const [name, value] of Object.entries(n.floats ?? {})) {
          node.msg(5, (a) => (a.str(1, name), a.float(2, value), a.int(20, ATTR_FLOAT)));
        }
        if (n.domain) node.str(7, n.domain);
      });
    }
    g.str(2, "sigmax_peer");
    for (const [name, value] of Object.entries(graph.scalars ?? {})) {
      g.msg(5, (t) => {
        t.int(2, FLOAT);
        t.str(8, name);
        t.raw(9, new Uint8Array(new Float32Array([value]).buffer));
      });
    }
    for (const x of graph.inputs) valueInfo(g, 11, x);
    for (const x of graph.outputs) valueInfo(g, 12, x);
  });
  return new Uint8Array(model.bytes);
}

// ---------------------------------------------------------------------------
// Attention

/** Options of the ORT peer (sigmax's defaults for scale and sigmoid bias). */
export interface OrtAttentionOptions {
  /**
   * `"softmax"`: `com.microsoft` MultiHeadAttention (ORT's fused kernels).
   * `"sigmoid"`: composed from ONNX ops (unfused; bias `−ln S`).
   */
  activation: "softmax" | "sigmoid";
  /** Mask keys after the query. Default false. */
  causal?: boolean;
  /**
   * Where softmax runs: `"ort"` (default), a device ORT requests itself on
   * the same adapter (no `subgroups`: its FlashAttention variant without
   * subgroup shuffles); `"shared"`, sigmax's device (ORT's subgroup variant,
   * which gave wrong results on lavapipe, see the module doc). The sigmoid
   * composition always runs on ORT's own device.
   */
  device?: "ort" | "shared";
}

/** How the peer computed: ORT's operator, or a composition of ONNX ops. */
export type OrtMethod = "MultiHeadAttention" | "unfused composition";

/** The graph for `shape` and `options`: the model bytes and its tensor layout. */
function _attentionGraph(
  shape: AttentionShape,
  options: OrtAttentionOptions,
): { model: Uint8Array; layout: "BSNH" | "BNSH"; method: OrtMethod; mask: boolean } {
  const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
  const scale = 1 / Math.sqrt(D);
  if (options.activation === "softmax") {
    const bsnh = [B, S, H * D], bnsh = [B, H, S, D];
    return {
      model: onnxModel({
        nodes: [{
          op: "MultiHeadAttention",
          domain: "com.microsoft",
          inputs: ["q", "k", "v"],
          outputs: ["out", "present_key", "present_value"],
          ints: { num_heads: H, unidirectional: options.causal ? 1 : 0 },
          floats: { scale },
        }],
        inputs: [["q", bsnh], ["k", bsnh], ["v", bsnh]],
        outputs: [["out", bsnh], ["present_key", bnsh], ["present_value", bnsh]],
      }),
      layout: "BSNH",
      method: "MultiHeadAttention",
      mask: false,
    };
  }
  const bnsh = [B, H, S, D];
  const nodes: _Node[] = [
    { op: "Transpose", inputs: ["k"], outputs: ["kt"], ints: { perm: [0, 1, 3, 2] } },
    { op: "MatMul", inputs: ["q", "kt"], outputs: ["qk"] },
    { op: "Mul", inputs: ["qk", "scale"], outputs: ["s"] },
    { op: "Add", inputs: ["s", "bias"], outputs: ["sb"] },
    { op: "Sigmoid", inputs: ["sb"], outputs: [options.causal ? "p0" : "p"] },
  ];
  if (options.causal) nodes.push({ op: "Mul", inputs: ["p0", "mask"], outputs: ["p"] });
  nodes.push({ op: "MatMul", inputs: ["p", "v"], outputs: ["out"] });
  return {
    model: onnxModel({
      nodes,
      inputs: [
        ["q", bnsh],
        ["k", bnsh],
        ["v", bnsh],
        ...(options.causal
          ? [["mask", [S, S]]] as [
            string,
            number[],
          ][]
          : []),
      ],
      outputs: [["out", bnsh]],
      scalars: { scale, bias: -Math.log(S) },
    }),
    layout: "BNSH",
    method: "unfused composition",
    mask: !!options.causal,
  };
}

/** `[B,H,S,D]` → `[B,S,H,D]` (or back, with `inverse`). */
export function transposeHeads(
  x: Float32Array,
  shape: AttentionShape,
  inverse = false,
): Float32Array {
  const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let s = 0; s < S; s++) {
        const bhsd = ((b * H + h) * S + s) * D, bshd = ((b * S + s) * H + h) * D;
        const [from, to] = inverse ? [bshd, bhsd] : [bhsd, bshd];
        out.set(x.subarray(from, from + D), to);
      }
    }
  }
  return out;
}

/**
 * One ORT attention session with its inputs resident on the GPU: build it
 * with {@linkcode OrtAttention.create}, time {@linkcode OrtAttention.run},
 * read {@linkcode OrtAttention.output}, then {@linkcode OrtAttention.release}.
 */
export class OrtAttention {
  private constructor(
    /** The handle the session runs on. */
    readonly handle: OrtHandle,
    /** Shape `[B,H,S,D]` of q, k, v and the output (in sigmax's layout). */
    readonly shape: AttentionShape,
    /** The options. */
    readonly options: OrtAttentionOptions,
    /** ORT's operator or a composition of ONNX ops. */
    readonly method: OrtMethod,
    private session: OrtTypes.InferenceSession,
    private feeds: Record<string, OrtTypes.Tensor>,
    private buffers: GPUBuffer[],
    private layout: "BSNH" | "BNSH",
    /** The device the session runs on: ORT's own, or sigmax's (`device: "shared"`). */
    readonly device: GPUDevice,
  ) {}

  /**
   * Builds the session and uploads q, k, v (default: sigmax's `seededInputs`
   * with seeds 1–3, the data its benches use), in sigmax's `[B,H,S,D]` layout.
   */
  static async create(
    handle: OrtHandle,
    shape: AttentionShape,
    options: OrtAttentionOptions,
    inputs?: { q: Float32Array; k: Float32Array; v: Float32Array },
  ): Promise<OrtAttention> {
    const { ort, device } = handle;
    const { batch: B, heads: H, seqLen: S, headDim: D } = shape;
    const n = B * H * S * D;
    for (const [name, x] of Object.entries(inputs ?? {})) {
      if (x.length !== n) {
        throw new RangeError(`inputs.${name}: expected ${n} elements for [${B},${H},${S},${D}]`);
      }
    }
    const { model, layout, method, mask } = _attentionGraph(shape, options);
    // Which device: see the module doc (the composition's generic ops do
    // not compile on sigmax's device).
    const ownDevice = method === "unfused composition" || options.device !== "shared";
    const session = await ort.InferenceSession.create(model, {
      executionProviders: [
        ownDevice
          ? "webgpu"
          : { name: "webgpu", device } as OrtTypes.InferenceSession.WebGpuExecutionProviderOption,
      ],
      preferredOutputLocation: "gpu-buffer",
      graphOptimizationLevel: "all",
    });
    const runDevice = ownDevice ? await ort.env.webgpu.device as GPUDevice : device;
    if (ownDevice && runDevice === device) {
      throw new Error("expected a device of ORT's own, got sigmax's");
    }
    _patchDevice(runDevice); // to see which programs run there too
    const data = inputs ?? { q: seededInputs(n, 1), k: seededInputs(n, 2), v: seededInputs(n, 3) };
    const dims = layout === "BSNH" ? [B, S, H * D] : [B, H, S, D];
    const buffers: GPUBuffer[] = [];
    const upload = (x: Float32Array, tensorDims: number[]) => {
      const buffer = runDevice.createBuffer({
        label: "ort.peer.input",
        size: x.byteLength,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      runDevice.queue.writeBuffer(buffer, 0, x as Float32Array<ArrayBuffer>);
      buffers.push(buffer);
      return ort.Tensor.fromGpuBuffer(buffer, { dataType: "float32", dims: tensorDims });
    };
    const feeds: Record<string, OrtTypes.Tensor> = {};
    for (const name of ["q", "k", "v"] as const) {
      const x = layout === "BSNH" ? transposeHeads(data[name], shape) : data[name];
      feeds[name] = upload(x, dims);
    }
    if (mask) {
      const m = new Float32Array(S * S);
      for (let i = 0; i < S; i++) m.fill(1, i * S, i * S + i + 1);
      feeds.mask = upload(m, [S, S]);
    }
    return new OrtAttention(
      handle,
      shape,
      options,
      method,
      session,
      feeds,
      buffers,
      layout,
      runDevice,
    );
  }

  /** One run, outputs left on the GPU and released; resolves when the GPU is done. */
  private async _runOnce(): Promise<void> {
    const results = await this.session.run(this.feeds);
    await this.device.queue.onSubmittedWorkDone();
    for (const t of Object.values(results)) t.dispose();
  }

  /**
   * Times one call on the wall clock: from `session.run` to the device's
   * `onSubmittedWorkDone()` (the output stays on the GPU), in ms.
   */
  async run(): Promise<number> {
    const t0 = performance.now();
    await this._runOnce();
    return performance.now() - t0;
  }

  /** The ORT programs (shader labels) one run dispatches, in order. */
  async programs(): Promise<string[]> {
    const seen: string[] = [];
    _recording = seen;
    try {
      await this._runOnce();
    } finally {
      _recording = undefined;
    }
    return seen;
  }

  /**
   * What one run ran, in words, for reports: the operator (or the unfused
   * composition), the kernel its programs amount to ({@linkcode ortKernel})
   * and the device, e.g. `MultiHeadAttention; FlashAttention (fused;
   * programs: CopyKVCache, FlashAttention); ORT's own device`; with the
   * programs.
   */
  async describe(): Promise<{ ran: string; programs: string[] }> {
    const programs = await this.programs();
    const device = this.device === this.handle.device ? "sigmax's device" : "ORT's own device";
    return { ran: `${this.method}; ${ortKernel(programs)}; ${device}`, programs };
  }

  /** Runs once and reads the output back, in sigmax's `[B,H,S,D]` layout. */
  async output(): Promise<Float32Array> {
    const results = await this.session.run(this.feeds);
    try {
      const got = await results.out.getData() as Float32Array;
      return this.layout === "BSNH" ? transposeHeads(got, this.shape, true) : got;
    } finally {
      for (const t of Object.values(results)) t.dispose();
    }
  }

  /** Frees the session and the input buffers. */
  async release(): Promise<void> {
    await this.session.release();
    for (const b of this.buffers) b.destroy();
  }
}

/** Which fused kernel a list of ORT programs amounts to. */
export function ortKernel(programs: string[]): string {
  const names = [...new Set(programs)];
  if (names.some((p) => p.startsWith("FlashAttention"))) {
    return `FlashAttention (fused; programs: ${names.join(", ")})`;
  }
  return `unfused (programs: ${names.join(", ")})`;
}

/** Options of {@linkcode timeOrtAttention}. */
export interface OrtAttentionTimingOptions extends OrtAttentionOptions {
  /** Untimed calls first (the first compiles ORT's pipelines). Default 1. */
  warmup?: number;
  /** Timed calls, at least 1. Default 5. */
  reps?: number;
}

/**
 * Times ORT forward attention on `[B,H,S,D]` (sigmax's `seededInputs`):
 * `warmup` untimed calls, one call that records the programs dispatched
 * (see {@linkcode OrtAttention.describe}), then `reps` timed calls (see
 * {@linkcode OrtAttention.run}). FLOPs: `4·B·H·S²·D`, halved for causal.
 */
export async function timeOrtAttention(
  handle: OrtHandle,
  shape: AttentionShape,
  options: OrtAttentionTimingOptions,
): Promise<WallTiming> {
  const attn = await OrtAttention.create(handle, shape, options);
  try {
    const warmup = Math.max(0, options.warmup ?? 1);
    for (let i = 0; i < warmup; i++) await attn.run();
    const { ran, programs } = await attn.describe();
    return await timeWall(() => attn.run(), {
      flops: attentionPassFlops(shape, !!options.causal, "forward"),
      warmup: 0,
      reps: options.reps,
      device: attn.device === handle.device ? "shared" : "ort",
      ran,
      programs,
    });
  } finally {
    await attn.release();
  }
}

// ---------------------------------------------------------------------------
// Command line

/**
 * `deno run -A bench/peers/ort.ts [S]` prints ORT's forward attention at
 * B=1 H=4 D=64 (default S=1024) for both activations, causal off and on, with
 * the kernel it ran.
 */
async function _main(args: string[]): Promise<void> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log("usage: deno run -A bench/peers/ort.ts [seqLen]   (default 1024; B=1 H=4 D=64)");
    return;
  }
  const seqLen = args[0] === undefined ? 1024 : Number(args[0]);
  if (!Number.isInteger(seqLen) || seqLen < 1) {
    throw new RangeError(`seqLen: expected a positive integer, got ${args[0]}`);
  }
  const handle = await loadOrt();
  if ("error" in handle) {
    console.error(handle.error);
    Deno.exit(1);
  }
  console.log(`ONNX Runtime Web ${handle.version}, ${handle.build}, adapter "${handle.adapter}".`);
  const shape = { batch: 1, heads: 4, seqLen, headDim: 64 };
  for (const activation of ["softmax", "sigmoid"] as const) {
    for (const causal of [false, true]) {
      const t = await timeOrtAttention(handle, shape, { activation, causal, warmup: 1, reps: 5 });
      console.log(
        `forward B=1 H=4 S=${seqLen} D=64 ${activation}${causal ? " causal" : ""}: ` +
          `${t.msMedian.toFixed(1)} ms [${t.msMin.toFixed(1)}–${t.msMax.toFixed(1)}] ` +
          `${t.gflops.toFixed(2)} GFLOP/s; ${t.ran}`,
      );
    }
  }
}

if (import.meta.main) await _main(Deno.args);

/**
 * Imports an npm package when the code that needs it runs (see the same
 * helper in bench/peers/tfjs.ts: a literal `import("npm:…")` would make every
 * command install it).
 */
// deno-lint-ignore no-explicit-any
function _importAtRuntime(specifier: string): Promise<any> {
  return import(specifier);
}
