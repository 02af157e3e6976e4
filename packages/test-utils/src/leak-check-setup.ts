/**
 * vitest `setupFiles` entry (node and browser projects, see vitest.config.ts): around
 * every test, records live tensors and the live buffers of every initialised backend,
 * and fails the test when they grew. The check is the test's first `onTestFinished`
 * callback, and those run last-registered-first after every `afterEach` hook, so cleanup
 * in `afterEach` and in the test's own `onTestFinished` callbacks counts. Buffer counts
 * change synchronously at `dispose()` (webgpu returns the buffer to its pool at once), so
 * nothing is awaited. Opt out per file or `describe` block with `keepsStateAcrossTests(reason)`;
 * a test that leaks through a known defect elsewhere is marked with `knownLeak(reason)`.
 */
import { beforeEach } from 'vitest';
import { LeakError, expectNoLeakSince, leakCheckOptedOut, leakGrowth, leakSnapshot, takeKnownLeak } from './leak-check.js';

beforeEach((context) => {
  takeKnownLeak();
  if (leakCheckOptedOut()) return;
  const before = leakSnapshot();
  context.onTestFinished(() => {
    const known = takeKnownLeak();
    const label = `test '${context.task.name}'`;
    if (known === null) return expectNoLeakSince(before, label);
    if (leakGrowth(before, leakSnapshot()).length === 0) {
      throw new LeakError(`${label} no longer leaks: remove its knownLeak('${known}') call`);
    }
  });
});
