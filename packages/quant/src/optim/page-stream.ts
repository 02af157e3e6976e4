/**
 * Streaming host-resident optimizer state through a small pool of device buffers.
 * WebGPU has no unified memory, so a paged optimizer keeps the state of large
 * parameters in host pages and, each step, writes a page into a free device slot
 * (`queue.writeBuffer`), runs its update, and reads the slot back (`mapAsync`) before
 * the slot is reused. Page k+1 is uploaded and dispatched before page k's read-back is
 * awaited, so transfers overlap with compute when the pool has two or more slots.
 */
import { type DType, type Tensor, type WebGpuBackend, _engine, memory, withMemoryTag } from '@webpeft/tensor';

/** Options of the paged optimizers. */
export interface PagedOptions {
  /** Most device bytes the streamed state may hold at any time (the slot pool). */
  deviceBudgetBytes: number;
  /** Bytes of one page (default: half the budget, at most 64 MiB, so two slots overlap). */
  pageBytes?: number;
}

/** One page of state: what to upload, how to update it in a slot, where to put the result. */
export interface Page {
  /** Host data to write at the start of the slot. */
  upload(): Float32Array | Uint32Array;
  /** Encodes the update of this page with its state in `slot`. */
  run(slot: Tensor): void;
  /** Takes the updated state (the first `bytes` bytes of the slot). */
  download(data: ArrayBuffer): void;
  bytes: number;
}

/** Statistics of the last paged step. */
export interface PagedStats {
  pages: number;
  slots: number;
  slotBytes: number;
  /** Largest `memory('webgpu').bytesByTag.optimizer` seen while streaming. */
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

function tagged(): number {
  return memory('webgpu').bytesByTag.optimizer ?? 0;
}

/**
 * Streams `pages` through `slots` device buffers of `slotBytes` bytes (element type
 * `dtype`, tagged 'optimizer', freed at the end). Resolves when every page is back on
 * the host.
 */
export async function streamPages(backend: WebGpuBackend, pages: readonly Page[], slots: number, slotBytes: number, dtype: DType): Promise<PagedStats> {
  const stats: PagedStats = { pages: pages.length, slots: 0, slotBytes, peakOptimizerBytes: tagged() };
  if (pages.length === 0) return stats;
  const count = Math.min(slots, pages.length);
  const pool: Tensor[] = Array.from({ length: count }, () =>
    withMemoryTag('optimizer', () => _engine.makeTensor(backend, [slotBytes / 4], dtype, 'paged optimizer slot')),
  );
  stats.slots = count;
  const pending: (Promise<void> | null)[] = pool.map(() => null);
  try {
    for (let k = 0; k < pages.length; k++) {
      const s = k % count;
      const prev = pending[s];
      if (prev) await prev;
      const page = pages[k];
      const storage = pool[s].liveStorage('paged optimizer');
      backend.write(storage, page.upload());
      page.run(pool[s]);
      stats.peakOptimizerBytes = Math.max(stats.peakOptimizerBytes, tagged());
      // Encodes the copy to a staging buffer and submits now; only the mapping is awaited later.
      pending[s] = backend.read(storage, page.bytes).then((data) => page.download(data));
    }
    await Promise.all(pending.filter((p) => p !== null));
  } finally {
    for (const t of pool) t.dispose();
  }
  return stats;
}
