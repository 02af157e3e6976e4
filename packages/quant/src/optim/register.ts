/**
 * Registration of the 8-bit and paged optimizer ops. The package has no import side
 * effects, so the optimizers call {@link registerQuantOptimOps} first; registering
 * twice is a no-op.
 */
import { registerAdam8bitWebGpuKernel } from './adam-8bit-webgpu.js';
import { registerQuantOptimCpuKernels } from './kernels-cpu.js';
import { registerPagedWebGpuKernel } from './paged-webgpu.js';

let registered = false;

/** Registers the cpu and webgpu kernels of `Adam8bitStep` and `PagedUpdate` (idempotent). */
export function registerQuantOptimOps(): void {
  if (registered) return;
  registered = true;
  registerQuantOptimCpuKernels();
  registerAdam8bitWebGpuKernel();
  registerPagedWebGpuKernel();
}
