import { registerWebGpuBinaryScalarKernel } from './kernels/binary-scalar.js';
import { registerChunkedKernels } from './chunked/register.js';
import { registerWebGpuCreationKernels } from './kernels/creation.js';
import { registerWebGpuElementwiseKernels } from './kernels/elementwise.js';
import { registerWebGpuFusedKernels } from './kernels/fused.js';
import { registerWebGpuLayoutKernels } from './kernels/layout.js';
import { registerWebGpuMatmulKernels } from './kernels/matmul.js';
import { registerWebGpuReduceKernels } from './kernels/reduce.js';

let registered = false;

/** Registers every webgpu kernel once (called by `init`). */
export function registerWebGpuKernels(): void {
  if (registered) return;
  registered = true;
  registerWebGpuElementwiseKernels();
  registerWebGpuBinaryScalarKernel();
  registerWebGpuReduceKernels();
  registerWebGpuLayoutKernels();
  registerWebGpuCreationKernels();
  registerWebGpuMatmulKernels();
  registerWebGpuFusedKernels();
  registerChunkedKernels();
}
