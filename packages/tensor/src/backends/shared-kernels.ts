import type { BackendName } from '../backend.js';
import { engine } from '../engine.js';
import { registerKernel } from '../registry.js';

/** Registers kernels that are the same on every backend (a reshape shares storage). */
export function registerSharedKernels(backend: BackendName): void {
  // Sharing storage needs no binding, so a tensor split in row chunks reshapes too.
  registerKernel('Reshape', backend, (inputs, { shape }) => engine.shareStorage(inputs[0], shape, 'reshape'), { chunked: true });
}
