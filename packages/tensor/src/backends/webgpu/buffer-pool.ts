import { BufferUsage } from './constants.js';

/**
 * Pool of storage buffers by size class. A released buffer becomes reusable only after
 * the submit that last used it (`releaseAfterSubmit` + `onSubmit`): `queue.writeBuffer`
 * runs at queue level, ahead of the unsubmitted encoder, so writing into a buffer that
 * pending commands still read would corrupt them.
 */
export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private pendingFree: GPUBuffer[] = [];
  /** Bytes sitting in free lists. */
  pooledBytes = 0;
  /** Bytes of every buffer this pool created and has not destroyed. */
  deviceBytes = 0;

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
    this.deviceBytes += cls;
    return buffer;
  }

  /** Marks `buffer` free once the pending command encoder has been submitted. */
  releaseAfterSubmit(buffer: GPUBuffer): void {
    this.pendingFree.push(buffer);
  }

  /** Called right after a submit: pending releases become reusable. */
  onSubmit(): void {
    for (const b of this.pendingFree) {
      if (this.pooledBytes + b.size > this.capBytes) {
        this.deviceBytes -= b.size;
        b.destroy();
        continue;
      }
      let list = this.free.get(b.size);
      if (!list) this.free.set(b.size, (list = []));
      list.push(b);
      this.pooledBytes += b.size;
    }
    this.pendingFree = [];
  }

  /** Destroys every pooled buffer. */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.deviceBytes -= b.size;
        b.destroy();
      }
    }
    this.free.clear();
    this.pooledBytes = 0;
  }
}
