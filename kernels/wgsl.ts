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
 * WGSL: for each of the R register rows `regs[r]`, `${out}_r` = the dot
 * products with the four staged tile rows j..j+3 of `tile` (`[rows, D4]`),
 * plus `init`. Each staged vec4 is read once and feeds all R rows.
 */
export function dotsWgsl(
  out: string,
  regs: string,
  tile: string,
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
        let t0 = ${tile}[j * D4 + d];
        let t1 = ${tile}[(j + 1u) * D4 + d];
        let t2 = ${tile}[(j + 2u) * D4 + d];
        let t3 = ${tile}[(j + 3u) * D4 + d];
${each(R, dots, "        ")}
      }`, "      ")
  }`;
}

/**
 * WGSL: for each register row r, `acc[r] += Σ_c ${weights}_r[c] · tile[j + c]`
 * over the four staged rows j..j+3; each staged vec4 is read once.
 */
export function accumulateWgsl(
  acc: string,
  weights: string,
  tile: string,
  D4: number,
  R: number,
): string {
  const fma = (r: number) =>
    `${acc}[${r}][d] += ${weights}_${r}.x * t0 + ${weights}_${r}.y * t1 + ` +
    `${weights}_${r}.z * t2 + ${weights}_${r}.w * t3;`;
  return each(D4, (d) =>
    `{
        let d = ${d}u;
        let t0 = ${tile}[j * D4 + d];
        let t1 = ${tile}[(j + 1u) * D4 + d];
        let t2 = ${tile}[(j + 2u) * D4 + d];
        let t3 = ${tile}[(j + 3u) * D4 + d];
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
