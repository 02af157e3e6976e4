/**
 * Registration of the optimizer's in-place ops. The package has no import side effects
 * (`"sideEffects": false`), so the optimizer and {@link nonFiniteIndices} call
 * {@link registerOptimizerOps} first; registering twice is a no-op.
 */
import { registerOptimizerCpuKernels } from './cpu-kernels.js';
import { registerOptimizerWebGpuKernels } from './fused-webgpu.js';

let registered = false;

/** Registers the cpu and webgpu kernels of `OptimizerUpdate` and `NonFiniteFlags` (idempotent). */
export function registerOptimizerOps(): void {
  if (registered) return;
  registered = true;
  registerOptimizerCpuKernels();
  registerOptimizerWebGpuKernels();
}
