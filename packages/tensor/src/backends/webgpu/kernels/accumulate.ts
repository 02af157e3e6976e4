/**
 * webgpu kernel of the in-place op `Accumulate` (`dst[region] += src`): one thread per
 * element of `src`, which reads `dst`, adds in f32 (f16 widened) and stores rounded once,
 * as the `Add` kernel does. Either operand may be split in row chunks (a tied embedding's
 * gradient on a device with 128 MiB bindings): one dispatch per pair of chunks whose
 * elements meet, each adding the elements that lie in both, as the chunked `StridedCopy`.
 */
import { registerInPlaceKernel } from '../../../registry.js';
import type { WebGpuKernelContext } from '../../../kernel-context.js';
import { type AccumulateArgs, checkAccumulate, isWholeRegion } from '../../../ops/accumulate.js';
import { elementPieces } from '../chunked/blocks.js';
import { floatIO } from '../f16.js';
import { program } from '../program.js';
import { Uniforms, checkRank, elementMain, grid, storageBindings, stridedOffset } from '../wgsl.js';

const WG = 256;

function accumulate(ctx: WebGpuKernelContext, args: AccumulateArgs): void {
  const region = checkAccumulate(args);
  const { dst, src } = args;
  if (src.size === 0) return;
  // A whole-tensor sum is one flat range (one pipeline whatever the shape; chunks pair up by index).
  const whole = isWholeRegion(dst, src, region);
  const shape = whole ? [src.size] : src.rank === 0 ? [1] : src.shape;
  const strides = whole ? [1] : src.rank === 0 ? [0] : region.strides;
  checkRank('accumulate', shape);
  const io = floatIO(ctx, 'accumulate', dst.dtype);
  const r = shape.length;
  const srcPieces = elementPieces(ctx, src);
  const dstPieces = elementPieces(ctx, dst);
  for (const sp of srcPieces) {
    for (const dp of dstPieces) {
      // Contiguous regions map a source range onto one destination range: threads only for
      // the elements both pieces hold, pairs that cannot meet skipped.
      const first = whole ? Math.max(sp.start, dp.start - region.offset) : 0;
      const count = whole ? Math.min(sp.start + sp.size, dp.start + dp.size - region.offset) - first : src.size;
      if (count <= 0) continue;
      const u = new Uniforms()
        .arr('shape', shape)
        .arr('sout', strides)
        .u32('size', count)
        .u32('first', first)
        .u32('outOffset', region.offset)
        .u32('inStart', sp.start)
        .u32('inSize', sp.size)
        .u32('outStart', dp.start)
        .u32('outSize', dp.size);
      const prog = program(
        `accumulate/${io.T}/rank${r}`,
        1,
        1,
        () => `${io.enable}${storageBindings([['xs', io.T]], [['out', io.T]])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  let e = i + u.first;
  if (e < u.inStart || e - u.inStart >= u.inSize) { return; }
  ${stridedOffset(r, 'e', 'shape', 'sout', 'u.outOffset', 'dst')}
  if (dst < u.outStart || dst - u.outStart >= u.outSize) { return; }
  let o = dst - u.outStart;
  out[o] = ${io.store(`${io.load('out[o]')} + ${io.load('xs[e - u.inStart]')}`)};
}`,
      );
      const s = sp.index < 0 ? src : ctx.chunkView(src, sp.index);
      const d = dp.index < 0 ? dst : ctx.chunkView(dst, dp.index);
      try {
        ctx.dispatch(prog, [s], [d], u, grid(count, WG));
      } finally {
        if (s !== src) s.dispose();
        if (d !== dst) d.dispose();
      }
    }
  }
}

/** Registers the webgpu kernel of `Accumulate`. */
export function registerWebGpuAccumulateKernel(): void {
  registerInPlaceKernel('Accumulate', 'webgpu', (args, ctx) => accumulate(ctx, args));
}
