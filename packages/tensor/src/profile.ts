import { engine } from './engine.js';
import { type OpProfile, OUTSIDE_OPS, ProfileRecorder } from './profile-recorder.js';

export { type OpProfile, OUTSIDE_OPS };

/** What {@link profile} returns: `fn`'s result and the counts of the work it recorded. */
export interface Profile<T> {
  /** What `fn` returned (awaited). */
  result: T;
  /**
   * Per op name (`Add`, `MatMul`, `AdamWUpdate`, ...): calls, dispatches, copies, bytes
   * and self host time. Work outside any op is under {@link OUTSIDE_OPS}.
   */
  ops: Readonly<Record<string, OpProfile>>;
  /** GPU dispatches appended in all (0 on cpu, whose kernels are host loops). */
  dispatches: number;
  /** In-encoder buffer copies appended in all. */
  copies: number;
  /** Queue submits, including the one that closes the profile. */
  submits: number;
  /** Bind groups the webgpu backend created (its cache's misses: each costs a driver call). */
  bindGroups: number;
  /** Pipelines compiled (new shape classes: shader compilation). */
  pipelines: number;
  /** Sum of the ops' bytes read (binding sizes, as far as the backend knows). */
  bytesRead: number;
  /** Sum of the ops' bytes written. */
  bytesWritten: number;
  /** Wall milliseconds of `fn` on the host (GPU work is not waited for unless `fn` syncs). */
  hostMs: number;
}

/**
 * Runs `fn` and counts what it ran: per op name the calls, GPU dispatches, copies,
 * bytes bound and host time (self time, so the ops' times add up), and in all the
 * dispatches and submits. Pending work is submitted before `fn` starts and after it
 * ends, so the submits counted are `fn`'s own. Works on every backend (cpu and meta
 * report ops and host time; their kernels dispatch nothing). Profiles do not nest, and
 * ops that other code runs while an async `fn` awaits are counted too.
 *
 * The cost when no profile runs is one null check per op.
 * @example
 * const p = await profile(() => { const y = add(x, 1); y.dispose(); });
 * p.dispatches;          // 1
 * p.ops.Add.dispatches;  // 1
 */
export async function profile<T>(fn: () => T | Promise<T>): Promise<Profile<T>> {
  if (engine.profiler) throw new Error('profile: another profile() is running; profiles do not nest');
  engine.flushAll();
  const recorder = new ProfileRecorder();
  engine.profiler = recorder;
  const start = performance.now();
  let result: T;
  let hostMs: number;
  try {
    result = await fn();
    hostMs = performance.now() - start;
    engine.flushAll();
  } finally {
    engine.profiler = null;
  }
  const ops: Record<string, OpProfile> = {};
  let bytesRead = 0;
  let bytesWritten = 0;
  for (const [name, e] of recorder.ops) {
    ops[name] = e;
    bytesRead += e.bytesRead;
    bytesWritten += e.bytesWritten;
  }
  return { result, ops, dispatches: recorder.dispatches, copies: recorder.copies, submits: recorder.submits, bindGroups: recorder.bindGroups, pipelines: recorder.pipelines, bytesRead, bytesWritten, hostMs };
}
