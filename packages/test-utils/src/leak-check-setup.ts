/**
 * vitest `setupFiles` entry (node and browser projects, see vitest.config.ts): around
 * every test, records live tensors and the live buffers of every initialised backend,
 * and fails the test when they grew. The check is the test's first `onTestFinished`
 * callback, and those run last-registered-first after every `afterEach` hook, so cleanup
 * in `afterEach` and in the test's own `onTestFinished` callbacks counts. Buffer counts
 * change synchronously at `dispose()` (webgpu returns the buffer to its pool at once), so
 * nothing is awaited. Opt out per file or `describe` block with `keepsStateAcrossTests(reason)`.
 */
import { beforeEach } from 'vitest';
import { expectNoLeakSince, leakCheckOptedOut, leakSnapshot } from './leak-check.js';

beforeEach((context) => {
  if (leakCheckOptedOut()) return;
  const before = leakSnapshot();
  context.onTestFinished(() => expectNoLeakSince(before, `test '${context.task.name}'`));
});
