/**
 * WGSL building blocks shared by the fused attention generators (forward and
 * backward). Each returns WGSL text; the generators unroll every loop over
 * the head dim (in vec4s, `D4`) and over the rows an invocation owns (`R`),
 * so that the rows' vectors can live in registers.
 *
 * @module
 */

/** `body(0) … body(n-1)` joined as lines, each prefixed by `indent`. */
export function each(n: number, body: (i: number) => string, indent: string): string {
  return Array.from({ length: n }, (_, i) => indent + body(i)).join("\n");
}

/**
 * WGSL of a function `name(row, d4) -> vec4<f32>` reading 4 features of one
 * row of `buffer` (`[rows, D]` of f32 or f16). When D is not a multiple of 4
 * the buffer holds scalars and the last vec4 of a row is padded with zeros.
 */
export function loaderWgsl(name: string, buffer: string, D: number): string {
  if (D % 4 === 0) {
    return `fn ${name}(row: u32, d4: u32) -> vec4<f32> { return vec4<f32>(${buffer}[row * D4 + d4]); }`;
  }
  return `fn ${name}(row: u32, d4: u32) -> vec4<f32> {
  let o = row * D + d4 * 4u;
  var x = vec4<f32>(f32(${buffer}[o]), 0.0, 0.0, 0.0);
  if (d4 * 4u + 1u < D) { x.y = f32(${buffer}[o + 1u]); }
  if (d4 * 4u + 2u < D) { x.z = f32(${buffer}[o + 2u]); }
  if (d4 * 4u + 3u < D) { x.w = f32(${buffer}[o + 3u]); }
  return x;
}`;
}

/** WGSL of `name(row, d4, x)`, the inverse of {@linkcode loaderWgsl}, storing as type `T`. */
export function storerWgsl(name: string, buffer: string, D: number, T: string): string {
  if (D % 4 === 0) {
    return `fn ${name}(row: u32, d4: u32, x: vec4<f32>) { ${buffer}[row * D4 + d4] = vec4<${T}>(x); }`;
  }
  return `fn ${name}(row: u32, d4: u32, x: vec4<f32>) {
  let o = row * D + d4 * 4u;
  ${buffer}[o] = ${T}(x.x);
  if (d4 * 4u + 1u < D) { ${buffer}[o + 1u] = ${T}(x.y); }
  if (d4 * 4u + 2u < D) { ${buffer}[o + 2u] = ${T}(x.z); }
  if (d4 * 4u + 3u < D) { ${buffer}[o + 3u] = ${T}(x.w); }
}`;
}

/**
 * WGSL of `sigmoid4(x)`: σ without overflow (exp of a non-positive number
 * only), exactly 0 or 1 where it saturates.
 */
export const SIGMOID4_WGSL = `
fn sigmoid4(x: vec4<f32>) -> vec4<f32> {
  let e = exp(-abs(x));
  return select(e, vec4<f32>(1.0), x >= vec4<f32>(0.0)) / (1.0 + e);
}
`;

/**
 * How a kernel's inner loop reads row `j + c` (c = 0…3) of the current block
 * of keys (or queries), vec4 `d`: a WGSL expression in `j`, `d` and the
 * kernel's locals.
 */
export type RowRead = (c: number) => string;

/** Reads a block staged in workgroup memory: `tile[(j + c) * D4 + d]`. */
export function stagedRead(tile: string): RowRead {
  return (c) => `${tile}[${c === 0 ? "j" : `(j + ${c}u)`} * D4 + d]`;
}

/**
 * Reads a block straight from storage with `loader(row, d)`: row
 * `start + j + c` of this (batch, head), clamped to the last row `S − 1`.
 * A clamped read only ever fills a slot whose weight is masked to exactly 0
 * (the loops run four rows at a time past the end of the sequence), as a
 * staged tile's zero rows do.
 */
export function directRead(loader: string, start: string): RowRead {
  return (c) => `${loader}(rowBase + min(${start} + j${c === 0 ? "" : ` + ${c}u`}, S - 1u), d)`;
}

/**
 * WGSL: for each of the R register rows `regs[r]`, `${out}_r` = the dot
 * products with the four block rows j..j+3 (read with `read`), plus `init`.
 * Each block vec4 is read once and feeds all R rows.
 */
export function dotsWgsl(
  out: string,
  regs: string,
  read: RowRead,
  init: string,
  D4: number,
  R: number,
): string {
  const dots = (r: number) =>
    `${out}_${r} += vec4<f32>(dot(${regs}[${r}][d], t0), dot(${regs}[${r}][d], t1), ` +
    `dot(${regs}[${r}][d], t2), dot(${regs}[${r}][d], t3));`;
  return `${each(R, (r) => `var ${out}_${r} = vec4<f32>(${init});`, "      ")}
${
    each(D4, (d) =>
      `{
        let d = ${d}u;
${each(4, (c) => `let t${c} = ${read(c)};`, "        ")}
${each(R, dots, "        ")}
      }`, "      ")
  }`;
}

/**
 * WGSL: for each register row r, `acc[r] += Σ_c ${weights}_r[c] · row[j + c]`
 * over the four block rows j..j+3 (read with `read`); each vec4 is read once.
 */
export function accumulateWgsl(
  acc: string,
  weights: string,
  read: RowRead,
  D4: number,
  R: number,
): string {
  const fma = (r: number) =>
    `${acc}[${r}][d] += ${weights}_${r}.x * t0 + ${weights}_${r}.y * t1 + ` +
    `${weights}_${r}.z * t2 + ${weights}_${r}.w * t3;`;
  return each(D4, (d) =>
    `{
        let d = ${d}u;
${each(4, (c) => `let t${c} = ${read(c)};`, "        ")}
${each(R, fma, "        ")}
      }`, "      ");
}

/**
 * WGSL that stages rows `start … start + size − 1` of one (batch, head) into
 * two workgroup tiles (`[size, D4]` vec4s, zeros past row S), e.g. the K and
 * V tiles: `tiles` pairs each tile with its loader. Begins with the barrier
 * that waits until everyone is done with the previous tile; the caller adds
 * the barrier after it.
 */
export function stageTilesWgsl(
  start: string,
  size: string,
  tiles: [tile: string, loader: string][],
): string {
  return `    workgroupBarrier();  // everyone is done with the previous tile
    for (var e = lid; e < ${size} * D4; e += WG) {
      let row = ${start} + e / D4;
${each(tiles.length, (t) => `var x${t} = vec4<f32>();`, "      ")}
      if (row < S) {
${each(tiles.length, (t) => `x${t} = ${tiles[t][1]}(rowBase + row, e % D4);`, "        ")}
      }
${each(tiles.length, (t) => `${tiles[t][0]}[e] = x${t};`, "      ")}
    }`;
}

/**
 * WGSL declaring `rowEnd[r]`: row r (index `i[r]`) sees the staged keys
 * `j < rowEnd[r]` of the tile starting at key `k0` (bounded by `jEnd`); with
 * `causal` (a workgroup-uniform bool) only keys up to its own index.
 */
export function rowEndWgsl(R: number): string {
  return `    var rowEnd: array<u32, R>;
${
    each(
      R,
      (r) =>
        `rowEnd[${r}] = select(jEnd, select(0u, min(jEnd, i[${r}] + 1u - k0), i[${r}] >= k0), causal);`,
      "    ",
    )
  }`;
}

/** WGSL of the uniform block every fused kernel reads: the sizes and options known at run time. */
export const FUSED_PARAMS_WGSL = `struct Params {
  seqLen: u32,  // S
  scale: f32,   // s_ij = scale · q_i·k_j
  bias: f32,    // sigmoid bias b
  causal: u32,  // 1: row i sees keys j ≤ i only
}`;

/**
 * Bytes of the fused kernels' uniform buffer: room for two 32-byte slots of
 * {@linkcode FUSED_BACKWARD_PARAMS_WGSL} (see {@linkcode SOFTWARE_PARAMS_WGSL});
 * the plan writes slot 0, whose first 16 bytes are {@linkcode FUSED_PARAMS_WGSL}.
 */
export const FUSED_PARAMS_BYTES = 64;

/**
 * WGSL of the uniform block of the software backward kernels, which serve
 * both activations: {@linkcode FUSED_PARAMS_WGSL} plus which one to run,
 * padded to 32 bytes (a uniform array's stride is a multiple of 16).
 */
export const FUSED_BACKWARD_PARAMS_WGSL = `struct Params {
  seqLen: u32,   // S
  scale: f32,    // s_ij = scale · q_i·k_j
  bias: f32,     // sigmoid bias b
  causal: u32,   // 1: row i sees keys j ≤ i only
  softmax: u32,  // 1: softmax, 0: sigmoid
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}`;

/**
 * WGSL binding the uniform `Params` of a software-tiling kernel as an array
 * of two slots, which `main` reads with {@linkcode SOFTWARE_PARAMS_READ_WGSL}
 * at the workgroup's z index (always 0: the kernels dispatch 2-D grids).
 *
 * Why: Mesa's lavapipe specialises a shader on the values of the uniforms
 * that steer its control flow (its uniform inlining) and compiles a new
 * variant, at the first dispatch, for every new set of values: every new
 * sequence length, causal flag and activation cost a full compile (10–40 s
 * for these unrolled kernels). It inlines only loads at constant offsets; an
 * index that no compiler can fold (the z index, clamped to the two slots)
 * leaves one compiled shader to serve every size, as the design intends.
 */
export const SOFTWARE_PARAMS_WGSL =
  "@group(0) @binding(0) var<uniform> paramSlots: array<Params, 2>;  // slot 0, see main";

/** WGSL of the first statement of a software kernel's `main`: `params` from slot `wid.z` (0). */
export const SOFTWARE_PARAMS_READ_WGSL =
  "  let params = paramSlots[wid.z];  // wid.z is 0; not a constant offset: no uniform inlining";

/**
 * WGSL of a workgroup tree reduction over `partial[]`, shared by the row
 * kernels (softmax, layer norm). Needs an override `WG`, a power of two.
 */
export const REDUCE_WGSL = `var<workgroup> partial: array<f32, WG>;

// Tree reduction of partial[] (max when useMax, else sum); every invocation gets the result.
fn reduce(lid: u32, useMax: bool) -> f32 {
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) {
      let a = partial[lid];
      let b = partial[lid + stride];
      partial[lid] = select(a + b, max(a, b), useMax);
    }
  }
  workgroupBarrier();
  let result = partial[0];
  workgroupBarrier();
  return result;
}`;

/**
 * How the GPU kernels share one row among `split` lanes: each lane holds
 * `width` consecutive vec4s of the head dim (its slice), and a row's dot
 * products are the sum of its lanes' partial ones.
 */
export interface LaneSplit {
  /** Lanes per row, a power of two (1: one lane holds the whole row). */
  split: number;
  /** vec4s of the head dim each lane holds: `ceil(D4 / split)`. */
  width: number;
  /** Whether the partial dot products are summed with subgroup shuffles (else workgroup memory). */
  subgroups: boolean;
}

/**
 * WGSL declaring this lane's slice of the head dim: `slot` (which lane of
 * its row it is), `dcol[w]` (the vec4 column of slice entry w, clamped to the
 * row) and, when `split · width > D4`, `dvalid[w]` (whether entry w is a real
 * column; the clamped duplicates are zeroed on load and never stored).
 */
export function laneSliceWgsl(split: LaneSplit, D4: number): string {
  const { split: P, width: W } = split;
  const guarded = P * W > D4;
  return `  let slot = lid % ${P}u;  // this lane's slice of the row: columns slot·${W} … slot·${W} + ${
    W - 1
  }
  var dcol: array<u32, ${W}>;
${guarded ? `  var dvalid: array<bool, ${W}>;\n` : ""}${
    each(W, (w) =>
      `dcol[${w}] = min(slot * ${W}u + ${w}u, D4 - 1u);${
        guarded ? ` dvalid[${w}] = slot * ${W}u + ${w}u < D4;` : ""
      }`, "  ")
  }`;
}

/**
 * WGSL loading this lane's slice of row `row` with `loader` into `regs[w]`,
 * each times `factor` (a WGSL expression, or "" for none); columns past the
 * row (see {@linkcode laneSliceWgsl}) load as zero.
 */
export function loadSliceWgsl(
  regs: string,
  loader: string,
  row: string,
  factor: string,
  split: LaneSplit,
  D4: number,
  indent: string,
): string {
  const guarded = split.split * split.width > D4;
  const scaled = (x: string) => factor ? `${factor} * ${x}` : x;
  return each(split.width, (w) => {
    const x = scaled(`${loader}(${row}, dcol[${w}])`);
    return guarded
      ? `${regs}[${w}] = select(vec4<f32>(0.0), ${x}, dvalid[${w}]);`
      : `${regs}[${w}] = ${x};`;
  }, indent);
}

/** WGSL storing this lane's slice `regs[w]` (times `factor`, or "") of row `row` with `storer`. */
export function storeSliceWgsl(
  storer: string,
  regs: string,
  row: string,
  factor: string,
  split: LaneSplit,
  D4: number,
  indent: string,
): string {
  const guarded = split.split * split.width > D4;
  return each(split.width, (w) => {
    const store = `${storer}(${row}, dcol[${w}], ${factor ? `${factor} * ` : ""}${regs}[${w}]);`;
    return guarded ? `if (dvalid[${w}]) { ${store} }` : store;
  }, indent);
}

/**
 * WGSL for `${out}_c` (c < KS/4), the dot products of this lane's slice
 * `regs[w]` with the slices of staged rows 4c … 4c+3 of `tile` (`[KS, D4]`),
 * each vec4 of the tile read once, plus `init`. Partial sums when the row is
 * split: {@linkcode splitSumWgsl} completes them.
 */
export function sliceDotsWgsl(
  out: string,
  regs: string,
  tile: string,
  init: string,
  keys4: number,
  width: number,
): string {
  const lines = [each(keys4, (c) => `var ${out}_${c} = vec4<f32>(${init});`, "    ")];
  for (let w = 0; w < width; w++) {
    for (let c = 0; c < keys4; c++) {
      const t = (n: number) => `${tile}[${4 * c + n}u * D4 + dcol[${w}]]`;
      lines.push(
        `    ${out}_${c} += vec4<f32>(dot(${regs}[${w}], ${t(0)}), dot(${regs}[${w}], ${t(1)}), ` +
          `dot(${regs}[${w}], ${t(2)}), dot(${regs}[${w}], ${t(3)}));`,
      );
    }
  }
  return lines.join("\n");
}

/**
 * WGSL: `acc[w] += Σ_c Σ_n ${weights}_c[n] · tile[4c + n]` over the staged
 * rows of `tile`, on this lane's slice (each tile vec4 read once).
 */
export function sliceAccumulateWgsl(
  acc: string,
  weights: string,
  tile: string,
  keys4: number,
  width: number,
): string {
  return each(width, (w) => {
    const terms = Array.from(
      { length: keys4 },
      (_, c) =>
        [0, 1, 2, 3].map((n) =>
          `${weights}_${c}.${"xyzw"[n]} * ${tile}[${4 * c + n}u * D4 + dcol[${w}]]`
        ).join(" + "),
    );
    return `${acc}[${w}] += ${terms.join("\n      + ")};`;
  }, "    ");
}

/**
 * WGSL that completes split dot products: each named vec4 becomes the sum of
 * its value over the `split` lanes of the row, with subgroup shuffles
 * (`subgroupShuffleXor`: the row's lanes are `split` consecutive local
 * invocation indices, aligned to `split`; this assumes that a 1-D workgroup
 * is cut into subgroups of consecutive indices, as NVIDIA, AMD, Intel and
 * lavapipe do, which WGSL itself does not promise) or through
 * `red`, a workgroup array of `WG · names.length` vec4s (one barrier; the
 * caller's next barrier must come before `red` is written again). Nothing
 * when a lane holds the whole row.
 */
export function splitSumWgsl(names: string[], split: LaneSplit, indent: string): string {
  const P = split.split;
  if (P === 1) return "";
  if (split.subgroups) {
    const lines = [];
    for (let mask = 1; mask < P; mask *= 2) {
      for (const x of names) lines.push(`${x} += subgroupShuffleXor(${x}, ${mask}u);`);
    }
    return lines.map((line) => indent + line).join("\n");
  }
  const N = names.length;
  const sum = (n: number) =>
    Array.from({ length: P }, (_, t) => `red[(first + ${t}u) * ${N}u + ${n}u]`).join(" + ");
  return `${indent}{
${indent}  let first = lid - slot;  // the row's first lane
${names.map((x, n) => `${indent}  red[lid * ${N}u + ${n}u] = ${x};`).join("\n")}
${indent}  workgroupBarrier();
${names.map((x, n) => `${indent}  ${x} = ${sum(n)};`).join("\n")}
${indent}}`;
}

/**
 * What a kernel that uses subgroup built-ins says about them. WGSL asks for
 * `enable subgroups;`, but Naga (Deno 2.9's WebGPU) rejects that directive as
 * not yet implemented and accepts the built-ins on a device with the
 * `subgroups` feature without it, so the kernels leave it out.
 */
export const SUBGROUPS_WGSL =
  "// subgroup built-ins: Naga takes them without `enable subgroups;` (and rejects it)\n";

/** WGSL declaring `red`, the exchange array of {@linkcode splitSumWgsl}, when it is needed. */
export function splitScratchWgsl(values: number, split: LaneSplit): string {
  if (split.split === 1 || split.subgroups) return "";
  return `var<workgroup> red: array<vec4<f32>, WG * ${values}u>;  // [WG, ${values}] partial dot products\n`;
}
