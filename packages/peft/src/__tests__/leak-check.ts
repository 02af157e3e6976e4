import type { BackendName } from '@webpeft/tensor';
import { backendsUnderTest, liveCounts } from '@webpeft/test-utils';
import { afterEach, beforeEach, expect } from 'vitest';

/** Live tensors (all backends) and live buffers/bytes per backend under test. */
function snapshot(): Record<string, unknown> {
  let backends: BackendName[];
  try {
    backends = backendsUnderTest();
  } catch {
    // Files that init only the cpu (or meta) backend themselves.
    backends = ['cpu'];
  }
  const out: Record<string, unknown> = {};
  for (const b of backends) {
    try {
      out[b] = liveCounts(b);
    } catch {
      // No backend was initialised (a file of pure config tests): nothing can be live.
      out[b] = 'not initialised';
    }
  }
  return out;
}

const owned: { dispose(): void }[] = [];

/**
 * Marks `x` (a tensor, model or anything with `dispose()`) as made by the test: it is
 * disposed when the test ends, before the leak check. Returns `x`. What the package
 * makes on its own and forgets is not owned, so the check still finds it.
 */
export function own<T extends { dispose(): void }>(x: T): T {
  owned.push(x);
  return x;
}

/**
 * Registers a check around every test of the file: once the test's own tensors and
 * models ({@link own}) are disposed, nothing it made is still live.
 */
export function checkLeaksPerTest(): void {
  let before: Record<string, unknown> = {};
  beforeEach(() => {
    owned.length = 0;
    before = snapshot();
  });
  afterEach(() => {
    for (const x of owned.splice(0).reverse()) x.dispose();
    expect(snapshot(), 'live tensors and buffers after the test').toEqual(before);
  });
}
