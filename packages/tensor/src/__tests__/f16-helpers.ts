/**
 * Helpers of the f16 suites: f16 bits from host values, and comparisons in f16 ulps
 * (the distance between two f16 values counted in representable steps).
 */
import { type Tensor, f16BitsToF32, getBackend } from '@webpeft/tensor';
import { backendsUnderTest } from '@webpeft/test-utils';
import { expect } from 'vitest';

/** Position of f16 bits `h` on the ordered line of f16 values (-0 and +0 both 0). */
function ordinal(h: number): number {
  return h & 0x8000 ? -(h & 0x7fff) : h;
}

/** Distance in f16 ulps between bit patterns `a` and `b` (0 when both are NaN, Infinity when one is). */
export function ulpDistance(a: number, b: number): number {
  const an = Number.isNaN(f16BitsToF32(a));
  const bn = Number.isNaN(f16BitsToF32(b));
  if (an || bn) return an && bn ? 0 : Infinity;
  return Math.abs(ordinal(a) - ordinal(b));
}

/** Reads an f16 tensor's bits. */
export async function f16Bits(t: Tensor): Promise<Uint16Array> {
  expect(t.dtype, 'dtype').toBe('f16');
  const d = await t.data();
  return d as Uint16Array;
}

/**
 * Asserts that two f16 bit arrays are at most `maxUlps` apart everywhere, or (with
 * `atol`) at most `atol` apart in value; returns the largest ulp distance.
 */
export function expectUlpsWithin(actual: Uint16Array, expected: Uint16Array, maxUlps: number, label: string, atol = 0): number {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const d = ulpDistance(actual[i], expected[i]);
    if (d > maxUlps && Math.abs(f16BitsToF32(actual[i]) - f16BitsToF32(expected[i])) <= atol) continue;
    if (d > worst) {
      worst = d;
      at = i;
    }
  }
  if (worst > maxUlps) {
    const msg = `${label}: ${worst} f16 ulps at ${at}: ${f16BitsToF32(actual[at])} vs ${f16BitsToF32(expected[at])} (bits ${actual[at].toString(16)} vs ${expected[at].toString(16)})`;
    expect.fail(msg);
  }
  return worst;
}

/**
 * Whether the webgpu backend runs here and its adapter has `shader-f16` (lavapipe and
 * Dawn on GPUs do; an adapter without it refuses f16 tensors, which the f16 suites then
 * check instead of comparing kernels).
 */
export function webgpuHasF16(): boolean {
  return backendsUnderTest().includes('webgpu') && getBackend('webgpu').capabilities.f16;
}
