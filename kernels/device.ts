/**
 * The WebGPU runtime every sigmax kernel shares: one adapter and device per
 * process, a description of that adapter, a pipeline cache, buffer helpers and
 * GPU timing.
 *
 * @module
 */

/**
 * What sigmax reports about the adapter it runs on.
 *
 * @example
 * ```ts
 * import { adapterReport } from "@sigmax/sigmax";
 * const { description, limits } = await adapterReport();
 * console.log(description, limits.maxStorageBufferBindingSize);
 * ```
 */
export interface AdapterReport {
  /** The adapter's own description, e.g. `"llvmpipe (LLVM 15.0.6, 256 bits)"`. */
  description: string;
  /** Vendor string as the adapter gives it (may be empty). */
  vendor: string;
  /** Architecture string as the adapter gives it (may be empty). */
  architecture: string;
  /** True for a software (CPU) adapter such as Mesa's llvmpipe or lavapipe. */
  isFallbackAdapter: boolean;
  /** Every feature the adapter offers, sorted. */
  features: string[];
  /** Whether `precision: "f16"` can run (the `shader-f16` feature). */
  shaderF16: boolean;
  /** Whether GPU timestamps can be requested (the `timestamp-query` feature). */
  timestampQuery: boolean;
  /**
   * Whether the device has the `subgroups` feature (the GPU kernels then
   * combine a row's partial dot products with subgroup shuffles). Deno may
   * leave it out of `adapter.features` and still grant it, so sigmax asks for
   * it on every adapter and falls back to a device without it.
   */
  subgroups: boolean;
  /** The adapter's smallest and largest subgroup sizes, where it reports them. */
  subgroupSizes?: { min: number; max: number };
  /** The limits the attention kernels depend on (the device's, as granted). */
  limits: {
    maxComputeWorkgroupStorageSize: number;
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupsPerDimension: number;
  };
}

interface Runtime {
  adapter: GPUAdapter;
  device: GPUDevice;
  report: AdapterReport;
}

let _runtime: Promise<Runtime> | undefined;
/** Shared devices that were reported lost, with the reason. */
const _lost = new WeakMap<GPUDevice, string>();

/** Features sigmax asks for whenever the adapter offers them. */
const _WANTED_FEATURES: GPUFeatureName[] = ["shader-f16", "timestamp-query"];

/** Limits sigmax raises to the adapter's maximum: bigger tensors (the kernels' tiles still plan for 16 KiB). */
const _WANTED_LIMITS = [
  "maxComputeWorkgroupStorageSize",
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
] as const;

/**
 * Requests the device with `features`, plus `subgroups`: Deno 2.9's WebGPU
 * grants `subgroups` on Vulkan without listing it in `adapter.features` (and
 * refuses it on OpenGL), so it is tried first and dropped if refused.
 */
async function _requestDevice(
  adapter: GPUAdapter,
  features: GPUFeatureName[],
  requiredLimits: Record<string, number>,
): Promise<GPUDevice> {
  const subgroups = "subgroups" as GPUFeatureName;
  if (!features.includes(subgroups)) {
    try {
      return await adapter.requestDevice({
        label: "sigmax.device",
        requiredFeatures: [...features, subgroups],
        requiredLimits,
      });
    } catch {
      // Not offered: fall through to a device without it.
    }
  }
  return await adapter.requestDevice({
    label: "sigmax.device",
    requiredFeatures: features,
    requiredLimits,
  });
}

/**
 * The subgroup sizes the adapter of `device` reports, or undefined (no
 * `subgroups` feature, or no sizes reported).
 */
export function subgroupSizes(device: GPUDevice): { min: number; max: number } | undefined {
  if (!device.features.has("subgroups")) return undefined;
  const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo as
    | (GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number })
    | undefined;
  const min = info?.subgroupMinSize, max = info?.subgroupMaxSize;
  if (!min || !max) return undefined;
  return { min, max };
}

async function _createRuntime(): Promise<Runtime> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    throw new Error(
      "WebGPU is not available in this runtime: run sigmax with Deno 2 " +
        "(npx -y deno@2.9.6 task demo), which ships WebGPU.",
    );
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new Error(
      "No WebGPU adapter found. sigmax needs a GPU driver or Mesa's software " +
        "rasteriser: on Debian/Ubuntu run `apt-get install -y libgl1-mesa-dri` " +
        "(OpenGL llvmpipe) or `apt-get install -y mesa-vulkan-drivers` (Vulkan " +
        "lavapipe, which also offers shader-f16). DENO_WEBGPU_BACKEND=vulkan|gl " +
        "picks a backend.",
    );
  }
  const requiredFeatures = _WANTED_FEATURES.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const name of _WANTED_LIMITS) requiredLimits[name] = adapter.limits[name];
  const info = adapter.info;
  const device = await _requestDevice(adapter, requiredFeatures, requiredLimits);
  const runtime: Runtime = {
    adapter,
    device,
    report: {
      description: info.description || "(no description)",
      vendor: info.vendor,
      architecture: info.architecture,
      isFallbackAdapter: Boolean(
        (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter,
      ),
      features: [...adapter.features].sort(),
      shaderF16: device.features.has("shader-f16"),
      timestampQuery: device.features.has("timestamp-query"),
      subgroups: device.features.has("subgroups"),
      ...(subgroupSizes(device) ? { subgroupSizes: subgroupSizes(device) } : {}),
      limits: {
        maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
        maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
        maxBufferSize: device.limits.maxBufferSize,
        maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
      },
    },
  };
  device.lost.then((lost) => {
    if (lost.reason === "destroyed") return;
    _lost.set(device, `${lost.reason}: ${lost.message}`);
    _runtime = undefined; // the next getDevice() asks for a fresh device
  });
  return runtime;
}

function _getRuntime(): Promise<Runtime> {
  if (!_runtime) {
    _runtime = _createRuntime();
    // A failed request must not be cached: a later call may succeed.
    _runtime.catch(() => (_runtime = undefined));
  }
  return _runtime;
}

/**
 * The process-wide WebGPU device sigmax uses by default. The first call picks
 * the adapter (a real GPU where there is one, otherwise Mesa's software
 * adapter) and requests `shader-f16` and `timestamp-query` where offered, with
 * the adapter's largest storage and workgroup-memory limits.
 *
 * @example
 * ```ts
 * import { getDevice } from "@sigmax/sigmax";
 * const device = await getDevice();
 * console.log(device.limits.maxComputeWorkgroupStorageSize);
 * ```
 */
export async function getDevice(): Promise<GPUDevice> {
  return (await _getRuntime()).device;
}

/**
 * Describes the adapter behind {@linkcode getDevice}: name, whether it is a
 * software adapter, its features and the limits the kernels depend on.
 *
 * @example
 * ```ts
 * import { adapterReport } from "@sigmax/sigmax";
 * const report = await adapterReport();
 * console.log(report.description, report.isFallbackAdapter, report.shaderF16);
 * ```
 */
export async function adapterReport(): Promise<AdapterReport> {
  return (await _getRuntime()).report;
}

/**
 * Whether `device` runs on a CPU (Mesa llvmpipe/lavapipe, SwiftShader, WARP):
 * `options.tiling: "auto"` picks the software tiling there and the GPU tiling
 * everywhere else; the plans also guard llvmpipe's loop budget on it.
 */
export function isSoftwareDevice(device: GPUDevice): boolean {
  const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  if (!info) return false;
  const fallback = (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  return Boolean(fallback) || /llvmpipe|lavapipe|swiftshader|warp/i.test(info.description);
}

/**
 * Throws a clear error if the device was lost (driver reset, out of memory),
 * instead of letting the caller wait on work that will never finish.
 */
export function _assertDeviceAlive(device: GPUDevice): void {
  const reason = _lost.get(device);
  if (reason !== undefined) {
    throw new Error(
      `The WebGPU device was lost (${reason}). Results computed on it are ` +
        "gone; call getDevice() again to get a fresh device and rerun.",
    );
  }
}

// ---------------------------------------------------------------------------
// Pipeline cache

/** A cached pipeline, its WGSL, and whether {@linkcode compilePipelines} has run it yet. */
interface _CachedPipeline {
  label: string;
  pipeline: Promise<GPUComputePipeline>;
  /** What built it (its WGSL included), kept until it is warm: a compile worker rebuilds it from this. */
  build?: _PipelineBuild;
  warm: boolean;
}

/** A pipeline's build, as plain data: what a compile worker needs to build the same pipeline. */
export interface _PipelineBuild {
  label: string;
  code: string;
  constants?: Record<string, number>;
  entryPoint?: string;
}

const _pipelines = new WeakMap<GPUDevice, Map<string, _CachedPipeline>>();

/** Everything needed to build one compute pipeline. */
export interface PipelineSpec {
  /** Cache key: every compile-time choice that changes the WGSL. */
  key: string;
  /** Label for the shader module and pipeline, e.g. `attention.forward.sigmoid.d64`. */
  label: string;
  /** Produces the WGSL source; called only on a cache miss. */
  code: () => string;
  /** Values for the shader's `override` constants. */
  constants?: Record<string, number>;
  entryPoint?: string;
}

/**
 * Returns the compute pipeline for `spec`, compiling it on first use. Pipelines
 * are cached per device by `spec.key` plus the override constants, so one
 * pipeline serves every runtime size.
 */
export function getPipeline(device: GPUDevice, spec: PipelineSpec): Promise<GPUComputePipeline> {
  let cache = _pipelines.get(device);
  if (!cache) _pipelines.set(device, cache = new Map());
  const key = `${spec.key}|${JSON.stringify(spec.constants ?? {})}`;
  let entry = cache.get(key);
  if (!entry) {
    const code = spec.code();
    const build = {
      label: spec.label,
      code,
      constants: spec.constants,
      entryPoint: spec.entryPoint,
    };
    const built: _CachedPipeline = {
      label: spec.label,
      build,
      pipeline: _compile(device, build),
      warm: false,
    };
    cache.set(key, entry = built);
    built.pipeline.catch(() => cache.delete(key));
  }
  return entry.pipeline;
}

/** Progress of {@linkcode compilePipelines}: after each pipeline it ran. */
export interface CompileProgress {
  /** Pipelines run so far, this one included. */
  done: number;
  /** Pipelines this call runs. */
  total: number;
  /** The pipeline's label, e.g. `attention.backward.dq.d64.r8`. */
  label: string;
  /** Wall time of its first dispatch, ms: the compile on a cold shader cache. */
  ms: number;
  /** Who compiled it: 0 this thread, 1… a compile worker (see {@linkcode CompileOptions.workers}). */
  lane: number;
}

/** How {@linkcode compilePipelines} compiles. */
export interface CompileOptions {
  /**
   * Worker threads that compile alongside this one (default 0: this thread
   * alone). Each opens its own device on the same adapter, with the same
   * features and limits, and compiles and dispatches the pipelines it takes
   * exactly as this thread would; this thread then dispatches them too,
   * which the driver's disk cache of compiled shaders answers in
   * milliseconds. Worth it only where there is such a cache (Mesa's drivers
   * keep one unless `MESA_SHADER_CACHE_DISABLE` is set) and compiles are
   * slow: see {@linkcode defaultCompileWorkers}.
   */
  workers?: number;
}

/**
 * Compiles every pipeline built on `device` by {@linkcode getPipeline} that
 * this function has not run yet, largest WGSL first, and calls `onProgress`
 * after each. Returns how many it ran.
 *
 * Mesa's software drivers (and others) generate a shader's machine code at
 * its pipeline's first dispatch, not in `createComputePipeline`; so each
 * pipeline is dispatched once, one workgroup over zero-filled buffers (with
 * a zero uniform the kernels' sizes are 0 and they do no work). Call it after
 * building the plans a program will run and before timing anything: no
 * measurement then includes compile time, and a cold first run can show a
 * live count ("compiling kernels 3/12"). With `options.workers` the
 * compiles run on that many more threads (a compile holds one CPU core).
 *
 * @example
 * ```ts
 * import { AttentionPlan, getDevice } from "@sigmax/sigmax";
 * import { compilePipelines } from "./device.ts";
 * const device = await getDevice();
 * const plan = await AttentionPlan.create(
 *   { batch: 1, heads: 1, seqLen: 8, headDim: 4 },
 *   { activation: "sigmoid", device },
 * );
 * await compilePipelines(device, (p) => console.log(`compiling kernels ${p.done}/${p.total}`));
 * plan.destroy();
 * ```
 */
export async function compilePipelines(
  device: GPUDevice,
  onProgress: (progress: CompileProgress) => void = () => {},
  options: CompileOptions = {},
): Promise<number> {
  const pending = [...(_pipelines.get(device)?.values() ?? [])].filter((p) => !p.warm);
  // Every pipeline is created (the fast front end) before any compile starts;
  // a failure is thrown here, as from getPipeline.
  const pipelines = await Promise.all(pending.map((entry) => entry.pipeline));
  // The largest kernels (the slowest compiles) first, so that the lanes finish together.
  const order = pending.map((entry, i) => ({ entry, pipeline: pipelines[i], build: entry.build! }))
    .sort((a, b) => b.build.code.length - a.build.code.length);
  const builds = order.map((o) => o.build);
  let done = 0;
  const report = (i: number, ms: number, lane: number) =>
    onProgress({ done: ++done, total: order.length, label: builds[i].label, ms, lane });

  // Each lane (this thread and every worker) claims the next pipeline from one shared counter.
  const next = new Int32Array(new SharedArrayBuffer(4));
  const claim = () => Atomics.add(next, 0, 1);
  const workers = Math.max(0, Math.min(options.workers ?? 0, order.length - 1));
  const lanes = Array.from(
    { length: workers },
    (_, w) => _workerLane(device, builds, next, (i, ms) => report(i, ms, w + 1)),
  );
  const mine = new Set<number>();
  for (let i = claim(); i < order.length; i = claim()) {
    mine.add(i);
    const t0 = performance.now();
    await _dispatchOnce(device, order[i].pipeline, builds[i].code);
    report(i, performance.now() - t0, 0);
  }
  const compiledElsewhere = new Set<number>();
  for (const lane of await Promise.all(lanes)) {
    for (const i of lane.compiled) compiledElsewhere.add(i);
    if (lane.failure) {
      console.warn(
        `sigmax: a compile worker stopped (${lane.failure}); this thread compiles what it left`,
      );
    }
  }
  // What the workers compiled runs here once too: a disk-cache hit (or the
  // full compile where the cache missed). What a stopped worker had claimed
  // and not finished is compiled here, and counted.
  for (const [i, o] of order.entries()) {
    if (!mine.has(i)) {
      const t0 = performance.now();
      await _dispatchOnce(device, o.pipeline, builds[i].code);
      if (!compiledElsewhere.has(i)) report(i, performance.now() - t0, 0);
    }
    o.entry.warm = true;
    o.entry.build = undefined;
  }
  return order.length;
}

/** How a compile worker's lane ended: the builds it compiled, and why it stopped early if it did. */
export interface _LaneResult {
  compiled: number[];
  failure?: string;
}

/**
 * Starts a compile worker on `builds`, claiming them from `next` (shared with
 * the other lanes); `onDone(i, ms)` after each one it compiled. Resolves when
 * the worker has finished or stopped. (Exported for the tests.)
 */
export function _workerLane(
  device: GPUDevice,
  builds: _PipelineBuild[],
  next: Int32Array,
  onDone: (i: number, ms: number) => void,
): Promise<_LaneResult> {
  return new Promise((resolve) => {
    const compiled: number[] = [];
    const worker = new Worker(new URL("./compile_worker.ts", import.meta.url), { type: "module" });
    const finish = (failure?: string) => {
      worker.terminate();
      resolve({ compiled, failure });
    };
    worker.onmessage = (event: MessageEvent<CompileWorkerReply>) => {
      const reply = event.data;
      if (reply.kind === "compiled") {
        compiled.push(reply.index);
        onDone(reply.index, reply.ms);
      } else finish(reply.kind === "failed" ? reply.error : undefined);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      finish(event.message);
    };
    const limits: Record<string, number> = {};
    for (const name of _WANTED_LIMITS) limits[name] = device.limits[name];
    const request: CompileWorkerRequest = {
      builds,
      next: next.buffer as SharedArrayBuffer,
      features: [...device.features] as GPUFeatureName[],
      limits,
    };
    worker.postMessage(request);
  });
}

/** What `kernels/compile_worker.ts` is sent: the builds, the shared claim counter, the device to open. */
export interface CompileWorkerRequest {
  builds: _PipelineBuild[];
  /** An Int32Array's buffer: element 0 is the next build to claim. */
  next: SharedArrayBuffer;
  features: GPUFeatureName[];
  limits: Record<string, number>;
}

/** What a compile worker answers: one message per compiled build, then one that it is done. */
export type CompileWorkerReply =
  | { kind: "compiled"; index: number; ms: number }
  | { kind: "finished" }
  | { kind: "failed"; error: string };

/**
 * The compile workers {@linkcode compilePipelines} should use on `device`:
 * on a software adapter (where a compile takes seconds to minutes and Mesa
 * keeps a disk cache), one per CPU core beyond this thread's, at most 3;
 * none on a GPU, and none when `MESA_SHADER_CACHE_DISABLE` is set.
 */
export function defaultCompileWorkers(device: GPUDevice): number {
  if (!isSoftwareDevice(device)) return 0;
  // Mesa reads the variable as a boolean: 1, true, y or yes turn the cache off.
  if (/^(1|true|y|yes)$/i.test(_env("MESA_SHADER_CACHE_DISABLE") ?? "")) return 0;
  return Math.max(0, Math.min(3, (navigator.hardwareConcurrency ?? 1) - 1));
}

/** An environment variable, or undefined where it is unset or cannot be read. */
function _env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** Dispatches `pipeline` once, one workgroup, with a zero-filled buffer at every binding `code` declares. */
async function _dispatchOnce(
  device: GPUDevice,
  pipeline: GPUComputePipeline,
  code: string,
): Promise<void> {
  const groups = new Map<number, { binding: number; uniform: boolean }[]>();
  for (
    const [, group, binding, space] of code.matchAll(
      /@group\((\d+)\)\s*@binding\((\d+)\)\s*var<(\w+)/g,
    )
  ) {
    const list = groups.get(Number(group)) ?? [];
    list.push({ binding: Number(binding), uniform: space === "uniform" });
    groups.set(Number(group), list);
  }
  const buffers: GPUBuffer[] = [];
  const encoder = device.createCommandEncoder({ label: `${pipeline.label}.compile` });
  const pass = encoder.beginComputePass({ label: `${pipeline.label}.compile` });
  pass.setPipeline(pipeline);
  for (const [group, list] of groups) {
    pass.setBindGroup(
      group,
      device.createBindGroup({
        label: `${pipeline.label}.compile`,
        layout: pipeline.getBindGroupLayout(group),
        entries: list.map(({ binding, uniform }) => {
          const buffer = device.createBuffer({
            label: `${pipeline.label}.compile`,
            size: 4096,
            usage: uniform ? GPUBufferUsage.UNIFORM : GPUBufferUsage.STORAGE,
          });
          buffers.push(buffer);
          return { binding, resource: { buffer } };
        }),
      }),
    );
  }
  pass.dispatchWorkgroups(1);
  pass.end();
  device.queue.submit([encoder.finish()]);
  try {
    await gpuDone(device);
  } finally {
    for (const buffer of buffers) buffer.destroy();
  }
}

async function _compile(device: GPUDevice, build: _PipelineBuild): Promise<GPUComputePipeline> {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label: build.label, code: build.code });
  const pipeline = device.createComputePipeline({
    label: build.label,
    layout: "auto",
    compute: { module, entryPoint: build.entryPoint ?? "main", constants: build.constants },
  });
  const error = await device.popErrorScope();
  if (error) {
    const info = await module.getCompilationInfo();
    const messages = info.messages.map((m) => `  ${m.lineNum}:${m.linePos} ${m.message}`);
    throw new Error(
      `sigmax failed to build pipeline ${build.label}: ${error.message}\n${messages.join("\n")}`,
    );
  }
  return pipeline;
}

/**
 * A compile worker's step (`kernels/compile_worker.ts`): builds `build` on
 * `device` and dispatches it once, exactly as {@linkcode compilePipelines}
 * does, so that the driver's shader cache gets the same entry.
 */
export async function _compileAndRun(device: GPUDevice, build: _PipelineBuild): Promise<void> {
  await _dispatchOnce(device, await _compile(device, build), build.code);
}

// ---------------------------------------------------------------------------
// Buffers

/** Usage flags of a storage buffer that can also be written and read back. */
export const STORAGE_USAGE: number = 0x80 /* STORAGE */ | 0x8 /* COPY_DST */ | 0x4; /* COPY_SRC */

/** The largest buffer a storage binding on `device` may cover, in bytes. */
export function maxBindingBytes(device: GPUDevice): number {
  return Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
}

/** Throws a TypeError unless `device` looks like a GPUDevice (the plans' first argument). */
export function checkIsDevice(device: unknown): asserts device is GPUDevice {
  if (
    typeof device !== "object" || device === null ||
    typeof (device as GPUDevice).createBuffer !== "function"
  ) {
    throw new TypeError(`device must be a GPUDevice, got ${String(device)}`);
  }
}

/**
 * Throws a RangeError if `bytes` do not fit one storage binding of `device`;
 * `what` names the tensor (e.g. "column sum: x").
 */
export function checkBindingFits(device: GPUDevice, what: string, bytes: number): void {
  const max = maxBindingBytes(device);
  if (bytes > max) {
    throw new RangeError(
      `${what} needs ${bytes} bytes, more than one storage binding may hold on this device ` +
        `(its largest storage binding is ${max} bytes)`,
    );
  }
}

/**
 * The first two names in `buffers` bound to the same GPUBuffer, where at least
 * one of the two is in `written` (every name when `written` is omitted), or
 * undefined. WebGPU drops a dispatch that binds a buffer it writes under a
 * second binding, and the results would be lost silently: the plans refuse it.
 */
export function findAliased(
  buffers: Readonly<Record<string, GPUBuffer | undefined>>,
  written?: readonly string[],
): [string, string] | undefined {
  const entries = Object.entries(buffers).filter(([, b]) => b !== undefined);
  for (let i = 0; i < entries.length; i++) {
    for (let j = i + 1; j < entries.length; j++) {
      const [a, bufA] = entries[i];
      const [b, bufB] = entries[j];
      if (bufA !== bufB) continue;
      if (!written || written.includes(a) || written.includes(b)) return [a, b];
    }
  }
  return undefined;
}

/** Throws unless `buffer` is a GPUBuffer of at least `bytes` bytes; `name` names the argument. */
export function checkBufferSize(name: string, buffer: GPUBuffer, bytes: number): void {
  if (!buffer || typeof buffer.size !== "number") {
    throw new TypeError(`${name} must be a GPUBuffer of at least ${bytes} bytes`);
  }
  if (buffer.size < bytes) {
    throw new RangeError(
      `${name} must hold at least ${bytes} bytes, got a buffer of ${buffer.size}`,
    );
  }
}

/** Creates a storage buffer holding `data` (padded to a multiple of 4 bytes). */
export function uploadBuffer(
  device: GPUDevice,
  data: Float32Array | Uint32Array | Uint16Array,
  label: string,
): GPUBuffer {
  const size = Math.max(4, Math.ceil(data.byteLength / 4) * 4);
  const buffer = device.createBuffer({ label, size, usage: STORAGE_USAGE });
  if (data.byteLength > 0) {
    // writeBuffer takes whole 4-byte words: an odd count of f16s goes in zero-padded.
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (data.byteLength !== size) {
      const padded = new Uint8Array(size);
      padded.set(bytes);
      bytes = padded;
    }
    device.queue.writeBuffer(buffer, 0, bytes.buffer as ArrayBuffer, bytes.byteOffset, size);
  }
  return buffer;
}

/** Creates a storage buffer of `bytes` bytes (WebGPU zero-fills it). */
export function createStorageBuffer(device: GPUDevice, bytes: number, label: string): GPUBuffer {
  return device.createBuffer({
    label,
    size: Math.max(4, Math.ceil(bytes / 4) * 4),
    usage: STORAGE_USAGE,
  });
}

/** Copies `bytes` bytes of `buffer` back to the CPU. */
export async function readBuffer(
  device: GPUDevice,
  buffer: GPUBuffer,
  bytes: number = buffer.size,
): Promise<ArrayBuffer> {
  _assertDeviceAlive(device);
  const size = Math.max(4, Math.ceil(bytes / 4) * 4);
  const staging = device.createBuffer({
    label: `${buffer.label}.readback`,
    size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = device.createCommandEncoder({ label: `${buffer.label}.readback` });
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, size);
  device.queue.submit([encoder.finish()]);
  try {
    await _orLost(device, staging.mapAsync(GPUMapMode.READ));
    return staging.getMappedRange().slice(0, bytes);
  } finally {
    staging.destroy();
  }
}

/** Reads a buffer of f32 values back as a `Float32Array` of `length` elements. */
export async function readFloat32(
  device: GPUDevice,
  buffer: GPUBuffer,
  length: number,
): Promise<Float32Array> {
  return new Float32Array(await readBuffer(device, buffer, length * 4));
}

/** Waits for `promise` unless the device is lost first, which throws instead of hanging. */
function _orLost<T>(device: GPUDevice, promise: Promise<T>): Promise<T> {
  const lost = device.lost.then((info) => {
    throw new Error(
      `The WebGPU device was lost (${info.reason}: ${info.message}) while sigmax waited ` +
        "for the GPU; call getDevice() again and rerun.",
    );
  });
  return Promise.race([promise, lost]);
}

/** Waits until the GPU has finished all submitted work (or throws if the device is lost). */
export function gpuDone(device: GPUDevice): Promise<void> {
  _assertDeviceAlive(device);
  return _orLost(device, device.queue.onSubmittedWorkDone());
}

// ---------------------------------------------------------------------------
// Timing

/** Timings of repeated GPU work, in milliseconds. */
export interface GpuTiming {
  /** Median of the timed runs. */
  msMedian: number;
  /** Fastest timed run. */
  msMin: number;
  /** Slowest timed run. */
  msMax: number;
  /** Every timed run, in order. */
  samples: number[];
  /**
   * `"timestamp"`: GPU timestamps around the work (where the device has
   * `timestamp-query` and every run read sane values); `"wall"`: submit →
   * `onSubmittedWorkDone()`, which also counts the queue's own latency.
   */
  clock: "timestamp" | "wall";
}

/** Options of {@linkcode timeGpu}. */
export interface TimeGpuOptions {
  /** Untimed runs first (the first one compiles pipelines). Default 2. */
  warmup?: number;
  /** Timed runs; the median is reported. Default 5 (at least 5 is enforced). */
  reps?: number;
}

/** One submission's times: wall clock always, GPU timestamps where they read sane values. */
export interface SubmitTime {
  /** Submit → `onSubmittedWorkDone()`, ms. */
  wallMs: number;
  /** End-of-work minus start-of-work GPU timestamps, ms; undefined without `timestamp-query` or when the values are not sane. */
  gpuMs?: number;
}

/** Query set and buffers for one pair of timestamps, made once per device. */
interface _Timestamps {
  querySet: GPUQuerySet;
  resolve: GPUBuffer;
  readback: GPUBuffer;
}
const _timestamps = new WeakMap<GPUDevice, _Timestamps>();

function _timestampsFor(device: GPUDevice): _Timestamps | undefined {
  if (!device.features.has("timestamp-query")) return undefined;
  let t = _timestamps.get(device);
  if (!t) {
    t = {
      querySet: device.createQuerySet({ label: "sigmax.timestamps", type: "timestamp", count: 2 }),
      resolve: device.createBuffer({
        label: "sigmax.timestamps.resolve",
        size: 16,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      }),
      readback: device.createBuffer({
        label: "sigmax.timestamps.readback",
        size: 16,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      }),
    };
    _timestamps.set(device, t);
  }
  return t;
}

/**
 * Records work with `encode`, submits it and waits for it. Where the device
 * has `timestamp-query`, empty compute passes before and after the work write
 * GPU timestamps; a reading is kept only if it is positive and no longer than
 * the wall-clock time.
 */
export async function measureSubmit(
  device: GPUDevice,
  encode: (encoder: GPUCommandEncoder) => void,
): Promise<SubmitTime> {
  const ts = _timestampsFor(device);
  const encoder = device.createCommandEncoder({ label: "sigmax.timed" });
  if (ts) {
    encoder.beginComputePass({
      label: "sigmax.timestamp.start",
      timestampWrites: { querySet: ts.querySet, beginningOfPassWriteIndex: 0 },
    }).end();
  }
  encode(encoder);
  if (ts) {
    encoder.beginComputePass({
      label: "sigmax.timestamp.end",
      timestampWrites: { querySet: ts.querySet, endOfPassWriteIndex: 1 },
    }).end();
    encoder.resolveQuerySet(ts.querySet, 0, 2, ts.resolve, 0);
    encoder.copyBufferToBuffer(ts.resolve, 0, ts.readback, 0, 16);
  }
  const commands = encoder.finish();
  const t0 = performance.now();
  device.queue.submit([commands]);
  await gpuDone(device);
  const wallMs = performance.now() - t0;
  if (!ts) return { wallMs };
  await _orLost(device, ts.readback.mapAsync(GPUMapMode.READ));
  const [start, end] = new BigInt64Array(ts.readback.getMappedRange().slice(0));
  ts.readback.unmap();
  const gpuMs = Number(end - start) / 1e6;
  return gpuMs > 0 && gpuMs <= wallMs ? { wallMs, gpuMs } : { wallMs };
}

/**
 * Times GPU work the way DESIGN.md says: warm up, then the median of at least
 * five runs. Each run is measured with GPU timestamps where the device has
 * `timestamp-query` and every run read sane values, otherwise from submit to
 * `queue.onSubmittedWorkDone()`. `encode` records the work into the encoder
 * it is given.
 */
export async function timeGpu(
  device: GPUDevice,
  encode: (encoder: GPUCommandEncoder) => void,
  options: TimeGpuOptions = {},
): Promise<GpuTiming> {
  const warmup = options.warmup ?? 2;
  const reps = Math.max(5, options.reps ?? 5);
  for (let i = 0; i < warmup; i++) await measureSubmit(device, encode);
  const runs: SubmitTime[] = [];
  for (let i = 0; i < reps; i++) runs.push(await measureSubmit(device, encode));
  const { clock, samples: [samples] } = pickClock([runs]);
  return { ...summarize(samples), samples, clock };
}

/**
 * One clock for a set of measurements that will be compared: GPU timestamps
 * if every run of every series read sane values, else the wall clock for all.
 * Returns each series' milliseconds on that clock.
 */
export function pickClock(
  series: SubmitTime[][],
): { clock: "timestamp" | "wall"; samples: number[][] } {
  const timestamps = series.every((runs) => runs.every((r) => r.gpuMs !== undefined));
  return {
    clock: timestamps ? "timestamp" : "wall",
    samples: series.map((runs) => runs.map((r) => timestamps ? r.gpuMs! : r.wallMs)),
  };
}

/**
 * Runs work once with {@linkcode measureSubmit} and returns its milliseconds:
 * the GPU timestamps' reading where it is sane, else the wall clock.
 */
export async function timeSubmit(
  device: GPUDevice,
  encode: (encoder: GPUCommandEncoder) => void,
): Promise<number> {
  const { wallMs, gpuMs } = await measureSubmit(device, encode);
  return gpuMs ?? wallMs;
}

/** Median, minimum and maximum of a list of numbers. */
export function summarize(samples: number[]): { msMedian: number; msMin: number; msMax: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { msMedian: median, msMin: sorted[0], msMax: sorted[sorted.length - 1] };
}
