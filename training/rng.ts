/**
 * A small seeded random number generator (SplitMix32 state stepping, PCG-like
 * output mixing) whose whole state is one 32-bit integer, so checkpoints can
 * store it and resume the exact same stream.
 *
 * @module
 */

/** A deterministic random stream. Same seed → same numbers, on every machine. */
export class Rng {
  #state: number;

  /** Any finite number works as a seed; it is folded to 32 bits. */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    this.#state = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0;
  }

  /** The generator's state, for checkpoints. */
  get state(): number {
    return this.#state;
  }

  /** A generator that resumes from a saved {@linkcode Rng.state}. */
  static fromState(state: number): Rng {
    const rng = new Rng(0);
    rng.#state = state >>> 0;
    return rng;
  }

  /** A new generator whose stream is independent of this one's, derived from it and `salt`. */
  fork(salt: number): Rng {
    return new Rng(this.nextUint32() ^ Math.imul(salt | 0, 0x85ebca6b));
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    this.#state = (this.#state + 0x9e3779b9) >>> 0;
    let z = this.#state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`int(n) needs a positive integer, got ${n}`);
    }
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box–Muller; one draw per call, no cached spare, so the state says it all). */
  normal(): number {
    const u = 1 - this.next(); // (0, 1]
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** `n` normals times `std`, as a Float32Array. */
  normals(n: number, std = 1): Float32Array<ArrayBuffer> {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal() * std;
    return out;
  }

  /** Shuffles `array` in place (Fisher–Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = array[i];
      array[i] = array[j];
      array[j] = t;
    }
    return array;
  }
}
