/**
 * Strided copies (slice, permute, transpose, expand, concat, pad) reading a tensor split
 * in row chunks: one dispatch per chunk, each copying the elements whose source lies in
 * that chunk (the others are left to the dispatch of their own chunk). The output must
 * fit one binding. So a vocabulary slice `W[v0:v1]` of a split embedding is an ordinary
 * `slice`.
 */
import { ChunkedTensorError } from '../../../errors.js';
import { registerKernel } from '../../../registry.js';
import { sizeOf } from '../../../shape.js';
import { program } from '../program.js';
import { Uniforms, checkRank, elementMain, grid, storageBindings, stridedOffset, wgslType } from '../wgsl.js';
import { enableF16 } from '../f16.js';
import { fillTensor } from '../kernels/creation.js';
import { anyChunked, baseKernel, outputChunked } from './elementwise.js';

const WG = 256;

/** Registers the chunk-aware `StridedCopy` kernel. */
export function registerChunkedStridedCopyKernel(): void {
  const base = baseKernel('StridedCopy');
  registerKernel(
    'StridedCopy',
    'webgpu',
    (inputs, a, ctx) => {
      const x = inputs[0];
      if (!anyChunked(inputs)) return base(inputs, a, ctx);
      if (outputChunked(ctx, a.outShape, x.dtype)) {
        throw new ChunkedTensorError('stridedCopy', a.outShape, x.dtype, ctx.bindingsOf(a.outShape, x.dtype), 'a copy from a split tensor must fit one binding (slice it into smaller pieces)');
      }
      checkRank('stridedCopy', a.shape);
      const out = ctx.output(a.outShape, x.dtype, 'stridedCopy');
      const count = sizeOf(a.shape);
      if (count < out.size) fillTensor(ctx, out, a.fill);
      const T = wgslType(x.dtype);
      const enable = enableF16(ctx, 'stridedCopy', [x.dtype]);
      const r = a.shape.length;
      const info = ctx.chunks(x)!;
      // Element ranges of the chunks: rows times the row length of the chunked layout.
      const perRow = info.rowElements;
      info.ranges.forEach((range, c) => {
        const view = ctx.chunkView(x, c);
        const u = new Uniforms()
          .arr('shape', a.shape)
          .arr('sin', a.inStrides)
          .arr('sout', a.outStrides)
          .u32('size', count)
          .u32('inOffset', a.inOffset)
          .u32('outOffset', a.outOffset)
          .u32('chunkStart', range.rowStart * perRow)
          .u32('chunkSize', view.size);
        const prog = program(`chunked/stridedCopy/${T}/rank${r}`, 1, 1, () => `${enable}${storageBindings([['xs', T]], [['out', T]])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  ${stridedOffset(r, 'i', 'shape', 'sin', 'u.inOffset', 'src')}
  if (src < u.chunkStart || src - u.chunkStart >= u.chunkSize) { return; }
  ${stridedOffset(r, 'i', 'shape', 'sout', 'u.outOffset', 'dst')}
  out[dst] = xs[src - u.chunkStart];
}`);
        ctx.dispatch(prog, [view], [out], u, grid(count, WG));
        view.dispose();
      });
      return out;
    },
    { chunked: true },
  );
}
