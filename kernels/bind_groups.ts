/**
 * Bind groups built once per pipeline and buffer set. A plan's `encode` is
 * called with the same buffers step after step (the training graph allocates
 * every buffer up front), so the bind group it needs is the same object every
 * time: {@linkcode cachedBindGroup} returns it from a cache keyed by the
 * pipeline and by the identity, offset and size of every bound buffer, and
 * creates it only on the first call. Each pipeline keeps at most
 * {@linkcode MAX_BIND_GROUPS_PER_PIPELINE} groups (the cache is emptied when it
 * is full), so callers that pass fresh buffers every time cannot grow it
 * without bound.
 *
 * @module
 */

/** Bind groups one pipeline keeps before its cache is emptied. */
export const MAX_BIND_GROUPS_PER_PIPELINE = 256;

/** A buffer binding: the whole buffer, or `size` bytes from `offset`. */
export interface BufferBinding {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

const _groups = new WeakMap<GPUComputePipeline, Map<string, GPUBindGroup>>();
const _ids = new WeakMap<GPUBuffer, number>();
let _nextId = 0;

function _id(buffer: GPUBuffer): number {
  let id = _ids.get(buffer);
  if (id === undefined) _ids.set(buffer, id = _nextId++);
  return id;
}

/**
 * The bind group of `pipeline`'s group 0 whose binding `i` is `bindings[i]`,
 * created on the first call with these buffers and returned from the cache
 * after that.
 */
export function cachedBindGroup(
  device: GPUDevice,
  pipeline: GPUComputePipeline,
  bindings: readonly (GPUBuffer | BufferBinding)[],
): GPUBindGroup {
  const resources = bindings.map((b) => ("buffer" in b ? b : { buffer: b }) as BufferBinding);
  const key = resources.map((r) => `${_id(r.buffer)}:${r.offset ?? 0}:${r.size ?? -1}`).join(",");
  let groups = _groups.get(pipeline);
  if (!groups) _groups.set(pipeline, groups = new Map());
  let group = groups.get(key);
  if (!group) {
    if (groups.size >= MAX_BIND_GROUPS_PER_PIPELINE) groups.clear();
    group = device.createBindGroup({
      label: pipeline.label,
      layout: pipeline.getBindGroupLayout(0),
      entries: resources.map((resource, binding) => ({ binding, resource })),
    });
    groups.set(key, group);
  }
  return group;
}
