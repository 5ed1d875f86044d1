/**
 * Token embedding, forward and backward: the lookup that turns token ids into
 * the model's first activations, and the gradient of the embedding table.
 *
 * - Forward: `y[t, c] = table[ids[t], c]` (a zero row for an id outside
 *   `[0, vocab)`; the trainer validates ids when it uploads them).
 * - Backward: `dtable[v, c] = Σ_{t : ids[t] = v} dy[t, c]`, overwriting the
 *   whole table (rows of unused ids are zero).
 *
 * WGSL has no float atomics, and a scatter-add would not be deterministic
 * anyway, so the backward pass first sorts the tokens by id with a stable
 * counting sort, then sums each id's run of tokens in a fixed order:
 *
 * 1. clear `counts`, `[vocab, chunks]` (one chunk = 256 consecutive tokens);
 * 2. ranks: a workgroup per chunk; each token's rank among the tokens of its
 *    chunk with the same id, and the chunk's count of each id it holds;
 * 3. scan: one workgroup turns the counts (id-major) into exclusive prefix
 *    sums, so `counts[v·chunks + j]` is where chunk j's tokens of id v start
 *    in the sorted order, and `counts[vocab·chunks]` is the number of tokens;
 * 4. scatter: `perm[counts[ids[t]·chunks + t/256] + rank[t]] = t`;
 * 5. gather: a workgroup per (id, block of TC columns), its `256/TC` lanes
 *    striding over the id's run `perm[counts[v·chunks] … counts[(v+1)·chunks])`,
 *    then a tree reduction.
 *
 * The result depends only on the ids and dy, never on scheduling. No
 * invocation loops more than 256 times in steps 2 and 4 and
 * `2·vocab·chunks/256` times in step 3; in step 5 the lanes of the most
 * frequent id loop `count/(256/TC)` times, at most `tokens/4`. Mesa's llvmpipe
 * stops an invocation after 65535 loop iterations, so shapes whose worst case
 * passes about 60000 are refused with a RangeError.
 *
 * @module
 */

import { cachedBindGroup } from "./bind_groups.ts";
import {
  _assertDeviceAlive,
  checkBindingFits,
  checkBufferSize,
  getPipeline,
  maxBindingBytes,
} from "./device.ts";
import { grid2d } from "./attention_unfused.ts";

/** The sizes of an embedding: `tokens` ids looked up in a `[vocab, width]` table. */
export interface EmbeddingShape {
  /** Number of token ids (batch · seqLen). */
  tokens: number;
  /** Rows of the table. */
  vocab: number;
  /** Columns of the table: the embedding width. */
  width: number;
}

/** Invocations per workgroup of every kernel, and tokens per chunk of the sort. */
const _WG = 256;
/** Loop iterations one invocation may spend (llvmpipe stops at 65535 in all). */
const _LOOP_BUDGET = 60000;

function _checkShape(shape: EmbeddingShape): void {
  if (typeof shape !== "object" || shape === null) {
    throw new TypeError(`shape must be an object { tokens, vocab, width }, got ${String(shape)}`);
  }
  for (const name of ["tokens", "vocab", "width"] as const) {
    const value = shape[name];
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
      throw new RangeError(`shape.${name} must be a positive integer, got ${String(value)}`);
    }
  }
}

function _checkIds(ids: unknown, shape: EmbeddingShape): asserts ids is Int32Array {
  if (!(ids instanceof Int32Array)) throw new TypeError("ids must be an Int32Array");
  if (ids.length !== shape.tokens) {
    throw new RangeError(`ids.length must be ${shape.tokens}, got ${ids.length}`);
  }
  for (let t = 0; t < ids.length; t++) {
    if (ids[t] < 0 || ids[t] >= shape.vocab) {
      throw new RangeError(`ids[${t}] = ${ids[t]} is outside [0, ${shape.vocab})`);
    }
  }
}

function _checkArray(name: string, data: unknown, length: number): void {
  if (!(data instanceof Float32Array)) throw new TypeError(`${name} must be a Float32Array`);
  if (data.length !== length) {
    throw new RangeError(`${name}.length must be ${length}, got ${data.length}`);
  }
}

// ---------------------------------------------------------------------------
// References

/** `y[t, :] = table[ids[t], :]` in plain TypeScript; a RangeError for an id outside `[0, vocab)`. */
export function embeddingReference(
  ids: Int32Array,
  table: Float32Array,
  shape: EmbeddingShape,
): Float32Array {
  _checkShape(shape);
  _checkIds(ids, shape);
  const { tokens, vocab, width } = shape;
  _checkArray("table", table, vocab * width);
  const y = new Float32Array(tokens * width);
  for (let t = 0; t < tokens; t++) {
    y.set(table.subarray(ids[t] * width, (ids[t] + 1) * width), t * width);
  }
  return y;
}

/** `dtable[v, c] = Σ_{t : ids[t] = v} dy[t, c]` in f64, rounded to f32. */
export function embeddingBackwardReference(
  ids: Int32Array,
  dy: Float32Array,
  shape: EmbeddingShape,
): Float32Array {
  _checkShape(shape);
  _checkIds(ids, shape);
  const { tokens, vocab, width } = shape;
  _checkArray("dy", dy, tokens * width);
  const sums = new Float64Array(vocab * width);
  for (let t = 0; t < tokens; t++) {
    const o = ids[t] * width;
    for (let c = 0; c < width; c++) sums[o + c] += dy[t * width + c];
  }
  return Float32Array.from(sums);
}

// ---------------------------------------------------------------------------
// WGSL

const _HEADER = `struct Params {
  tokens: u32,     // N
  vocab: u32,      // V
  width: u32,      // W
  chunks: u32,     // J = ceil(N / WG)
  tc: u32,         // gather: columns per workgroup, a power of two dividing WG
  colBlocks: u32,  // gather: ceil(W / tc)
  seg: u32,        // scan: counts per invocation, ceil(V·J / WG)
  _pad: u32,
}
override WG: u32 = ${_WG}u;
@group(0) @binding(0) var<uniform> params: Params;
`;

const _MAIN = `@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let id = wid.y * groups.x + wid.x;`;

const _FORWARD_WGSL = `// embedding.forward
${_HEADER}
@group(0) @binding(1) var<storage, read> ids: array<i32>;          // [N]
@group(0) @binding(2) var<storage, read> table: array<f32>;        // [V, W]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;      // [N, W]
${_MAIN}
  let e = id * WG + lid;
  let W = params.width;
  if (e >= params.tokens * W) { return; }
  let v = ids[e / W];
  var value = 0.0;
  if (v >= 0 && u32(v) < params.vocab) { value = table[u32(v) * W + e % W]; }
  y[e] = value;
}
`;

const _RANKS_WGSL = `// embedding.backward.ranks
${_HEADER}
@group(0) @binding(1) var<storage, read> ids: array<i32>;          // [N]
@group(0) @binding(2) var<storage, read_write> counts: array<u32>; // [V·J + 1], zeroed
@group(0) @binding(3) var<storage, read_write> ranks: array<u32>;  // [N]
var<workgroup> chunk: array<i32, WG>;
${_MAIN}
  let j = id;
  if (j >= params.chunks) { return; }  // uniform per workgroup
  let t = j * WG + lid;
  var v = -1;
  if (t < params.tokens) { v = ids[t]; }
  chunk[lid] = v;
  workgroupBarrier();
  if (v < 0 || u32(v) >= params.vocab) { return; }
  var rank = 0u;
  var last = true;
  for (var k = 0u; k < WG; k++) {
    if (chunk[k] == v) {
      if (k < lid) { rank++; } else if (k > lid) { last = false; }
    }
  }
  ranks[t] = rank;
  // The chunk's last token of an id writes the chunk's count of that id.
  if (last) { counts[u32(v) * params.chunks + j] = rank + 1u; }
}
`;

const _SCAN_WGSL = `// embedding.backward.scan
${_HEADER}
@group(0) @binding(1) var<storage, read_write> counts: array<u32>; // [V·J + 1]
var<workgroup> sums: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  let M = params.vocab * params.chunks;
  let begin = min(lid * params.seg, M);
  let end = min(begin + params.seg, M);
  var total = 0u;
  for (var k = begin; k < end; k++) { total += counts[k]; }
  // Inclusive scan of the invocations' totals (Hillis–Steele).
  sums[lid] = total;
  for (var offset = 1u; offset < WG; offset <<= 1u) {
    workgroupBarrier();
    var before = 0u;
    if (lid >= offset) { before = sums[lid - offset]; }
    workgroupBarrier();
    sums[lid] += before;
  }
  var run = sums[lid] - total;
  for (var k = begin; k < end; k++) {
    let n = counts[k];
    counts[k] = run;
    run += n;
  }
  if (lid == WG - 1u) { counts[M] = run; }
}
`;

const _SCATTER_WGSL = `// embedding.backward.scatter
${_HEADER}
@group(0) @binding(1) var<storage, read> ids: array<i32>;          // [N]
@group(0) @binding(2) var<storage, read> counts: array<u32>;       // [V·J + 1], scanned
@group(0) @binding(3) var<storage, read> ranks: array<u32>;        // [N]
@group(0) @binding(4) var<storage, read_write> perm: array<u32>;   // [N]: tokens sorted by id
${_MAIN}
  let t = id * WG + lid;
  if (t >= params.tokens) { return; }
  let v = ids[t];
  if (v < 0 || u32(v) >= params.vocab) { return; }
  perm[counts[u32(v) * params.chunks + t / WG] + ranks[t]] = t;
}
`;

const _GATHER_WGSL = `// embedding.backward.gather
${_HEADER}
@group(0) @binding(1) var<storage, read> counts: array<u32>;       // [V·J + 1], scanned
@group(0) @binding(2) var<storage, read> perm: array<u32>;         // [N]
@group(0) @binding(3) var<storage, read> dy: array<f32>;           // [N, W]
@group(0) @binding(4) var<storage, read_write> dtable: array<f32>; // [V, W]
var<workgroup> tile: array<f32, WG>;
${_MAIN}
  if (id >= params.vocab * params.colBlocks) { return; }  // uniform per workgroup
  let W = params.width;
  let TC = params.tc;
  let TR = WG / TC;
  let v = id / params.colBlocks;
  let col = (id % params.colBlocks) * TC + lid % TC;
  let lane = lid / TC;
  let start = counts[v * params.chunks];
  let end = counts[(v + 1u) * params.chunks];
  var s = 0.0;
  if (col < W) {
    for (var k = start + lane; k < end; k += TR) { s += dy[perm[k] * W + col]; }
  }
  tile[lid] = s;
  for (var stride = TR / 2u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lane < stride) { tile[lid] += tile[lid + stride * TC]; }
  }
  if (lane == 0u && col < W) { dtable[v * W + col] = tile[lid]; }
}
`;

// ---------------------------------------------------------------------------
// Plan

/** The five pipelines of an embedding. */
interface _Pipelines {
  forward: GPUComputePipeline;
  ranks: GPUComputePipeline;
  scan: GPUComputePipeline;
  scatter: GPUComputePipeline;
  gather: GPUComputePipeline;
}

/**
 * A token embedding ready to encode: pipelines built (cached per device), the
 * uniform written and the sort's scratch buffers made. Call
 * {@linkcode EmbeddingPlan.destroy} when done.
 */
export class EmbeddingPlan {
  /** The device the plan runs on. */
  readonly device: GPUDevice;
  /** The shape the plan was made for. */
  readonly shape: Readonly<EmbeddingShape>;
  readonly #pipelines: _Pipelines;
  readonly #params: GPUBuffer;
  readonly #counts: GPUBuffer;
  readonly #ranks: GPUBuffer;
  readonly #perm: GPUBuffer;
  readonly #chunks: number;
  readonly #colBlocks: number;

  private constructor(device: GPUDevice, shape: EmbeddingShape, pipelines: _Pipelines) {
    this.device = device;
    this.shape = Object.freeze({ tokens: shape.tokens, vocab: shape.vocab, width: shape.width });
    this.#pipelines = pipelines;
    const { tokens, vocab, width } = shape;
    const { tc, chunks, seg } = EmbeddingPlan.#layout(shape);
    this.#chunks = chunks;
    this.#colBlocks = Math.ceil(width / tc);
    this.#params = device.createBuffer({
      label: "embedding.params",
      size: 32,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(
      this.#params,
      0,
      new Uint32Array([tokens, vocab, width, chunks, tc, this.#colBlocks, seg, 0]),
    );
    const scratch = (label: string, count: number, usage = 0) =>
      device.createBuffer({ label, size: count * 4, usage: GPUBufferUsage.STORAGE | usage });
    this.#counts = scratch("embedding.counts", vocab * chunks + 1, GPUBufferUsage.COPY_DST);
    this.#ranks = scratch("embedding.ranks", tokens);
    this.#perm = scratch("embedding.perm", tokens);
  }

  /** Columns per gather workgroup, chunks of the sort, counts per scan invocation. */
  static #layout(shape: EmbeddingShape): { tc: number; chunks: number; seg: number } {
    let tc = 1;
    while (tc < shape.width && tc < 64) tc *= 2;
    const chunks = Math.ceil(shape.tokens / _WG);
    return { tc, chunks, seg: Math.ceil(shape.vocab * chunks / _WG) };
  }

  /** Checks the shape (before any GPU work) and builds the pipelines (cached per device). */
  static async create(device: GPUDevice, shape: EmbeddingShape): Promise<EmbeddingPlan> {
    if (
      typeof device !== "object" || device === null ||
      typeof (device as GPUDevice).createBuffer !== "function"
    ) {
      throw new TypeError(`device must be a GPUDevice, got ${String(device)}`);
    }
    _checkShape(shape);
    const { tokens, vocab, width } = shape;
    checkBindingFits(device, "embedding: y/dy", tokens * width * 4);
    checkBindingFits(device, "embedding: the table", vocab * width * 4);
    const { tc, chunks, seg } = EmbeddingPlan.#layout(shape);
    if ((vocab * chunks + 1) * 4 > maxBindingBytes(device)) {
      throw new RangeError(`embedding: vocab · ceil(tokens / ${_WG}) is too large to sort`);
    }
    // Worst cases per invocation: the scan's two loops, and the gather of an id every token has.
    const loops = {
      "the sort's scan (vocab · tokens / 65536)": 2 * seg + 2 + Math.log2(_WG),
      "the gather (tokens / (256 / min(64, width)))": Math.ceil(tokens / (_WG / tc)) + 10,
    };
    for (const [what, iterations] of Object.entries(loops)) {
      if (iterations > _LOOP_BUDGET) {
        throw new RangeError(
          `embedding: ${what} would loop ${iterations} times in one invocation, more than ` +
            `the ${_LOOP_BUDGET} the software adapter allows (llvmpipe stops at 65535)`,
        );
      }
    }
    _assertDeviceAlive(device);
    const pipeline = (label: string, code: string) =>
      getPipeline(device, { key: label, label, code: () => code });
    const [forward, ranks, scan, scatter, gather] = await Promise.all([
      pipeline("embedding.forward", _FORWARD_WGSL),
      pipeline("embedding.backward.ranks", _RANKS_WGSL),
      pipeline("embedding.backward.scan", _SCAN_WGSL),
      pipeline("embedding.backward.scatter", _SCATTER_WGSL),
      pipeline("embedding.backward.gather", _GATHER_WGSL),
    ]);
    return new EmbeddingPlan(device, shape, { forward, ranks, scan, scatter, gather });
  }

  #pass(
    encoder: GPUCommandEncoder,
    pipeline: GPUComputePipeline,
    buffers: [GPUBuffer, number][],
    groups: number,
  ): void {
    const group = cachedBindGroup(this.device, pipeline, [
      this.#params,
      ...buffers.map(([buffer, size]) => ({ buffer, size })),
    ]);
    const pass = encoder.beginComputePass({ label: pipeline.label });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(...grid2d(groups, this.device.limits.maxComputeWorkgroupsPerDimension));
    pass.end();
  }

  /** Records the lookup: reads ids (i32 `[tokens]`) and table (`[vocab, width]`), writes y (`[tokens, width]`). */
  encodeForward(
    encoder: GPUCommandEncoder,
    b: { ids: GPUBuffer; table: GPUBuffer; y: GPUBuffer },
  ): void {
    const { tokens, vocab, width } = this.shape;
    checkBufferSize("buffers.ids", b?.ids, tokens * 4);
    checkBufferSize("buffers.table", b.table, vocab * width * 4);
    checkBufferSize("buffers.y", b.y, tokens * width * 4);
    if (b.y === b.ids || b.y === b.table) {
      throw new RangeError("buffers.y must differ from buffers.ids and buffers.table");
    }
    this.#pass(
      encoder,
      this.#pipelines.forward,
      [[b.ids, tokens * 4], [b.table, vocab * width * 4], [b.y, tokens * width * 4]],
      Math.ceil(tokens * width / _WG),
    );
  }

  /**
   * Records the table gradient: reads ids (i32 `[tokens]`) and dy
   * (`[tokens, width]`), overwrites all of dtable (`[vocab, width]`).
   * Deterministic: the same inputs give the same bits.
   */
  encodeBackward(
    encoder: GPUCommandEncoder,
    b: { ids: GPUBuffer; dy: GPUBuffer; dtable: GPUBuffer },
  ): void {
    const { tokens, vocab, width } = this.shape;
    checkBufferSize("buffers.ids", b?.ids, tokens * 4);
    checkBufferSize("buffers.dy", b.dy, tokens * width * 4);
    checkBufferSize("buffers.dtable", b.dtable, vocab * width * 4);
    if (b.dtable === b.dy || b.dtable === b.ids) {
      throw new RangeError("buffers.dtable must differ from buffers.ids and buffers.dy");
    }
    const counts: [GPUBuffer, number] = [this.#counts, this.#counts.size];
    const ranks: [GPUBuffer, number] = [this.#ranks, tokens * 4];
    const perm: [GPUBuffer, number] = [this.#perm, tokens * 4];
    const ids: [GPUBuffer, number] = [b.ids, tokens * 4];
    const p = this.#pipelines;
    encoder.clearBuffer(this.#counts);
    this.#pass(encoder, p.ranks, [ids, counts, ranks], this.#chunks);
    this.#pass(encoder, p.scan, [counts], 1);
    this.#pass(encoder, p.scatter, [ids, counts, ranks, perm], this.#chunks);
    this.#pass(
      encoder,
      p.gather,
      [counts, perm, [b.dy, tokens * width * 4], [b.dtable, vocab * width * 4]],
      vocab * this.#colBlocks,
    );
  }

  /** Frees the plan's uniform and scratch buffers; the cached pipelines stay. */
  destroy(): void {
    for (const buffer of [this.#params, this.#counts, this.#ranks, this.#perm]) buffer.destroy();
  }
}
