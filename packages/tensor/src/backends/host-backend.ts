import { type Backend, type BackendCapabilities, type BackendMemory, type MemoryTag, MemoryTracker, type Storage } from '../backend.js';
import type { TensorData } from '../dtype.js';
import type { KernelContext } from '../kernel-context.js';

/**
 * What the backends that run on the host (cpu, meta) share: synchronous execution (no
 * queue to flush or wait for) and byte accounting through a {@link MemoryTracker}.
 */
export abstract class HostBackend implements Backend {
  abstract readonly name: Backend['name'];
  abstract readonly capabilities: BackendCapabilities;
  abstract readonly kernelContext: KernelContext;
  protected readonly tracker = new MemoryTracker();

  abstract allocate(byteSize: number, tag: MemoryTag): Storage;
  abstract write(storage: Storage, data: TensorData): void;
  abstract read(storage: Storage, byteLength: number): Promise<ArrayBuffer>;

  release(storage: Storage): void {
    this.tracker.remove(storage.byteSize, storage.tag);
  }

  retag(storage: Storage, tag: MemoryTag): void {
    this.tracker.retag(storage.byteSize, storage.tag, tag);
    storage.tag = tag;
  }

  flush(): void {}

  async sync(): Promise<void> {}

  memory(): BackendMemory {
    return this.tracker.snapshot(0);
  }

  resetPeak(): void {
    this.tracker.resetPeak();
  }

  dispose(): void {}
}
