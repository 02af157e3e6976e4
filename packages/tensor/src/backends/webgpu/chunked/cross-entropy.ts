/**
 * Cross-entropy over logits `[N, V]` split in row chunks (Qwen2.5's 1x256 x 151936 f32
 * logits are 155 MB): rows are independent, so the loss of each chunk of rows and the
 * gradient's rows run the ordinary kernels on chunk views.
 */
import { registerKernel } from '../../../registry.js';
import { anyChunked, baseKernel, outputChunked } from './elementwise.js';
import { runByRows } from './row-wise.js';

/** Registers the chunk-aware `CrossEntropy` and `CrossEntropyGrad` kernels. */
export function registerChunkedCrossEntropyKernels(): void {
  const ce = baseKernel('CrossEntropy');
  registerKernel(
    'CrossEntropy',
    'webgpu',
    (inputs, attrs, ctx) => {
      const [x] = inputs;
      if (!anyChunked(inputs)) return ce(inputs, attrs, ctx);
      const out = ctx.output([x.shape[0]], 'f32', 'crossEntropy');
      return runByRows(ctx, 'crossEntropy', inputs, ['rows', 'perRow'], out, 'perRow', (parts) => ctx.run('CrossEntropy', parts, attrs));
    },
    { chunked: true },
  );
  const grad = baseKernel('CrossEntropyGrad');
  registerKernel(
    'CrossEntropyGrad',
    'webgpu',
    (inputs, attrs, ctx) => {
      const [, x] = inputs;
      if (!anyChunked(inputs) && !outputChunked(ctx, x.shape, x.dtype)) return grad(inputs, attrs, ctx);
      const out = ctx.chunkedOutput(x.shape, x.dtype, 'crossEntropyGrad');
      return runByRows(ctx, 'crossEntropyGrad', inputs, ['perRow', 'rows', 'perRow'], out, 'rows', (parts) => ctx.run('CrossEntropyGrad', parts, attrs));
    },
    { chunked: true },
  );
}
