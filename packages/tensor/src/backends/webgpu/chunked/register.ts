import { registerChunkedCrossEntropyKernels } from './cross-entropy.js';
import { registerChunkedElementwiseKernels } from './elementwise.js';
import { registerChunkedGatherKernels } from './gather.js';
import { registerChunkedMatmulKernel } from './matmul.js';
import { registerChunkedStridedCopyKernel } from './strided-copy.js';

/**
 * Wraps the webgpu kernels that work on tensors split in row chunks (tensors larger
 * than one storage binding); called after the ordinary kernels are registered. Every
 * other kernel refuses a split tensor with `ChunkedTensorError`.
 */
export function registerChunkedKernels(): void {
  registerChunkedElementwiseKernels();
  registerChunkedGatherKernels();
  registerChunkedMatmulKernel();
  registerChunkedCrossEntropyKernels();
  registerChunkedStridedCopyKernel();
}
