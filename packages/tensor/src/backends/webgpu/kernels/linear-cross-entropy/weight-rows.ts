/**
 * Row ranges of a `[rows, cols]` tensor, the one way the fused linear + cross-entropy
 * reads its weight and writes its weight gradient. Today the tensor is one storage
 * buffer and a range is a buffer copy; a row-chunked storage (weights larger than one
 * binding) only has to serve these two functions.
 */
import type { WebGpuKernelContext } from '../../../../kernel-context.js';
import type { Tensor } from '../../../../tensor.js';
import { enableF16 } from '../../f16.js';
import { program } from '../../program.js';
import { Uniforms, elementMain, grid, storageBindings, wgslType } from '../../wgsl.js';

const WG = 256;

/**
 * Copies `count` elements from `src` at element `srcOffset` to `dst` at `dstOffset`:
 * a buffer copy where the byte ranges are 4-byte aligned (always for f32), else one
 * dispatch (f16 ranges of odd length or start).
 */
function copyElements(ctx: WebGpuKernelContext, src: Tensor, srcOffset: number, dst: Tensor, dstOffset: number, count: number): void {
  if (count === 0) return;
  const bytes = src.dtype === 'f16' ? 2 : 4;
  if ((srcOffset * bytes) % 4 === 0 && (dstOffset * bytes) % 4 === 0 && (count * bytes) % 4 === 0) {
    ctx.copy(src, srcOffset * bytes, dst, dstOffset * bytes, count * bytes);
    return;
  }
  const T = wgslType(src.dtype);
  const u = new Uniforms().u32('size', count).u32('srcOffset', srcOffset).u32('dstOffset', dstOffset);
  const prog = program(`linear-ce/copy-elements/${T}`, 1, 1, () => `${enableF16(ctx, 'linearCrossEntropy', [src.dtype])}${storageBindings([['src', T]], [['dst', T]])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  dst[u.dstOffset + i] = src[u.srcOffset + i];
}`);
  ctx.dispatch(prog, [src], [dst], u, grid(count, WG));
}

/** Rows `[start, end)` of `weight [V, D]` as a new `[end - start, D]` tensor. */
export function weightRows(ctx: WebGpuKernelContext, weight: Tensor, start: number, end: number): Tensor {
  const d = weight.shape[1];
  const out = ctx.output([end - start, d], weight.dtype, 'linearCrossEntropy');
  copyElements(ctx, weight, start * d, out, 0, (end - start) * d);
  return out;
}

/** Writes `rows [r, ...]` into `dst [R, ...]` from row `start` on (`dst` rows of the same width). */
export function writeRows(ctx: WebGpuKernelContext, rows: Tensor, dst: Tensor, start: number): void {
  const width = rows.shape.slice(1).reduce((p, x) => p * x, 1);
  copyElements(ctx, rows, 0, dst, start * width, rows.size);
}
