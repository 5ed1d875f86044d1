/**
 * A compile worker of `compilePipelines` (kernels/device.ts): opens a device
 * like the caller's, then claims pipeline builds from the shared counter and
 * compiles and dispatches each once, so that the driver's disk cache holds
 * them when the caller's thread runs them.
 *
 * @module
 */

import { _compileAndRun, type CompileWorkerReply, type CompileWorkerRequest } from "./device.ts";

/** The worker's global scope, as far as this file uses it. */
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<CompileWorkerRequest>) => void) | null;
  postMessage(reply: CompileWorkerReply): void;
};

scope.onmessage = async (event) => {
  const { builds, features, limits } = event.data;
  const next = new Int32Array(event.data.next);
  let device: GPUDevice | undefined;
  try {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) throw new Error("no WebGPU adapter in the worker");
    device = await adapter.requestDevice({
      label: "sigmax.compile-worker",
      requiredFeatures: features,
      requiredLimits: limits,
    });
    for (let i = Atomics.add(next, 0, 1); i < builds.length; i = Atomics.add(next, 0, 1)) {
      const t0 = performance.now();
      await _compileAndRun(device, builds[i]);
      scope.postMessage({ kind: "compiled", index: i, ms: performance.now() - t0 });
    }
    scope.postMessage({ kind: "finished" });
  } catch (error) {
    scope.postMessage({ kind: "failed", error: String((error as Error)?.message ?? error) });
  } finally {
    device?.destroy();
  }
};
