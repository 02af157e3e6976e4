/**
 * f32 -> f16 rounding in WGSL with integer operations, for the 4-bit kernels that give
 * f16 compute its weight (the tile-by-tile matmul, the f16 dequantize). lavapipe's
 * conversion builtins (`f16(x)`, `vec4<f16>()`, `pack2x16float`) were measured ulps off
 * round-to-nearest-even; these give exactly the cpu reference's `f32ToF16Bits` and need
 * no `enable f16` (SwiftShader compiles f16 shaders slowly).
 */

/**
 * `fn round_f16(x: f32) -> f32` (and `round_f16v` over `vec4`): x rounded to the nearest
 * f16 value, ties to even, as f32; +-inf past the f16 range, NaN kept. Integer
 * operations on the bits for normal f16 results, an exact scaled `round` for subnormals.
 */
export const WGSL_ROUND_F16 = `
fn round_f16(x: f32) -> f32 {
  let b = bitcast<u32>(x);
  let a = b & 0x7fffffffu;
  // Normal f16 range: drop 13 mantissa bits, ties to even (a carry into the exponent is right).
  let r = (b + 0xfffu + ((b >> 13u) & 1u)) & 0xffffe000u;
  let inf = bitcast<f32>((b & 0x80000000u) | 0x7f800000u);
  // Below 2^-14 the f16 quantum is 2^-24: x * 2^24 is exact and round() ties to even.
  let sub = round(x * 16777216.0) * 5.9604644775390625e-8;
  let normal = select(bitcast<f32>(r), inf, (r & 0x7fffffffu) > 0x477fe000u);
  return select(select(normal, sub, a < 0x38800000u), x, a >= 0x7f800000u);
}
fn round_f16v(v: vec4<f32>) -> vec4<f32> { return vec4<f32>(round_f16(v.x), round_f16(v.y), round_f16(v.z), round_f16(v.w)); }
`;

/**
 * `fn f16_bits(x: f32) -> u32`: the f16 bits of x rounded to nearest even (`round_f16`,
 * then an exact re-encoding: NaN as the quiet `0x7e00`, signed zeros kept), and
 * `fn pack_f16x2(a: f32, b: f32) -> u32`: two of them in one word, a in the low half
 * (the element order of an f16 array in memory). Includes {@link WGSL_ROUND_F16}.
 */
export const WGSL_F16_BITS = `${WGSL_ROUND_F16}
fn f16_bits(x: f32) -> u32 {
  let r = round_f16(x);
  let a = bitcast<u32>(r) & 0x7fffffffu;
  let s = (bitcast<u32>(x) >> 16u) & 0x8000u;
  // r is an f16 value: a normal one rebiases the exponent (127 - 15 = 112, i.e. 0x38000000)
  // and drops 13 zero mantissa bits; a subnormal one is k * 2^-24 with k < 1024 (exact).
  let normal = (a - 0x38000000u) >> 13u;
  let sub = u32(abs(r) * 16777216.0);
  let special = select(0x7c00u, 0x7e00u, a > 0x7f800000u);
  return s | select(select(sub, normal, a >= 0x38800000u), special, a >= 0x7f800000u);
}
fn pack_f16x2(a: f32, b: f32) -> u32 { return f16_bits(a) | (f16_bits(b) << 16u); }
`;
