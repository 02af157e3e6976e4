/**
 * Scalar math shared by the cpu kernels. The WGSL kernels implement the same formulas
 * (WGSL has no erf), so both backends agree to f32 rounding.
 */

/**
 * erf(x) from the Chebyshev fit of erfc in Numerical Recipes (section 6.2): fractional
 * error below 1.2e-7 everywhere, under f32 resolution of the results it feeds.
 */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

/**
 * One f32 and its bits, reused by {@link f32ToF16Bits}: two typed arrays allocated per
 * call made decoding a 135M-weight checkpoint to f16 cost minutes (about 50x the
 * conversion itself). JavaScript runs one call at a time on a thread, so sharing is safe.
 */
const SCRATCH_F32 = new Float32Array(1);
const SCRATCH_BITS = new Uint32Array(SCRATCH_F32.buffer);

/** f32 -> f16 bits, round to nearest even (IEEE 754), with infinities and NaN. */
export function f32ToF16Bits(value: number): number {
  SCRATCH_F32[0] = value;
  return f32BitsToF16Bits(SCRATCH_BITS[0]);
}

/**
 * f16 bits of every value of `values` (what {@link f32ToF16Bits} gives for each), from
 * the f32 bits directly: a few integer operations per value, where a call per value
 * through a scratch float costs several times more (decoding an f32 checkpoint to f16,
 * `tensor(f32Data, shape, { dtype: 'f16' })`). `[n] -> [n]`.
 * @example f32ArrayToF16Bits(new Float32Array([1, -2, 0.1])); // Uint16Array [0x3c00, 0xc000, 0x2e66]
 */
export function f32ArrayToF16Bits(values: Float32Array): Uint16Array {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < words.length; i++) out[i] = f32BitsToF16Bits(words[i]);
  return out;
}

/** The f16 bits of the f32 whose bits are `x` (a u32): round to nearest even, infinities, NaN with its sign. */
function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** f16 bits -> number. */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
