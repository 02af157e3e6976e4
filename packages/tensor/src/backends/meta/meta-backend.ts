import type { BackendCapabilities, MemoryTag, Storage } from '../../backend.js';
import { HostBackend } from '../host-backend.js';
import type { TensorData } from '../../dtype.js';
import { registerKernel } from '../../registry.js';
import type { KernelContext } from '../../kernel-context.js';
import { BaseKernelContext } from '../base-kernel-context.js';

/**
 * A backend of shapes without storage: modules built on it have every parameter's
 * shape and dtype but no memory, so a 7B model can be constructed to count parameters
 * and estimate bytes (`memory('meta')` reports what the tensors would occupy).
 * Reading data or running compute kernels on it throws.
 */
export class MetaBackend extends HostBackend {
  readonly name = 'meta' as const;
  readonly capabilities: BackendCapabilities = { f16: true, f64: true, subgroups: false, deviceMemory: false };
  readonly kernelContext: KernelContext = new BaseKernelContext(this);

  allocate(byteSize: number, tag: MemoryTag): Storage {
    this.tracker.add(byteSize, tag);
    return { backend: this, byteSize, tag, refs: 1 };
  }

  write(_storage: Storage, _data: TensorData): void {
    // Data written to a meta tensor is discarded by design (only shapes exist).
  }

  async read(): Promise<ArrayBuffer> {
    throw new Error("meta backend: tensors have shapes but no data; create them on 'cpu' or 'webgpu' to read values");
  }
}

/** Registers the meta kernels: creation ops and casts produce shaped tensors without data. */
export function registerMetaKernels(): void {
  registerKernel('Fill', 'meta', (_i, { shape, dtype }, ctx) => ctx.output(shape, dtype, 'full'));
  registerKernel('Random', 'meta', (_i, { shape }, ctx) => ctx.output(shape, 'f32', 'random'));
  registerKernel('Arange', 'meta', (_i, { size, dtype }, ctx) => ctx.output([size], dtype, 'arange'));
  registerKernel('Cast', 'meta', (inputs, { dtype }, ctx) => ctx.output(inputs[0].shape, dtype, 'cast'));
}
