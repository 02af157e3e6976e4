import { stridedOffset } from '../../wgsl.js';

/**
 * Layout class of one matmul dispatch: the transpose flags, the batch rank and whether
 * every operand is read and written as `vec4` (`aligned`: m, n and k are multiples of
 * 4, so each 4-wide block is wholly inside or outside the matrix and needs no guard).
 */
export interface MatmulLayout {
  readonly transposeA: boolean;
  readonly transposeB: boolean;
  readonly aligned: boolean;
  readonly batchRank: number;
  /**
   * f16 storage (`enable f16;`): operands are widened to f32 as they are loaded, every
   * variant accumulates in f32, and each output is rounded once to f16 when stored.
   */
  readonly half?: boolean;
  /**
   * What the store adds (`MatMulAdd`): `scale` writes `alpha * AB`, `row` adds a bias
   * row `D [n]`, `full` adds `D` of the output's shape (`u.alpha` and binding `D` exist
   * then). Absent: the plain product.
   */
  readonly epilogue?: MatmulEpilogue;
}

/** The store epilogue of a `MatMulAdd` dispatch (see {@link MatmulLayout.epilogue}). */
export type MatmulEpilogue = 'scale' | 'row' | 'full';

/** Whether the layout reads the addend `D` (binding 2, the output then at 3). */
function hasAddend(l: MatmulLayout): boolean {
  return l.epilogue === 'row' || l.epilogue === 'full';
}

/**
 * Binding index of the uniform block: after A, B, (D,) C. `bBindings` is how many
 * bindings the B operand takes (more than 1 for a caller-supplied loader, `b-loader.ts`).
 */
export function uniformBinding(l: MatmulLayout, bBindings = 1): number {
  return (hasAddend(l) ? 4 : 3) + bBindings - 1;
}

/** Storage inputs of a dispatch of layout `l` (A, B and the addend). */
export function matmulInputCount(l: MatmulLayout): number {
  return hasAddend(l) ? 3 : 2;
}

/**
 * WGSL of the epilogue applied to the f32 value `v` of output row `r`, column `c` at
 * element offset `o` (the batch's output offset): `v` itself without an epilogue.
 * `vec4` is whether `v` is 4 columns read as one `vec4` (aligned addend loads).
 */
export function epilogueWgsl(l: MatmulLayout, v: string, o: string, r: string, c: string, vec4: boolean): string {
  if (!l.epilogue) return v;
  const scaled = `u.alpha * ${v}`;
  if (l.epilogue === 'scale') return scaled;
  // Epilogues run on contiguous outputs only (ldc = n), so the addend shares C's offsets.
  const idx = l.epilogue === 'row' ? c : `${o} + ${r} * u.n + ${c}`;
  const load = vec4 ? `D[(${idx}) / 4u]` : `D[${idx}]`;
  const widened = l.half ? (vec4 ? `vec4<f32>(${load})` : `f32(${load})`) : load;
  return `${scaled} + ${widened}`;
}

/** Pipeline-key fragment of a layout (flags and classes only, never sizes). */
export function layoutKey(l: MatmulLayout): string {
  return `${+l.transposeA}${+l.transposeB}/${l.aligned ? 'v4' : 's'}/b${l.batchRank}${l.half ? '/f16' : ''}${l.epilogue ? `/${l.epilogue}` : ''}`;
}

/**
 * Bindings `A`, `B` (read) and `C` (write): `vec4<f32>` arrays when aligned, else
 * `f32` (`f16` element types with `half`, after `enable f16;`). The uniform block
 * (binding 3) is declared by the caller.
 */
export function matmulBindings(l: MatmulLayout, customB?: { readonly wgsl: string; readonly count: number }): string {
  const E = l.half ? 'f16' : 'f32';
  const T = l.aligned ? `vec4<${E}>` : E;
  // A caller-supplied B loader declares its own bindings 1 .. count; D and C follow them.
  const bDecl = customB ? customB.wgsl : `@group(0) @binding(1) var<storage, read> B: array<${T}>;`;
  const nb = customB ? customB.count : 1;
  const addend = hasAddend(l) ? `\n@group(0) @binding(${1 + nb}) var<storage, read> D: array<${T}>;` : '';
  return `${l.half ? 'enable f16;\n' : ''}@group(0) @binding(0) var<storage, read> A: array<${T}>;
${bDecl}${addend}
@group(0) @binding(${(hasAddend(l) ? 3 : 2) + nb - 1}) var<storage, read_write> C: array<${T}>;`;
}

/**
 * WGSL helpers shared by the matmul variants, all in element offsets:
 * - `aTile(aOff, r0, p)`: `mat4x4` whose column `i` is row `r0 + i` of A over k `p..p+3`;
 * - `bTile(bOff, p, c0)`: `mat4x4` whose column `j` is row `p + j` of B over columns `c0..c0+3`;
 *   so `bTile * aTile` is the 4x4 output block with column `i` = output row `r0 + i`;
 * - `store4(cOff, r, c, v)`: writes output row `r`, columns `c..c+3`.
 * Aligned layouts read each operand along its contiguous axis with one `vec4` load
 * (transposing in registers); the others read guarded scalars (zero outside).
 */
export function matmulHelpers(l: MatmulLayout, customB = false): string {
  const { aIdx, bIdx } = operandIndex(l);
  const aTile = l.transposeA
    ? 'transpose(mat4x4<f32>(a4m(o, r, p), a4m(o, r, p + 1u), a4m(o, r, p + 2u), a4m(o, r, p + 3u)))'
    : 'mat4x4<f32>(a4k(o, r, p), a4k(o, r + 1u, p), a4k(o, r + 2u, p), a4k(o, r + 3u, p))';
  const bTile = l.transposeB
    ? 'transpose(mat4x4<f32>(b4k(o, p, c), b4k(o, p, c + 1u), b4k(o, p, c + 2u), b4k(o, p, c + 3u)))'
    : 'mat4x4<f32>(b4n(o, p, c), b4n(o, p + 1u, c), b4n(o, p + 2u, c), b4n(o, p + 3u, c))';
  // f16 storage: widen on load, round once on store (the accumulators stay f32).
  const w4 = (e: string) => (l.half ? `vec4<f32>(${e})` : e);
  const w1 = (e: string) => (l.half ? `f32(${e})` : e);
  const n4 = (e: string) => (l.half ? `vec4<f16>(${e})` : e);
  const n1 = (e: string) => (l.half ? `f16(${e})` : e);
  const loads = l.aligned
    ? `${l.transposeA ? 'fn a4m(o: u32, r: u32, p: u32) -> vec4<f32>' : 'fn a4k(o: u32, r: u32, p: u32) -> vec4<f32>'} { return ${w4(`A[(o + ${aIdx}) / 4u]`)}; }
${
  customB
    ? ''
    : `${l.transposeB ? 'fn b4k(o: u32, p: u32, c: u32) -> vec4<f32>' : 'fn b4n(o: u32, p: u32, c: u32) -> vec4<f32>'} { return ${w4(`B[(o + ${bIdx}) / 4u]`)}; }\n`
}// A thread's block may overhang m or n by whole 4-blocks (8-row tiles): skip those.
fn store4(o: u32, r: u32, c: u32, v: vec4<f32>) {
  if (r < u.m && c < u.n) { C[(o + r * u.ldc + c) / 4u] = ${n4(epilogueWgsl(l, 'v', 'o', 'r', 'c', true))}; }
}`
    : `// Branch-free guards (a select, not an if): small shaders compile fast on software drivers.
fn a1(o: u32, r: u32, p: u32) -> f32 {
  let ok = r < u.m && p < u.k;
  return select(0.0, ${w1(`A[select(0u, o + ${aIdx}, ok)]`)}, ok);
}
${
  customB
    ? ''
    : `fn b1(o: u32, p: u32, c: u32) -> f32 {
  let ok = p < u.k && c < u.n;
  return select(0.0, ${w1(`B[select(0u, o + ${bIdx}, ok)]`)}, ok);
}
`
}fn a4k(o: u32, r: u32, p: u32) -> vec4<f32> { return vec4<f32>(a1(o, r, p), a1(o, r, p + 1u), a1(o, r, p + 2u), a1(o, r, p + 3u)); }
fn a4m(o: u32, r: u32, p: u32) -> vec4<f32> { return vec4<f32>(a1(o, r, p), a1(o, r + 1u, p), a1(o, r + 2u, p), a1(o, r + 3u, p)); }
${
  customB
    ? ''
    : `fn b4n(o: u32, p: u32, c: u32) -> vec4<f32> { return vec4<f32>(b1(o, p, c), b1(o, p, c + 1u), b1(o, p, c + 2u), b1(o, p, c + 3u)); }
fn b4k(o: u32, p: u32, c: u32) -> vec4<f32> { return vec4<f32>(b1(o, p, c), b1(o, p + 1u, c), b1(o, p + 2u, c), b1(o, p + 3u, c)); }
`
}fn store4(o: u32, r: u32, c: u32, v: vec4<f32>) {
  if (r >= u.m) { return; }
  for (var j = 0u; j < 4u; j++) {
    if (c + j < u.n) { C[o + r * u.ldc + c + j] = ${n1(epilogueWgsl(l, 'v[j]', 'o', 'r', 'c + j', false))}; }
  }
}`;
  return `${loads}
fn aTile(o: u32, r: u32, p: u32) -> mat4x4<f32> { return ${aTile}; }${customB ? '' : `\nfn bTile(o: u32, p: u32, c: u32) -> mat4x4<f32> { return ${bTile}; }`}`;
}

/**
 * Element index of A's `(r, p)` and B's `(p, c)` past their batch offsets: each operand
 * has one unit-stride axis (k for A, n for B, or the other when transposed) and a
 * leading dimension (`u.lda`, `u.ldb`, BLAS's), so a view of a larger tensor (an
 * attention head of a fused qkv projection) is read in place.
 */
export function operandIndex(l: MatmulLayout): { aIdx: string; bIdx: string } {
  return {
    aIdx: l.transposeA ? 'p * u.lda + r' : 'r * u.lda + p',
    bIdx: l.transposeB ? 'c * u.ldb + p' : 'p * u.ldb + c',
  };
}

/**
 * WGSL statements defining `aOff`, `bOff`, `cOff` (element offsets of batch `t`'s
 * matrices) from the uniforms `bshape` and the element batch strides `sa`, `sb`, `sc`
 * past the offsets `oa`, `ob`, `oc` (0 strides broadcast).
 */
export function batchOffsets(batchRank: number, t: string): string {
  if (batchRank === 0) return `let aOff = u.oa;
  let bOff = u.ob;
  let cOff = u.oc;`;
  return `${stridedOffset(batchRank, t, 'bshape', 'sa', 'u.oa', 'aOff')}
  ${stridedOffset(batchRank, t, 'bshape', 'sb', 'u.ob', 'bOff')}
  ${stridedOffset(batchRank, t, 'bshape', 'sc', 'u.oc', 'cOff')}`;
}
