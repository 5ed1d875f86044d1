/**
 * Checkpoints: every parameter with its AdamW moments, plus the run's step,
 * config and history, in one file written atomically (a temporary file in the
 * same directory, synced, then renamed over the old one), so a kill at any
 * moment leaves either the previous checkpoint or the new one, never half of
 * one.
 *
 * Layout: the 8 bytes `SIGMAXCK`, a u32 format version, a u32 header length,
 * the header as UTF-8 JSON, zero padding to a multiple of 4, then f32 data.
 * The header lists each tensor's name, element count and offset (in floats).
 *
 * @module
 */

import type { Param } from "./model.ts";

const MAGIC = "SIGMAXCK";
const VERSION = 1;

/** What a checkpoint stores besides the tensors. */
export interface CheckpointMeta {
  /** The training config (minus the device). */
  config: Record<string, unknown>;
  /** Steps completed. */
  step: number;
  /** Loss of every completed step. */
  losses: number[];
  /** Gradient norm of every completed step. */
  gradNorms: number[];
  /** Evaluations so far. */
  evals: unknown[];
}

/** A parameter's saved value and moments. */
export interface SavedTensor {
  value: Float32Array<ArrayBuffer>;
  m: Float32Array<ArrayBuffer>;
  v: Float32Array<ArrayBuffer>;
}

interface Header {
  meta: CheckpointMeta;
  tensors: { name: string; size: number; offset: number }[];
}

/**
 * Reads every parameter's value and moments back from the GPU (one copy into
 * one staging buffer) and writes the checkpoint to `path` atomically.
 */
export async function saveCheckpoint(
  path: string,
  state: { meta: CheckpointMeta; params: Param[]; device: GPUDevice },
): Promise<void> {
  const { meta, params, device } = state;
  const tensors: Header["tensors"] = [];
  let floats = 0;
  for (const p of params) {
    tensors.push({ name: p.name, size: p.value.size, offset: floats });
    floats += 3 * p.value.size;
  }
  const staging = device.createBuffer({
    label: "sigmax.checkpoint.readback",
    size: Math.max(4, floats * 4),
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  let data: Float32Array;
  try {
    const enc = device.createCommandEncoder({ label: "sigmax.checkpoint" });
    params.forEach((p, i) => {
      const base = tensors[i].offset * 4;
      [p.value, p.m, p.v].forEach((t, j) => {
        enc.copyBufferToBuffer(t.buffer, 0, staging, base + j * t.bytes, t.bytes);
      });
    });
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    data = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
  } finally {
    staging.destroy();
  }
  const header = new TextEncoder().encode(JSON.stringify({ meta, tensors } satisfies Header));
  const headerEnd = 16 + header.length;
  const dataStart = Math.ceil(headerEnd / 4) * 4;
  const bytes = new Uint8Array(dataStart + data.byteLength);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  const view = new DataView(bytes.buffer);
  view.setUint32(8, VERSION, true);
  view.setUint32(12, header.length, true);
  bytes.set(header, 16);
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), dataStart);

  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${path}.tmp-${Deno.pid}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
}

/** Reads a checkpoint; `undefined` when `path` does not exist. Throws on a damaged file. */
export async function loadCheckpoint(
  path: string,
): Promise<{ meta: CheckpointMeta; tensors: Map<string, SavedTensor> } | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  const bad = (why: string) => new Error(`${path} is not a readable sigmax checkpoint: ${why}`);
  if (bytes.length < 16 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    throw bad("wrong magic bytes");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== VERSION) throw bad(`format version ${version}, this sigmax reads ${VERSION}`);
  const headerLength = view.getUint32(12, true);
  if (16 + headerLength > bytes.length) throw bad("header runs past the end");
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + headerLength)));
  } catch {
    throw bad("header is not JSON");
  }
  const dataStart = Math.ceil((16 + headerLength) / 4) * 4;
  const floats = (bytes.length - dataStart) / 4;
  const data = new Float32Array(bytes.slice(dataStart).buffer);
  const tensors = new Map<string, SavedTensor>();
  for (const t of header.tensors) {
    if (t.offset + 3 * t.size > floats) throw bad(`tensor ${t.name} runs past the end`);
    const at = (j: number) => data.slice(t.offset + j * t.size, t.offset + (j + 1) * t.size);
    tensors.set(t.name, { value: at(0), m: at(1), v: at(2) });
  }
  return { meta: header.meta, tensors };
}
