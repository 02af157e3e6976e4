/**
 * The host decoders that turn checkpoint floats into f16 bits (and bf16 into f32) give
 * the bits of a float64 reference written here: round to nearest even from the exact
 * value, every bf16 code and seeded random f32 bit patterns of every exponent, with the
 * range check of the generic path (a finite value beyond +-65504 names the element).
 */
import { SeededRandom } from '@webpeft/test-utils';
import { describe, expect, it } from 'vitest';
import { bf16ToF16Checked, f32ToF16Checked, toF16Checked } from '../io/f16-range.js';
import { bf16ArrayToF32 } from '../io/float-bits.js';

/** The exact value of bf16 code `b` (sign, 8-bit exponent, 7-bit mantissa), NaN for NaNs. */
function bf16Value(b: number): number {
  const sign = b & 0x8000 ? -1 : 1;
  const exp = (b >>> 7) & 0xff;
  const mant = b & 0x7f;
  if (exp === 0xff) return mant ? NaN : sign * Infinity;
  if (exp === 0) return sign * mant * 2 ** -133;
  return sign * (1 + mant / 128) * 2 ** (exp - 127);
}

/** The exact value of f32 bit pattern `x`, NaN for NaNs. */
function f32Value(x: number): number {
  const sign = x & 0x80000000 ? -1 : 1;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant ? NaN : sign * Infinity;
  if (exp === 0) return sign * mant * 2 ** -149;
  return sign * (1 + mant / 2 ** 23) * 2 ** (exp - 127);
}

/** f16 bits of finite or infinite `v`, rounded to nearest even in float64 (every step exact). */
function f16Reference(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === Infinity) return sign | 0x7c00;
  let e = -14;
  while (2 ** (e + 1) <= a) e++;
  const q = a / 2 ** (e - 10);
  let r = Math.floor(q);
  if (q - r > 0.5 || (q - r === 0.5 && r % 2 === 1)) r++;
  const bits = r < 1024 ? r : ((e + 15) << 10) + r - 1024;
  return sign | Math.min(bits, 0x7c00);
}

describe('bf16ToF16Checked', () => {
  it('gives the reference f16 of every in-range bf16 code and NaN for NaN', () => {
    const codes: number[] = [];
    for (let b = 0; b < 0x10000; b++) {
      const v = bf16Value(b);
      if (Number.isNaN(v) || !Number.isFinite(v) || Math.abs(v) < 65520) codes.push(b);
    }
    const out = bf16ToF16Checked(Uint16Array.from(codes), 'w');
    // Mismatches are collected (one expect per code would take most of a second).
    const wrong: string[] = [];
    codes.forEach((b, i) => {
      const v = bf16Value(b);
      const ok = Number.isNaN(v) ? (out[i] & 0x7c00) === 0x7c00 && (out[i] & 0x3ff) !== 0 : out[i] === f16Reference(v);
      if (!ok) wrong.push(`bf16 0x${b.toString(16)} = ${v}: 0x${out[i].toString(16)}`);
    });
    expect(wrong).toEqual([]);
  });

  it('refuses a finite value beyond f16 range, naming the element and the value', () => {
    // 0x4780 is 65536, 0xc77f is -65280 (rounds to -65280: in range), 0xff7f is bf16's lowest.
    expect(bf16ToF16Checked(new Uint16Array([0xc77f]), 'w')[0]).toBe(f16Reference(-65280));
    expect(() => bf16ToF16Checked(new Uint16Array([0x3f80, 0x4780]), "rawToTensor 'w'")).toThrow(/'w': element 1 is 65536, beyond f16's range/);
    expect(() => bf16ToF16Checked(new Uint16Array([0xff7f]), 'w')).toThrow(RangeError);
    expect(Array.from(bf16ToF16Checked(new Uint16Array([0x7f80, 0xff80]), 'w'))).toEqual([0x7c00, 0xfc00]);
  });
});

describe('f32ToF16Checked', () => {
  it('matches the reference and the generic path on seeded f32 bit patterns of every exponent', () => {
    const rng = new SeededRandom(7);
    const words = new Uint32Array(20000);
    for (let i = 0; i < words.length; i++) {
      // Exponents spread over f16's whole range and past it on both sides, mantissas random.
      const exp = 100 + Math.floor(rng.next() * 43);
      words[i] = ((rng.next() < 0.5 ? 1 : 0) << 31) | (exp << 23) | Math.floor(rng.next() * 2 ** 23);
    }
    // Ties between f16 neighbours, normal and subnormal, and the range's edges.
    const edges = [0, 0x80000000, 0x00000001, 0x807fffff, 0x3f801000, 0x3f803000, 0x33000000, 0x33c00000, 0x477fefff, 0x477fe000, 0x7f800000, 0xff800000];
    const values = new Float32Array(new Uint32Array([...words.filter((x) => Math.abs(f32Value(x)) < 65520), ...edges]).buffer);
    const out = f32ToF16Checked(values, 'w');
    const wrong = Array.from(values).flatMap((v, i) => (out[i] === f16Reference(v) ? [] : [`${v}: 0x${out[i].toString(16)}`]));
    expect(wrong).toEqual([]);
    expect(Array.from(out)).toEqual(Array.from(toF16Checked(values, 'w')));
    const nan = f32ToF16Checked(new Float32Array([NaN]), 'w')[0];
    expect((nan & 0x7c00) === 0x7c00 && (nan & 0x3ff) !== 0).toBe(true);
  });

  it('refuses a finite value beyond f16 range as the generic path does', () => {
    // 65519.996 (0x477fefff) rounds to 65504; 65520 (0x477ff000) is the first that overflows.
    const bad = new Float32Array([1, -65520]);
    expect(() => f32ToF16Checked(bad, "rawToTensor 'w'")).toThrow(/'w': element 1 is -65520, beyond f16's range/);
    expect(() => toF16Checked(bad, "rawToTensor 'w'")).toThrow(/'w': element 1 is -65520, beyond f16's range/);
    expect(() => f32ToF16Checked(new Float32Array([3.4e38]), 'w')).toThrow(RangeError);
  });

  it('reads a view at an offset into a larger buffer', () => {
    const whole = new Float32Array([5, 1, 0.1, -2]);
    expect(Array.from(f32ToF16Checked(whole.subarray(1, 3), 'w'))).toEqual([0x3c00, 0x2e66]);
  });
});

describe('bf16ArrayToF32', () => {
  it('gives the exact value of every bf16 code', () => {
    const codes = new Uint16Array(0x10000).map((_, b) => b);
    const out = bf16ArrayToF32(codes);
    const wrong = Array.from(codes).filter((b, i) => {
      const v = bf16Value(b);
      return Number.isNaN(v) ? !Number.isNaN(out[i]) : !Object.is(out[i], v);
    });
    expect(wrong).toEqual([]);
  });
});
