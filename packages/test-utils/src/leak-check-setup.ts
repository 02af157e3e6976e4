/**
 * vitest `setupFiles` entry (node and browser projects, see vitest.config.ts): around
 * every test, records live tensors and the live buffers of every initialised backend,
 * and fails the test when they grew. The check runs after the file's own `afterEach`
 * hooks (vitest runs them in reverse order of registration, and this file registers
 * first), so per-test cleanup there counts. Buffer counts change synchronously at
 * `dispose()` (webgpu returns the buffer to its pool at once), so nothing is awaited.
 * Opt out per file or `describe` block with `keepsStateAcrossTests(reason)`.
 */
import { afterEach, beforeEach } from 'vitest';
import { type LeakSnapshot, expectNoLeakSince, leakCheckOptedOut, leakSnapshot } from './leak-check.js';

let before: LeakSnapshot | null = null;

beforeEach(() => {
  before = leakCheckOptedOut() ? null : leakSnapshot();
});

afterEach((context) => {
  const snapshot = before;
  before = null;
  if (snapshot) expectNoLeakSince(snapshot, `test '${context.task.name}'`);
});
