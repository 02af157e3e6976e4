import type { Storage } from './backend.js';

/** What {@link profile} measured for one op name. */
export interface OpProfile {
  /** Times the op ran (top-level calls, kernels composed by other kernels, composites' primitives). */
  calls: number;
  /** GPU dispatches its own kernel appended (not those of ops it ran through `ctx.run`). */
  dispatches: number;
  /** In-encoder buffer copies its kernel appended. */
  copies: number;
  /** Bytes of the storages its dispatches bound read-only, plus copy sources (binding sizes: an upper bound). */
  bytesRead: number;
  /** Bytes of the storages its dispatches bound writable, plus copy destinations. */
  bytesWritten: number;
  /** Host milliseconds spent in the op itself, excluding the ops it ran (self time: these add up). */
  hostMs: number;
}

/** Name under which work outside any op (a backward seed, a loader's writes) is counted. */
export const OUTSIDE_OPS = '(outside ops)';

interface Frame {
  entry: OpProfile;
  start: number;
  childMs: number;
}

/**
 * Counts ops, dispatches, copies, submits, bytes and host time while a profile runs.
 * The engine enters and exits a frame per op; backends report dispatches, copies and
 * submits, which are attributed to the innermost running op.
 */
export class ProfileRecorder {
  readonly ops = new Map<string, OpProfile>();
  dispatches = 0;
  copies = 0;
  submits = 0;
  /** Bind groups created (cache misses of the webgpu backend). */
  bindGroups = 0;
  /** Pipelines compiled (shape classes seen for the first time). */
  pipelines = 0;
  private readonly frames: Frame[] = [];

  private entry(name: string): OpProfile {
    let e = this.ops.get(name);
    if (!e) {
      e = { calls: 0, dispatches: 0, copies: 0, bytesRead: 0, bytesWritten: 0, hostMs: 0 };
      this.ops.set(name, e);
    }
    return e;
  }

  private current(): OpProfile {
    return this.frames.length > 0 ? this.frames[this.frames.length - 1].entry : this.entry(OUTSIDE_OPS);
  }

  /** Starts timing op `name` (nested inside the running op, if any). */
  enter(name: string): void {
    const entry = this.entry(name);
    entry.calls++;
    this.frames.push({ entry, start: performance.now(), childMs: 0 });
  }

  /** Ends the innermost op: its self time is its wall time less its children's. */
  exit(): void {
    const frame = this.frames.pop();
    if (!frame) return;
    const elapsed = performance.now() - frame.start;
    frame.entry.hostMs += elapsed - frame.childMs;
    const parent = this.frames[this.frames.length - 1];
    if (parent) parent.childMs += elapsed;
  }

  /** One dispatch binding `inputs` read-only and `outputs` writable. */
  dispatch(inputs: readonly Storage[], outputs: readonly Storage[]): void {
    const e = this.current();
    e.dispatches++;
    for (const s of inputs) e.bytesRead += s.byteSize;
    for (const s of outputs) e.bytesWritten += s.byteSize;
    this.dispatches++;
  }

  /** One in-encoder copy of `bytes` bytes. */
  copy(bytes: number): void {
    const e = this.current();
    e.copies++;
    e.bytesRead += bytes;
    e.bytesWritten += bytes;
    this.copies++;
  }

  /** One queue submit. */
  submit(): void {
    this.submits++;
  }
}
