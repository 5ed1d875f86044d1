/**
 * GPU tensors for the training module: a storage buffer with a shape, and a
 * pool that hands out buffers by size so that graphs built for different
 * batch sizes (training and evaluation) reuse each other's memory.
 *
 * @module
 */

import { STORAGE_USAGE } from "../kernels/device.ts";

/** Element type of a tensor: f32 for values, i32 for token ids and labels. */
export type DType = "f32" | "i32";

/** A row-major tensor living in a GPU storage buffer. */
export class Tensor {
  /** Number of elements. */
  readonly size: number;

  /** Wraps `buffer`; it must hold at least `size·4` bytes. */
  constructor(
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType = "f32",
  ) {
    this.size = shape.reduce((a, b) => a * b, 1);
    if (buffer.size < this.size * 4) {
      throw new RangeError(
        `tensor [${shape.join(", ")}] needs ${this.size * 4} bytes, buffer has ${buffer.size}`,
      );
    }
  }

  /** Bytes of the elements (the buffer may be larger). */
  get bytes(): number {
    return this.size * 4;
  }
}

/** Buffers are rounded up to this many bytes so that similar sizes share. */
const _GRANULE = 256;

/**
 * Hands out storage buffers by size and takes them back. A released buffer
 * goes to a free list for its rounded size and is reused by the next
 * `acquire` of that size; `destroy` frees everything.
 */
export class TensorPool {
  readonly #device: GPUDevice;
  readonly #free = new Map<number, GPUBuffer[]>();
  readonly #all = new Set<GPUBuffer>();

  /** A pool on `device`. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** Bytes currently allocated by the pool (in use or free). */
  get allocatedBytes(): number {
    let bytes = 0;
    for (const buffer of this.#all) bytes += buffer.size;
    return bytes;
  }

  /** A tensor of `shape`, contents undefined (a reused buffer keeps old values). */
  acquire(shape: readonly number[], label: string, dtype: DType = "f32"): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 1) {
        throw new RangeError(`tensor ${label}: bad shape [${shape.join(", ")}]`);
      }
    }
    const bytes = Math.ceil(shape.reduce((a, b) => a * b, 1) * 4 / _GRANULE) * _GRANULE;
    const reused = this.#free.get(bytes)?.pop();
    const buffer = reused ??
      this.#device.createBuffer({ label, size: bytes, usage: STORAGE_USAGE });
    this.#all.add(buffer);
    return new Tensor(buffer, shape, dtype);
  }

  /** A tensor holding `data`. */
  upload(
    data: Float32Array<ArrayBuffer> | Int32Array<ArrayBuffer>,
    shape: readonly number[],
    label: string,
  ): Tensor {
    const dtype: DType = data instanceof Int32Array ? "i32" : "f32";
    const tensor = this.acquire(shape, label, dtype);
    if (data.length !== tensor.size) {
      throw new RangeError(
        `tensor ${label}: ${data.length} values for shape [${shape.join(", ")}]`,
      );
    }
    this.#device.queue.writeBuffer(tensor.buffer, 0, data);
    return tensor;
  }

  /** Gives `tensor`'s buffer back for reuse. */
  release(tensor: Tensor): void {
    const list = this.#free.get(tensor.buffer.size) ?? [];
    if (!list.includes(tensor.buffer)) list.push(tensor.buffer);
    this.#free.set(tensor.buffer.size, list);
  }

  /** Destroys every buffer the pool ever handed out. */
  destroy(): void {
    for (const buffer of this.#all) buffer.destroy();
    this.#all.clear();
    this.#free.clear();
  }
}
