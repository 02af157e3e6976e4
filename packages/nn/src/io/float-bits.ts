/**
 * Bit-exact conversions between f32 and the narrow float formats checkpoints store
 * (bfloat16, float8). IEEE half precision lives in `@webpeft/tensor`'s
 * `f16BitsToF32` / `f32ToF16Bits`.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bfloat16 bits -> f32 value. Exact: bf16 is the top half of an f32. */
export function bf16BitsToF32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}

/**
 * f32 value -> bfloat16 bits, rounding to nearest even as PyTorch does; NaN becomes
 * the quiet NaN 0x7fc0 (sign kept).
 */
export function f32ToBf16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0x8000) | 0x7fc0;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float8 e4m3fn (PyTorch `float8_e4m3fn`: no infinities, S.1111.111 is NaN) -> f32 value. */
export function f8e4m3BitsToF32(bits: number): number {
  const sign = bits & 0x80 ? -1 : 1;
  const exp = (bits >>> 3) & 0xf;
  const mant = bits & 0x7;
  if (exp === 0xf && mant === 0x7) return NaN;
  if (exp === 0) return sign * (mant / 8) * 2 ** -6;
  return sign * (1 + mant / 8) * 2 ** (exp - 7);
}

/** float8 e5m2 -> f32 value (the top byte of an IEEE half). */
export function f8e5m2BitsToF32(bits: number): number {
  const sign = bits & 0x80 ? -1 : 1;
  const exp = (bits >>> 2) & 0x1f;
  const mant = bits & 0x3;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  if (exp === 0) return sign * (mant / 4) * 2 ** -14;
  return sign * (1 + mant / 4) * 2 ** (exp - 15);
}

/**
 * bfloat16 bits -> f32 values, the whole array: each value's bits shifted into the top
 * half of an f32 word (what {@link bf16BitsToF32} computes, without a float per call).
 * `[n] -> [n]`.
 * @example bf16ArrayToF32(new Uint16Array([0x3f80, 0xc000])); // Float32Array [1, -2]
 */
export function bf16ArrayToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const words = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) words[i] = bits[i] << 16;
  return out;
}
