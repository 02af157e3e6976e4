/**
 * Strided copies (slice, permute, transpose, expand, concat, pad) reading or writing a
 * tensor split in row chunks: one dispatch per pair of source and destination chunks,
 * each copying the elements whose source and destination lie in that pair. So a
 * vocabulary slice `W[v0:v1]` of a split embedding is an ordinary `slice`, and its
 * gradient (the slice padded back into `[V, D]`) or a `concat` of vocabulary pieces
 * writes a split tensor.
 */
import { registerKernel } from '../../../registry.js';
import { sizeOf } from '../../../shape.js';
import type { Tensor } from '../../../tensor.js';
import { program } from '../program.js';
import { Uniforms, checkRank, elementMain, grid, storageBindings, stridedOffset, wgslType } from '../wgsl.js';
import { enableF16 } from '../f16.js';
import { fillTensor } from '../kernels/creation.js';
import { anyChunked, baseKernel, outputChunked } from './elementwise.js';
import { elementPieces } from './blocks.js';

const WG = 256;

/** Registers the chunk-aware `StridedCopy` kernel. */
export function registerChunkedStridedCopyKernel(): void {
  const base = baseKernel('StridedCopy');
  registerKernel(
    'StridedCopy',
    'webgpu',
    (inputs, a, ctx) => {
      const x = inputs[0];
      if (!anyChunked(inputs) && !outputChunked(ctx, a.outShape, x.dtype)) return base(inputs, a, ctx);
      checkRank('stridedCopy', a.shape);
      const out = ctx.chunkedOutput(a.outShape, x.dtype, 'stridedCopy');
      const count = sizeOf(a.shape);
      const T = wgslType(x.dtype);
      const enable = enableF16(ctx, 'stridedCopy', [x.dtype]);
      const r = a.shape.length;
      const bind = (t: Tensor, index: number): Tensor => (index < 0 ? t : ctx.chunkView(t, index));
      try {
        const outPieces = elementPieces(ctx, out);
        // Elements the copy does not reach get the fill value first (same pass, ordered).
        if (count < out.size) {
          for (const o of outPieces) {
            const v = bind(out, o.index);
            fillTensor(ctx, v, a.fill);
            if (v !== out) v.dispose();
          }
        }
        for (const i of elementPieces(ctx, x)) {
          for (const o of outPieces) {
            const src = bind(x, i.index);
            const dst = bind(out, o.index);
            const u = new Uniforms()
              .arr('shape', a.shape)
              .arr('sin', a.inStrides)
              .arr('sout', a.outStrides)
              .u32('size', count)
              .u32('inOffset', a.inOffset)
              .u32('outOffset', a.outOffset)
              .u32('inStart', i.start)
              .u32('inSize', i.size)
              .u32('outStart', o.start)
              .u32('outSize', o.size);
            const prog = program(`chunked/stridedCopy/${T}/rank${r}`, 1, 1, () => `${enable}${storageBindings([['xs', T]], [['out', T]])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  ${stridedOffset(r, 'i', 'shape', 'sin', 'u.inOffset', 'src')}
  if (src < u.inStart || src - u.inStart >= u.inSize) { return; }
  ${stridedOffset(r, 'i', 'shape', 'sout', 'u.outOffset', 'dst')}
  if (dst < u.outStart || dst - u.outStart >= u.outSize) { return; }
  out[dst - u.outStart] = xs[src - u.inStart];
}`);
            ctx.dispatch(prog, [src], [dst], u, grid(count, WG));
            if (src !== x) src.dispose();
            if (dst !== out) dst.dispose();
          }
        }
      } catch (e) {
        out.dispose();
        throw e;
      }
      return out;
    },
    { chunked: true },
  );
}
