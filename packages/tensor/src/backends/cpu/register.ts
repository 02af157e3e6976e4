import { registerCpuAccumulateKernel } from './kernels/accumulate.js';
import { registerCpuCreationKernels } from './kernels/creation.js';
import { registerCpuElementwiseKernels } from './kernels/elementwise.js';
import { registerCpuFusedKernels } from './kernels/fused.js';
import { registerCpuLayoutKernels } from './kernels/layout.js';
import { registerCpuLlamaFusedKernels } from './kernels/llama-fused.js';
import { registerCpuMatmulKernels } from './kernels/matmul.js';
import { registerCpuReduceKernels } from './kernels/reduce.js';

let registered = false;

/** Registers every cpu kernel once (called by `init`). */
export function registerCpuKernels(): void {
  if (registered) return;
  registered = true;
  registerCpuElementwiseKernels();
  registerCpuReduceKernels();
  registerCpuLayoutKernels();
  registerCpuCreationKernels();
  registerCpuMatmulKernels();
  registerCpuFusedKernels();
  registerCpuLlamaFusedKernels();
  registerCpuAccumulateKernel();
}
