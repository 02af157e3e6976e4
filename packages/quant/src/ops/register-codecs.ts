/**
 * Registration of the codec ops' kernels. The package has no import side effects
 * (`"sideEffects": false`), so every public entry that runs a codec op calls
 * {@link registerCodecOps} first; registering twice is a no-op.
 */
import { registerCodecCpuKernels } from '../cpu/codec-kernels.js';
import { registerCodecWebGpuKernels } from '../webgpu/codec-kernels.js';

let registered = false;

/** Registers the cpu and webgpu kernels of the codec ops of `codec-ops.ts` (idempotent). */
export function registerCodecOps(): void {
  if (registered) return;
  registered = true;
  registerCodecCpuKernels();
  registerCodecWebGpuKernels();
}
