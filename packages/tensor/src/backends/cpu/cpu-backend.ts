import type { BackendCapabilities, MemoryTag, Storage } from '../../backend.js';
import { HostBackend } from '../host-backend.js';
import type { TensorData } from '../../dtype.js';
import type { KernelContext } from '../../kernel-context.js';
import { CpuContext } from './cpu-kernel-context.js';

/** Storage of the cpu backend: a plain ArrayBuffer. */
export interface CpuStorage extends Storage {
  readonly buffer: ArrayBuffer;
}

/**
 * The plain-TypeScript reference backend: obviously correct loops over typed arrays.
 * It is the oracle of the conformance tests (with `f64` for gradient checks) and a
 * last-resort fallback where WebGPU is missing.
 */
export class CpuBackend extends HostBackend {
  readonly name = 'cpu' as const;
  readonly capabilities: BackendCapabilities = { f16: true, f64: true, subgroups: false, deviceMemory: false };
  readonly kernelContext: KernelContext = new CpuContext(this);

  allocate(byteSize: number, tag: MemoryTag): Storage {
    // Round to 8 bytes so every dtype view is aligned.
    const buffer = new ArrayBuffer(Math.max(8, Math.ceil(byteSize / 8) * 8));
    this.tracker.add(byteSize, tag);
    const s: CpuStorage = { backend: this, byteSize, tag, refs: 1, buffer };
    return s;
  }

  write(storage: Storage, data: TensorData): void {
    const dst = new Uint8Array((storage as CpuStorage).buffer);
    dst.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  async read(storage: Storage, byteLength: number): Promise<ArrayBuffer> {
    return (storage as CpuStorage).buffer.slice(0, byteLength);
  }
}
