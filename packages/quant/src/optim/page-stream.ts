/**
 * Streaming host-resident optimizer state through a small pool of device buffers.
 * Where device memory is apart from the host's (`capabilities.deviceMemory`: WebGPU has
 * no unified memory), a paged optimizer keeps the state of large parameters in host
 * pages and, each step, uploads a page into a device slot, runs its update, and reads
 * the slot back before the slot is reused. Page k+1 is uploaded and dispatched before
 * page k's read-back is awaited, so transfers overlap with compute when the pool has
 * two or more slots.
 */
import { type Backend, type DType, type Tensor, type TensorData, memory, tensor, withMemoryTag } from '@webpeft/tensor';

/** Options of the paged optimizers. */
export interface PagedOptions {
  /** Most device bytes the streamed state may hold at any time (the slot pool). */
  deviceBudgetBytes: number;
  /** Bytes of one page (default: half the budget, at most 64 MiB, so two slots overlap). */
  pageBytes?: number;
}

/** One page of state: what to upload, how to update it in a slot, where to put the result. */
export interface Page {
  /** Host data of the slot (`bytes` bytes). */
  upload(): Float32Array | Uint32Array;
  /** Runs the update of this page with its state in `slot`. */
  run(slot: Tensor): void;
  /** Takes the updated state (the slot's elements). */
  download(data: TensorData): void;
  bytes: number;
}

/** Statistics of the last paged step. */
export interface PagedStats {
  pages: number;
  slots: number;
  slotBytes: number;
  /** Largest `memory(backend).bytesByTag.optimizer` seen while streaming. */
  peakOptimizerBytes: number;
}

/** Validated page geometry: slot count and bytes per slot. */
export function pagePlan(options: PagedOptions, owner: string): { slots: number; slotBytes: number } {
  const budget = options.deviceBudgetBytes;
  if (!(budget > 0) || !Number.isFinite(budget)) throw new RangeError(`${owner}: deviceBudgetBytes must be a positive number, got ${budget}`);
  const pageBytes = Math.floor(options.pageBytes ?? Math.min(budget / 2, 64 * 2 ** 20));
  if (!(pageBytes > 0) || pageBytes > budget) throw new RangeError(`${owner}: pageBytes must be in (0, deviceBudgetBytes = ${budget}], got ${options.pageBytes}`);
  return { slots: Math.min(4, Math.floor(budget / pageBytes)), slotBytes: Math.floor(pageBytes / 4) * 4 };
}

/**
 * Streams `pages` through at most `slots` device tensors of at most `slotBytes` bytes
 * each (element type `dtype`, tagged 'optimizer', freed once read back). Resolves when
 * every page is back on the host.
 */
export async function streamPages(backend: Backend, pages: readonly Page[], slots: number, slotBytes: number, dtype: DType): Promise<PagedStats> {
  const tagged = () => memory(backend.name).bytesByTag.optimizer ?? 0;
  const stats: PagedStats = { pages: pages.length, slots: 0, slotBytes, peakOptimizerBytes: tagged() };
  if (pages.length === 0) return stats;
  const count = Math.min(slots, pages.length);
  stats.slots = count;
  const pending: (Promise<void> | null)[] = Array.from({ length: count }, () => null);
  const live = new Set<Tensor>();
  try {
    for (let k = 0; k < pages.length; k++) {
      const s = k % count;
      const prev = pending[s];
      if (prev) await prev;
      const page = pages[k];
      const data = page.upload();
      if (data.byteLength > slotBytes) throw new RangeError(`paged optimizer: page of ${data.byteLength} bytes exceeds the slot size ${slotBytes}`);
      const slot = withMemoryTag('optimizer', () => tensor(data, [data.length], { dtype, backend: backend.name }));
      live.add(slot);
      page.run(slot);
      stats.peakOptimizerBytes = Math.max(stats.peakOptimizerBytes, tagged());
      // The read-back is submitted now; only its completion is awaited before the slot is reused.
      pending[s] = slot.data().then((d) => {
        page.download(d);
        live.delete(slot);
        slot.dispose();
      });
    }
    await Promise.all(pending.filter((p) => p !== null));
  } finally {
    // After an error: let submitted read-backs settle, then free what they left.
    await Promise.allSettled(pending.filter((p) => p !== null));
    for (const t of live) t.dispose();
  }
  return stats;
}
