/**
 * The cpu backend's f16 semantics against float64 references written here: rounding
 * f32 -> f16 to nearest even (with subnormals, the largest finite value 65504, overflow
 * to infinity and NaN), and f16 kernels that widen to f32, accumulate wide and round
 * each output once (checked on matmul, sum and softmax).
 */
import { f16BitsToF32, f32ArrayToF16Bits, f32ToF16Bits, matmul, softmax, sum, tensor } from '@webpeft/tensor';
import { initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { f16Bits } from './f16-helpers.js';

beforeAll(async () => {
  await initBackends();
});

/** Every finite f16 value, by bits, as float64 (from the format's definition). */
function f16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  return e === 0 ? sign * m * 2 ** -24 : sign * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Round-to-nearest-even in float64 by search over the f16 grid: the nearest finite f16
 * value, ties to the one with an even mantissa; beyond 65504 + half an ulp (65520) the
 * result is infinity.
 */
function referenceF16(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a >= 65520) return x > 0 ? 0x7c00 : 0xfc00;
  let best = 0;
  let bestErr = Infinity;
  // The magnitude grid is monotone in the bits: scan the two candidates around a.
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (f16Value(mid) <= a) lo = mid;
    else hi = mid - 1;
  }
  for (const c of [lo, Math.min(lo + 1, 0x7bff)]) {
    const err = Math.abs(f16Value(c) - a);
    if (err < bestErr || (err === bestErr && (c & 1) === 0)) {
      best = c;
      bestErr = err;
    }
  }
  const signBit = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  return signBit | best;
}

describe('f32 -> f16 rounding', () => {
  it('known bit patterns', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [65520, 0x7c00],
      [-1e9, 0xfc00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: even is 0
      [3 * 2 ** -25, 0x0002], // tie between subnormals 1 and 2: even is 2
      [1023 * 2 ** -24, 0x03ff],
      [1 + 2 ** -11, 0x3c00], // tie: even mantissa 0
      [1 + 3 * 2 ** -11, 0x3c02], // tie: even mantissa 2
      [0.1, 0x2e66],
    ];
    for (const [v, bits] of cases) expect(f32ToF16Bits(v), `${v}`).toBe(bits);
    // The bulk conversion gives the same bits (from the f32 bits), read through an offset view.
    const values = new Float32Array([7, ...cases.map(([v]) => v)]).subarray(1);
    expect(Array.from(f32ArrayToF16Bits(values))).toEqual(cases.map(([, bits]) => bits));
    expect(f32ArrayToF16Bits(new Float32Array([NaN, -NaN])).every((h) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0)).toBe(true);
    expect(f32ToF16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(f32ToF16Bits(NaN) & 0x3ff).not.toBe(0);
    expect(Number.isNaN(f16BitsToF32(0x7e00))).toBe(true);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
  });

  it('random f32 values over the whole f16 range match the float64 reference', () => {
    const f = new Float32Array(1);
    let checked = 0;
    for (let i = 0; i < 20000; i++) {
      // Log-uniform magnitudes from below the smallest subnormal to beyond the largest finite value.
      const mag = 2 ** (-27 + (44 * ((i * 7919) % 20000)) / 20000);
      f[0] = (i % 2 ? -1 : 1) * mag * (1 + ((i * 104729) % 1000) / 1000);
      expect(f32ToF16Bits(f[0]), `${f[0]}`).toBe(referenceF16(f[0]));
      checked++;
    }
    // Exact ties: midpoints between neighbouring f16 values (representable in f32).
    for (let b = 0; b < 0x7bff; b += 37) {
      const mid = (f16Value(b) + f16Value(b + 1)) / 2;
      expect(f32ToF16Bits(mid), `tie ${mid}`).toBe(referenceF16(mid));
      checked++;
    }
    expect(checked).toBeGreaterThan(20000);
  });
});

describe('cpu f16 kernels: widen, accumulate wide, round once', () => {
  it('matmul equals the float64 product of the f16 values rounded to f16', async () => {
    const [m, k, n] = [5, 37, 6];
    const a = tensor(randomArray(m * k, 31, -2, 2), [m, k], { backend: 'cpu', dtype: 'f16' });
    const b = tensor(randomArray(k * n, 32, -2, 2), [k, n], { backend: 'cpu', dtype: 'f16' });
    const av = Array.from(await f16Bits(a), f16BitsToF32);
    const bv = Array.from(await f16Bits(b), f16BitsToF32);
    const y = matmul(a, b);
    const got = await f16Bits(y);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += av[i * k + p] * bv[p * n + j];
        // The cpu kernel rounds its float64 sum to f32, then to f16: at most that double rounding apart.
        const ref = referenceF16(s);
        const viaF32 = referenceF16(Math.fround(s));
        expect([ref, viaF32], `y[${i},${j}]`).toContain(got[i * n + j]);
      }
    }
    for (const t of [a, b, y]) t.dispose();
  });

  it('sum and softmax', async () => {
    const x = tensor(randomArray(3 * 50, 33, -3, 3), [3, 50], { backend: 'cpu', dtype: 'f16' });
    const xv = Array.from(await f16Bits(x), f16BitsToF32);
    const s = sum(x, -1);
    const sm = softmax(x);
    const sv = await f16Bits(s);
    const smv = await f16Bits(sm);
    for (let r = 0; r < 3; r++) {
      const row = xv.slice(r * 50, r * 50 + 50);
      const total = row.reduce((p, v) => p + v, 0);
      expect([referenceF16(total), referenceF16(Math.fround(total))]).toContain(sv[r]);
      const mx = Math.max(...row);
      const z = row.reduce((p, v) => p + Math.exp(v - mx), 0);
      for (let j = 0; j < 50; j++) {
        const p = Math.exp(row[j] - mx) / z;
        expect([referenceF16(p), referenceF16(Math.fround(p))], `softmax[${r},${j}]`).toContain(smv[r * 50 + j]);
      }
    }
    for (const t of [x, s, sm]) t.dispose();
  });
});
