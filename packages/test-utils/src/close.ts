import { expect } from 'vitest';

/** Largest `|a - e| / max(|e|, atol/rtol)` over the arrays (0 when equal). */
export function maxRelError(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-6): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), atol);
    if (err > worst || Number.isNaN(err)) worst = Number.isNaN(err) ? Infinity : err;
  }
  return worst;
}

/**
 * Asserts `|actual - expected| <= atol + rtol * |expected|` elementwise (NaN matches
 * NaN), reporting the worst element, its index and the count of failures.
 */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { rtol = 1e-5, atol = 1e-6, label = '' }: { rtol?: number; atol?: number; label?: string } = {},
): void {
  expect(actual.length, `${label} length`).toBe(expected.length);
  let failures = 0;
  let worstIndex = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    if (a === e) continue;
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0)) {
      failures++;
      if (!(excess <= worstExcess)) {
        worstExcess = Number.isNaN(excess) ? Infinity : excess;
        worstIndex = i;
      }
    }
  }
  if (failures > 0) {
    expect.fail(
      `${label}: ${failures}/${expected.length} elements differ beyond atol=${atol}, rtol=${rtol}; worst at [${worstIndex}]: actual ${actual[worstIndex]}, expected ${expected[worstIndex]}`,
    );
  }
}
