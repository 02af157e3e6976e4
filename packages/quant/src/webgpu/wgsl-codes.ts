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

/** `fn nibble(packed, e) -> u32`: the 4-bit code of element `e` (first element = high nibble of byte 0). */
export function wgslNibble(buffer: string): string {
  return `
fn nibble(e: u32) -> u32 {
  let byte = (${buffer}[e >> 3u] >> (((e >> 1u) & 3u) * 8u)) & 0xffu;
  return select(byte >> 4u, byte & 15u, (e & 1u) == 1u);
}
`;
}

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
