/** cpu kernels of the 8-bit and paged optimizer ops: the host loops over the tensors' arrays. */
import type { FloatArray } from '@webpeft/optim';
import { registerInPlaceKernel } from '@webpeft/tensor/kernel';
import { OPTIM_BLOCK, WORDS_PER_BLOCK, adam8bitBlockwiseHost, stateViews } from './adam-8bit-host.js';
import type {} from './optim-ops.js';

/** Registers the cpu kernels of `Adam8bitStep` and `PagedUpdate`. */
export function registerQuantOptimCpuKernels(): void {
  registerInPlaceKernel('Adam8bitStep', 'cpu', ({ items, qmap }, ctx) => {
    const maps = ctx.data(qmap) as Float32Array;
    for (const { param, grad, state, stateWord, blocks, blockBase, scalars } of items) {
      const p = ctx.data(param) as Float32Array;
      const g = ctx.data(grad) as Float32Array;
      const start = blockBase * OPTIM_BLOCK;
      const end = Math.min(p.length, (blockBase + blocks) * OPTIM_BLOCK);
      const words = (ctx.data(state) as Uint32Array).subarray(stateWord, stateWord + blocks * WORDS_PER_BLOCK);
      adam8bitBlockwiseHost(p.subarray(start, end), g.subarray(start, end), stateViews(words, blocks), maps.subarray(0, 256), maps.subarray(256, 512), scalars);
    }
  });
  registerInPlaceKernel('PagedUpdate', 'cpu', ({ rule, hyper, scalars, param, grad, slot, base, count }, ctx) => {
    const s = ctx.data(slot) as FloatArray;
    const state: Record<string, FloatArray> = {};
    rule.stateNames(hyper).forEach((n, j) => (state[n] = s.subarray(j * count, (j + 1) * count)));
    const p = ctx.data(param) as FloatArray;
    const g = ctx.data(grad) as FloatArray;
    rule.cpu(p.subarray(base, base + count), g.subarray(base, base + count), state, scalars, hyper);
  });
}
