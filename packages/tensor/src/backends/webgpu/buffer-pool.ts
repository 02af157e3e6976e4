import { BufferHeap } from './buffer-heap.js';
import { BufferUsage } from './constants.js';

/**
 * Pool of storage buffers by size class.
 *
 * A buffer released while commands are still being recorded (`releaseAfterSubmit`)
 * is at once reusable by later commands of the same encoder (they run after the ones
 * that used it), so the device memory of a long batch stays close to its live bytes.
 * It is not safe for `queue.writeBuffer`, which runs at queue level ahead of the
 * unsubmitted encoder: such buffers are listed in `reusedInBatch` until the submit, and
 * the backend writes into them through a copy inside the encoder instead.
 */
export class BufferPool {
  private free = new Map<number, BufferHeap>();
  /** Released during the pending batch, by size class: reusable inside that batch only. */
  private pendingFree = new Map<number, BufferHeap>();
  /** Creation order of each buffer: free lists hand out the lowest first (see BufferHeap). */
  private readonly ids = new WeakMap<GPUBuffer, number>();
  private nextId = 0;
  /** Buffers handed out from `pendingFree` in the pending batch (see the class doc). */
  readonly reusedInBatch = new Set<GPUBuffer>();
  /** Bytes sitting in free lists. */
  pooledBytes = 0;
  /** Bytes of every buffer this pool created and has not destroyed. */
  deviceBytes = 0;
  /** Incremented whenever a buffer is destroyed (bind groups naming it become invalid). */
  generation = 0;

  constructor(
    private readonly device: GPUDevice,
    /** Most bytes kept in free lists; beyond it released buffers are destroyed. */
    private readonly capBytes: number,
  ) {}

  /**
   * Size class of a request: powers of two up to 64 KiB, then steps of 1/8 of the
   * enclosing power of two (at most 12.5% waste on large tensors).
   */
  static sizeClass(byteSize: number): number {
    const n = Math.max(16, byteSize);
    const pow = 2 ** Math.ceil(Math.log2(n));
    if (pow <= 65536) return pow;
    const step = pow / 8;
    return Math.ceil(n / step) * step;
  }

  acquire(byteSize: number): GPUBuffer {
    const cls = BufferPool.sizeClass(byteSize);
    const recycled = this.pendingFree.get(cls)?.pop();
    if (recycled) {
      this.reusedInBatch.add(recycled);
      return recycled;
    }
    const list = this.free.get(cls);
    const reused = list?.pop();
    if (reused) {
      this.pooledBytes -= cls;
      return reused;
    }
    const buffer = this.device.createBuffer({
      size: cls,
      usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST,
    });
    this.ids.set(buffer, this.nextId++);
    this.deviceBytes += cls;
    return buffer;
  }

  /** Marks `buffer` free for the rest of the pending batch, and for anything after its submit. */
  releaseAfterSubmit(buffer: GPUBuffer): void {
    let list = this.pendingFree.get(buffer.size);
    if (!list) this.pendingFree.set(buffer.size, (list = new BufferHeap()));
    list.push(buffer, this.ids.get(buffer) ?? 0);
  }

  /** Called right after a submit (or when no batch is open): pending releases become free for any use. */
  onSubmit(): void {
    this.reusedInBatch.clear();
    for (const list of this.pendingFree.values()) {
      for (const b of list.drain()) {
        if (this.pooledBytes + b.size > this.capBytes) {
          this.deviceBytes -= b.size;
          b.destroy();
          this.generation++;
          continue;
        }
        let free = this.free.get(b.size);
        if (!free) this.free.set(b.size, (free = new BufferHeap()));
        free.push(b, this.ids.get(b) ?? 0);
        this.pooledBytes += b.size;
      }
    }
    this.pendingFree.clear();
  }

  /** Destroys every pooled buffer. */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list.drain()) {
        this.deviceBytes -= b.size;
        b.destroy();
      }
    }
    this.free.clear();
    this.pooledBytes = 0;
    this.generation++;
  }
}
