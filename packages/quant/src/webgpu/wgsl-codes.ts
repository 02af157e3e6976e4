/** WGSL snippets shared by the codec and dequant-matmul kernels. */
import { FP4_PIVOTS, FP4_RANK_TO_CODE, NF4_PIVOTS } from '../codebooks.js';

/** A float32 as an exact WGSL expression (a bit pattern, so no literal rounding is involved). */
export function f32Bits(v: number): string {
  const u = new Uint32Array(new Float32Array([v]).buffer)[0];
  return `bitcast<f32>(0x${u.toString(16)}u)`;
}

/** `fn code4(s: f32, nf4: bool) -> u32`: the 4-bit code of a scaled value (see `code4bit`). */
export const WGSL_CODE4 = `
fn code4(s: f32, nf4: bool) -> u32 {
  if (nf4) {
    var q = 0u;
${Array.from(NF4_PIVOTS, (p) => `    q += select(0u, 1u, s > ${f32Bits(p)});`).join('\n')}
    return q;
  }
  let a = abs(s);
  var rank = 0u;
${Array.from(FP4_PIVOTS, (p) => `  rank += select(0u, 1u, a > ${f32Bits(p)});`).join('\n')}
  var map = array<u32, 8>(${Array.from(FP4_RANK_TO_CODE, (c) => `${c}u`).join(', ')});
  return map[rank] | select(0u, 8u, s < 0.0);
}
`;

/** `fn is_finite_bits(v: f32) -> bool` on the bit pattern (compilers may fold float NaN tests away). */
export const WGSL_FINITE = `
fn is_finite_bits(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) < 0x7f800000u; }
`;

/** `fn byte_at(i) -> u32`: byte `i` of a u32 buffer read as a little-endian byte stream. */
export function wgslByteAt(buffer: string): string {
  return `
fn byte_at(i: u32) -> u32 { return (${buffer}[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu; }
`;
}

/** `fn code8(x: f32) -> u32`: CUDA `dQuantize<0>` over the storage array `code` (see `code8bit`). */
export const WGSL_CODE8 = `
fn code8(x: f32) -> u32 {
  var pivot = 127u;
  var upper_pivot = 255u;
  var lower_pivot = 0u;
  var lower = -1.0;
  var upper = 1.0;
  var val = code[pivot];
  for (var i = 64u; i > 0u; i = i >> 1u) {
    if (x > val) { lower_pivot = pivot; lower = val; pivot += i; }
    else { upper_pivot = pivot; upper = val; pivot -= i; }
    val = code[pivot];
  }
  if (upper_pivot == 255u) { upper = code[upper_pivot]; }
  if (lower_pivot == 0u) { lower = code[lower_pivot]; }
  if (x > val) { return select(pivot, upper_pivot, x > (upper + val) * 0.5); }
  return select(pivot, lower_pivot, x < (lower + val) * 0.5);
}
`;

/**
 * Gather-free 4-bit decode. On a software adapter (one invocation = one SIMD lane) a
 * per-lane index into storage or workgroup memory is a gather, so the 16-entry code
 * table is loaded once per invocation with uniform addresses into four `vec4`s
 * (`load_code4()` over the storage array `code`) and a nibble picks its value with a
 * select tree (`decode4(q, t)`, 15 selects, no memory access). `decode_lo(w, t)` /
 * `decode_hi(w, t)` are the code values of elements 0-3 / 4-7 of packed word `w`
 * (element 0 = high nibble of byte 0).
 */
export const WGSL_DECODE4 = `
struct Code4 { c0: vec4<f32>, c1: vec4<f32>, c2: vec4<f32>, c3: vec4<f32> }
fn load_code4() -> Code4 {
  return Code4(vec4<f32>(code[0], code[1], code[2], code[3]), vec4<f32>(code[4], code[5], code[6], code[7]),
               vec4<f32>(code[8], code[9], code[10], code[11]), vec4<f32>(code[12], code[13], code[14], code[15]));
}
fn decode4(q: u32, t: Code4) -> f32 {
  let b2 = (q & 4u) != 0u;
  let v = select(select(t.c0, t.c1, b2), select(t.c2, t.c3, b2), (q & 8u) != 0u);
  let p = select(v.xz, v.yw, (q & 1u) != 0u);
  return select(p.x, p.y, (q & 2u) != 0u);
}
fn decode_lo(w: u32, t: Code4) -> vec4<f32> {
  return vec4<f32>(decode4((w >> 4u) & 15u, t), decode4(w & 15u, t), decode4((w >> 12u) & 15u, t), decode4((w >> 8u) & 15u, t));
}
fn decode_hi(w: u32, t: Code4) -> vec4<f32> {
  return vec4<f32>(decode4((w >> 20u) & 15u, t), decode4((w >> 16u) & 15u, t), decode4(w >> 28u, t), decode4((w >> 24u) & 15u, t));
}
`;
