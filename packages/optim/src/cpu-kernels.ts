/** cpu kernels of the optimizer's in-place ops: the update rule's host loop, and a finiteness scan. */
import { registerInPlaceKernel } from '@webpeft/tensor/kernel';
import type { OptimizerUpdateArgs } from './optimizer-ops.js';
import type { FloatArray } from './types.js';

/** Registers the cpu kernels of `OptimizerUpdate` and `NonFiniteFlags`. */
export function registerOptimizerCpuKernels(): void {
  registerInPlaceKernel('OptimizerUpdate', 'cpu', ({ rule, hyper, scalars, items }: OptimizerUpdateArgs, ctx) => {
    for (const it of items) {
      const bufs: Record<string, FloatArray> = {};
      for (const [n, t] of Object.entries(it.buffers)) bufs[n] = ctx.data(t) as FloatArray;
      rule.cpu(ctx.data(it.param) as FloatArray, ctx.data(it.grad) as FloatArray, bufs, scalars, hyper);
    }
  });
  registerInPlaceKernel('NonFiniteFlags', 'cpu', ({ tensors, flags }, ctx) => {
    const out = ctx.data(flags);
    tensors.forEach((t, i) => {
      const a = ctx.data(t) as FloatArray;
      for (let j = 0; j < a.length; j++) {
        if (!Number.isFinite(a[j])) {
          out[i] = 1;
          return;
        }
      }
    });
  });
}
