/**
 * One compute pass for a whole step. Every kernel plan records its dispatches
 * into a compute pass it begins and ends itself; {@linkcode onePass} gives
 * the plans a command encoder whose passes are one: the first
 * `beginComputePass` opens a real pass, later ones return that same pass, and
 * their `end()` does nothing. Any other command (a buffer copy, a clear,
 * `finish`) ends the open pass first, so it is ordered as the plans recorded
 * it. WebGPU orders the dispatches of one pass and makes each see the writes
 * of those before it (each dispatch is its own usage scope), so the results
 * are those of one pass per kernel; only the fixed cost of opening and
 * closing passes goes.
 *
 * @module
 */

/** Wraps `encoder` so that consecutive compute passes recorded into it become one. */
export function onePass(encoder: GPUCommandEncoder, label = "sigmax.step"): GPUCommandEncoder {
  let open: GPUComputePassEncoder | undefined;
  const close = () => {
    open?.end();
    open = undefined;
  };
  const shared = (): GPUComputePassEncoder => {
    open ??= encoder.beginComputePass({ label });
    const pass = open;
    return {
      label: pass.label,
      setPipeline: (p: GPUComputePipeline) => pass.setPipeline(p),
      // deno-lint-ignore no-explicit-any
      setBindGroup: (...a: any[]) => (pass.setBindGroup as (...x: unknown[]) => void)(...a),
      dispatchWorkgroups: (x: number, y?: number, z?: number) => pass.dispatchWorkgroups(x, y, z),
      dispatchWorkgroupsIndirect: (b: GPUBuffer, o: number) =>
        pass.dispatchWorkgroupsIndirect(b, o),
      pushDebugGroup: (l: string) => pass.pushDebugGroup(l),
      popDebugGroup: () => pass.popDebugGroup(),
      insertDebugMarker: (l: string) => pass.insertDebugMarker(l),
      end: () => {},
    } as unknown as GPUComputePassEncoder;
  };
  return new Proxy(encoder, {
    get(target, prop) {
      if (prop === "beginComputePass") {
        return (descriptor?: GPUComputePassDescriptor) => {
          // A pass that writes timestamps must stay a pass of its own.
          if (descriptor?.timestampWrites) {
            close();
            return target.beginComputePass(descriptor);
          }
          return shared();
        };
      }
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        close();
        return value.apply(target, args);
      };
    },
  });
}
