import { type BackendName, memory } from '@webpeft/tensor';
import { afterAll, beforeAll } from 'vitest';

/** Every backend name a test may initialise; the check reads the ones that are. */
const BACKENDS: readonly BackendName[] = ['cpu', 'webgpu', 'meta'];

/**
 * Live tensor handles (one process-wide count) and live buffers and bytes of every
 * initialised backend, as `memory()` reports them.
 */
export interface LeakSnapshot {
  tensors: number;
  /** Per initialised backend: live buffers and bytes. */
  backends: Partial<Record<BackendName, { buffers: number; bytes: number }>>;
}

/** Counts now, over every backend that has been initialised (others are absent). */
export function leakSnapshot(): LeakSnapshot {
  let tensors = 0;
  const backends: LeakSnapshot['backends'] = {};
  for (const name of BACKENDS) {
    let m;
    try {
      m = memory(name);
    } catch {
      continue; // not initialised in this file: nothing of it can be live
    }
    tensors = m.liveTensors;
    backends[name] = { buffers: m.liveBuffers, bytes: m.liveBytes };
  }
  return { tensors, backends };
}

/**
 * What grew from `before` to `after` (live tensors; live buffers of each backend), one
 * phrase per count, or an empty list. A backend initialised in between starts from 0;
 * counts that went down are fine (a test may dispose what an earlier one kept).
 */
export function leakGrowth(before: LeakSnapshot, after: LeakSnapshot): string[] {
  const grown: string[] = [];
  if (after.tensors > before.tensors) grown.push(`live tensors ${before.tensors} -> ${after.tensors} (+${after.tensors - before.tensors})`);
  for (const name of BACKENDS) {
    const a = after.backends[name];
    if (!a) continue;
    const b = before.backends[name] ?? { buffers: 0, bytes: 0 };
    if (a.buffers > b.buffers) {
      grown.push(`${name} live buffers ${b.buffers} -> ${a.buffers} (+${a.buffers - b.buffers}, ${a.bytes - b.bytes} bytes)`);
    }
  }
  return grown;
}

/** Thrown by {@link expectNoLeakSince} when a test left tensors or buffers alive. */
export class LeakError extends Error {
  override name = 'LeakError';
}

/**
 * Throws a {@link LeakError} naming every count that grew since `before` (see
 * {@link leakGrowth}); `label` says what ran (a test name).
 */
export function expectNoLeakSince(before: LeakSnapshot, label: string): void {
  const grown = leakGrowth(before, leakSnapshot());
  if (grown.length === 0) return;
  throw new LeakError(
    `${label} leaked: ${grown.join('; ')}. Dispose what the test creates (tidy, dispose, model.dispose()), ` +
      'or, where tests deliberately share state, call keepsStateAcrossTests(reason) in that file or describe block.',
  );
}

let optOutDepth = 0;

/**
 * Turns the per-test leak check (the `setupFiles` entry `leak-check-setup.ts`) off for
 * the rest of the calling file or `describe` block, for tests that deliberately keep
 * tensors alive from one test to the next (a model built in one test and used by the
 * following ones). Call it at the top level of the file or block, never inside a test.
 * `reason` says what is kept and where it is freed; it is required so that no opt-out
 * goes unexplained.
 * @example keepsStateAcrossTests('one model is trained across the tests below; afterAll disposes it');
 */
export function keepsStateAcrossTests(reason: string): void {
  if (reason.trim().length === 0) throw new Error('keepsStateAcrossTests: give the reason the tests share state');
  beforeAll(() => {
    optOutDepth++;
  });
  afterAll(() => {
    optOutDepth--;
  });
}

/** Whether the current test runs inside a {@link keepsStateAcrossTests} file or block. */
export function leakCheckOptedOut(): boolean {
  return optOutDepth > 0;
}

let knownLeakReason: string | null = null;

/**
 * Marks the running test as leaking because of a known defect outside the test (in a
 * package's sources) that is being fixed elsewhere: the per-test check then expects the
 * leak instead of failing on it, and fails the test once it no longer leaks, so the mark
 * is removed together with the defect. Call it inside the test; `reason` names the defect.
 * @example knownLeak('Module.dispose() does not reach Linear4bit quant states');
 */
export function knownLeak(reason: string): void {
  if (reason.trim().length === 0) throw new Error('knownLeak: name the defect that leaks');
  knownLeakReason = reason;
}

/** @internal The current test's {@link knownLeak} reason (null when unmarked), cleared by reading. */
export function takeKnownLeak(): string | null {
  const r = knownLeakReason;
  knownLeakReason = null;
  return r;
}
