import { registerWebGpuAccumulateKernel } from './kernels/accumulate.js';
import { registerWebGpuAttentionKernels } from './kernels/attention.js';
import { registerWebGpuBinaryScalarKernel } from './kernels/binary-scalar.js';
import { registerChunkedKernels } from './chunked/register.js';
import { registerWebGpuCreationKernels } from './kernels/creation.js';
import { registerWebGpuElementwiseKernels } from './kernels/elementwise.js';
import { registerWebGpuFusedKernels } from './kernels/fused.js';
import { registerWebGpuNormWeightGradKernels } from './kernels/norm-weight-grad.js';
import { registerWebGpuLayoutKernels } from './kernels/layout.js';
import { registerWebGpuLlamaFusedKernels } from './kernels/llama-fused.js';
import { registerWebGpuLinearCrossEntropyKernels } from './kernels/linear-cross-entropy.js';
import { registerWebGpuMatmulKernels } from './kernels/matmul.js';
import { registerWebGpuReduceKernels } from './kernels/reduce.js';
import { registerWebGpuStridedMatmulKernel } from './kernels/strided-matmul.js';

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
  registerWebGpuStridedMatmulKernel();
  registerWebGpuFusedKernels();
  registerWebGpuLinearCrossEntropyKernels();
  registerWebGpuAttentionKernels();
  registerWebGpuNormWeightGradKernels();
  registerWebGpuLlamaFusedKernels();
  registerWebGpuAccumulateKernel();
  // Last: it wraps the kernels registered above for the ops that accept row-chunked tensors.
  registerChunkedKernels();
}
