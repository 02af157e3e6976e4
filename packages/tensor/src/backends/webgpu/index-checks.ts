import type { Storage } from '../../backend.js';
import { IndexError } from '../../errors.js';

/**
 * What a device-side index check guards: the op, the shape indexed into, the exclusive
 * bound and what it counts. Shown in the {@link IndexError} when a kernel flags it.
 */
export interface IndexCheck {
  /** Op name for the message (`gather`, `scatterAdd`, `crossEntropy`). */
  readonly op: string;
  /** Shape of the tensor indexed into. */
  readonly shape: readonly number[];
  /** Exclusive upper bound of a valid index (`rows`, `classes`). */
  readonly limit: number;
  /** What the bound counts (`rows`, `classes`). */
  readonly what: string;
  /** Extra message text (e.g. `; ignoreIndex -100`). */
  readonly detail?: string;
}

/** u32 words per check slot: claimed flag, position, value (i32 bits), count of bad positions. */
export const SLOT_WORDS = 4;
/** Bytes per check slot. */
export const SLOT_BYTES = SLOT_WORDS * 4;
/** Distinct checks between two readbacks; later ones share the last slot. */
export const MAX_SLOTS = 256;
/** Most outputs remembered per slot (marked invalid when the slot flags). */
const MAX_OUTPUTS_PER_SLOT = 4096;
/** Most storages whose dependence on a check is tracked between two readbacks. */
const MAX_TRACKED = 1 << 16;

/**
 * WGSL of the error buffer at `binding` and `report_bad_index(slot, position, value)`.
 * The first thread to claim a slot stores its position and value, so the pair is
 * consistent; the others only count. Slots are zeroed by the host after each readback.
 */
export function indexCheckWgsl(binding: number): string {
  return `@group(0) @binding(${binding}) var<storage, read_write> index_errors: array<atomic<u32>>;
fn report_bad_index(slot: u32, pos: u32, value: i32) {
  let base = slot * ${SLOT_WORDS}u;
  atomicAdd(&index_errors[base + 3u], 1u);
  loop {
    let r = atomicCompareExchangeWeak(&index_errors[base], 0u, 1u);
    if (r.exchanged) {
      atomicStore(&index_errors[base + 1u], pos);
      atomicStore(&index_errors[base + 2u], bitcast<u32>(value));
      break;
    }
    if (r.old_value != 0u) { break; }
  }
}`;
}

interface Slot {
  check: IndexCheck;
  outputs: Storage[];
}

/** What one readback took from the table: the slots to decode from the copied words. */
export interface CheckSnapshot {
  readonly slots: readonly Slot[];
  readonly byteLength: number;
}

/**
 * Host side of the device index checks: assigns slots to distinct checks since the last
 * readback (same op, shape and bound share a slot, so a training loop uses a few) and
 * turns the words copied back into an {@link IndexError}.
 */
export class IndexCheckTable {
  private readonly byKey = new Map<string, number>();
  private slots: Slot[] = [];
  /** Slots each guarded (or derived) storage depends on, since the last readback. */
  private readonly slotsOf = new Map<Storage, number[]>();

  /** Slot for `check` (assigning one if new). */
  slotFor(check: IndexCheck): number {
    const key = `${check.op}|${check.shape.join(',')}|${check.limit}|${check.what}|${check.detail ?? ''}`;
    let slot = this.byKey.get(key);
    if (slot === undefined) {
      if (this.slots.length < MAX_SLOTS) {
        slot = this.slots.length;
        this.slots.push({ check, outputs: [] });
      } else {
        slot = MAX_SLOTS - 1;
        const shared = this.slots[slot].check;
        this.slots[slot].check = { ...shared, op: `${shared.op} (or another of the indexing ops since the last readback)` };
      }
      this.byKey.set(key, slot);
    }
    return slot;
  }

  /**
   * Remembers the outputs of a dispatch, to invalidate them if a check they depend on
   * flags: those of a dispatch guarded by `slot`, and those computed from such outputs
   * (so a sum over a bad gather does not read back as a finite value). Free while no
   * checking kernel ran since the last readback.
   */
  recordOutputs(slot: number | undefined, inputs: readonly Storage[], outputs: readonly Storage[]): void {
    if (this.slots.length === 0) return;
    let list: number[] | undefined = slot === undefined ? undefined : [slot];
    for (const s of inputs) {
      const from = this.slotsOf.get(s);
      if (!from) continue;
      list = list ? [...new Set([...list, ...from])] : from;
    }
    if (!list) return;
    for (const d of list) {
      const outs = this.slots[d].outputs;
      if (outs.length < MAX_OUTPUTS_PER_SLOT) outs.push(...outputs);
    }
    if (this.slotsOf.size < MAX_TRACKED) for (const o of outputs) this.slotsOf.set(o, list);
  }

  /** Bytes of the error buffer in use (0 when nothing that checks was dispatched). */
  get byteLength(): number {
    return this.slots.length * SLOT_BYTES;
  }

  /** Takes the slots in use and starts afresh (the caller copies then zeroes the buffer). */
  take(): CheckSnapshot {
    const snap = { slots: this.slots, byteLength: this.byteLength };
    this.slots = [];
    this.byKey.clear();
    this.slotsOf.clear();
    return snap;
  }
}

/**
 * The first flagged slot of `words` (dispatch order of first use) as an IndexError, or
 * null. Outputs guarded by flagged slots are passed to `invalidate`.
 */
export function decodeChecks(snap: CheckSnapshot, words: Uint32Array, invalidate: (s: Storage, e: Error) => void): IndexError | null {
  let first: IndexError | null = null;
  for (let i = 0; i < snap.slots.length; i++) {
    const base = i * SLOT_WORDS;
    const count = words[base + 3];
    if (words[base] === 0 && count === 0) continue;
    const { check, outputs } = snap.slots[i];
    const more = count > 1 ? `; ${count - 1} other bad position(s)` : '';
    const error = new IndexError(check.op, check.shape, words[base + 2] | 0, words[base + 1], check.limit, check.what, `${check.detail ?? ''}${more}`);
    for (const s of outputs) invalidate(s, error);
    first ??= error;
  }
  return first;
}
