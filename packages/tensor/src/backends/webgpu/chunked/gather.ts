/**
 * Embedding lookups on a table split in row chunks: `gather` reads each id's row from
 * the chunk that holds it, and `scatterAdd` (its gradient) adds into a gradient table
 * split the same way. One dispatch per chunk; ids outside a chunk's rows are skipped
 * there, and the first chunk's dispatch checks every id against the whole table.
 */
import { ChunkedTensorError } from '../../../errors.js';
import { registerKernel } from '../../../registry.js';
import { sizeOf } from '../../../shape.js';
import { indexCheckWgsl } from '../index-checks.js';
import { program } from '../program.js';
import { Uniforms, elementMain, grid, storageBindings, wgslType } from '../wgsl.js';
import { enableF16 } from '../f16.js';
import { fillTensor } from '../kernels/creation.js';
import { anyChunked, baseKernel, outputChunked } from './elementwise.js';

const WG = 256;

/** Registers the chunk-aware `Gather` and `ScatterAdd` kernels. */
export function registerChunkedGatherKernels(): void {
  const gather = baseKernel('Gather');
  registerKernel(
    'Gather',
    'webgpu',
    (inputs, attrs, ctx) => {
      const [x, idx] = inputs;
      if (!anyChunked(inputs)) return gather(inputs, attrs, ctx);
      if (x.rank !== 2 || ctx.chunks(idx)) throw new ChunkedTensorError('gather', x.shape, x.dtype, x.liveStorage('gather').bindings ?? 1, 'a split table must be 2-D [rows, dim], with ids in one binding');
      const info = ctx.chunks(x)!;
      const rowSize = x.shape[1];
      const out = ctx.output([...idx.shape, rowSize], x.dtype, 'gather');
      const T = wgslType(x.dtype);
      const enable = enableF16(ctx, 'gather', [x.dtype]);
      const slot = ctx.indexCheck({ op: 'gather', shape: x.shape, limit: x.shape[0], what: 'rows' });
      info.ranges.forEach((r, c) => {
        const view = ctx.chunkView(x, c);
        const u = new Uniforms().u32('size', out.size).u32('rowSize', rowSize).u32('rows', x.shape[0]).u32('rowStart', r.rowStart).u32('chunkRows', r.rows).u32('first', c === 0 ? 1 : 0).indexSlot(slot);
        const prog = program(
          `chunked/gather/${T}`,
          2,
          1,
          () => `${enable}${storageBindings([['xs', T], ['idx', 'i32']], [['out', T]])}
${u.declaration(3)}
${indexCheckWgsl(4)}
${elementMain(WG, 'u.size')}
  let r = i / u.rowSize;
  let col = i % u.rowSize;
  let row = idx[r];
  if (row < 0 || u32(row) >= u.rows) {
    // Flagged (the next readback throws IndexError) and zeroed once, by the first chunk.
    if (u.first == 1u) {
      if (col == 0u) { report_bad_index(u.errSlot, r, row); }
      out[i] = ${T}(0);
    }
    return;
  }
  let local = u32(row) - u.rowStart;
  if (u32(row) < u.rowStart || local >= u.chunkRows) { return; }
  out[i] = xs[local * u.rowSize + col];
}`,
          { indexChecks: true },
        );
        ctx.dispatch(prog, [view, idx], [out], u, grid(out.size, WG));
        view.dispose();
      });
      return out;
    },
    { chunked: true },
  );

  const scatterAdd = baseKernel('ScatterAdd');
  registerKernel(
    'ScatterAdd',
    'webgpu',
    (inputs, attrs, ctx) => {
      const [src, idx] = inputs;
      const rest = src.shape.slice(idx.rank);
      const outShape = [attrs.numRows, ...rest];
      if (!anyChunked(inputs) && !outputChunked(ctx, outShape, 'f32')) return scatterAdd(inputs, attrs, ctx);
      if (rest.length !== 1 || anyChunked(inputs)) throw new ChunkedTensorError('scatterAdd', outShape, 'f32', ctx.bindingsOf(outShape, 'f32'), 'a split gradient table must be 2-D [rows, dim], with the updates and ids in one binding each');
      const rowSize = sizeOf(rest);
      const S = wgslType(src.dtype);
      const enable = enableF16(ctx, 'scatterAdd', [src.dtype]);
      const out = ctx.chunkedOutput(outShape, 'f32', 'scatterAdd');
      const info = ctx.chunks(out)!;
      const slot = ctx.indexCheck({ op: 'scatterAdd', shape: outShape, limit: attrs.numRows, what: 'rows' });
      info.ranges.forEach((r, c) => {
        const view = ctx.chunkView(out, c);
        fillTensor(ctx, view, 0);
        const u = new Uniforms().u32('size', src.size).u32('rowSize', rowSize).u32('rows', attrs.numRows).u32('rowStart', r.rowStart).u32('chunkRows', r.rows).u32('first', c === 0 ? 1 : 0).indexSlot(slot);
        const prog = program(
          `chunked/scatterAdd/${S}`,
          2,
          1,
          () => `${enable}${storageBindings([['src', S], ['idx', 'i32']], [['out', 'atomic<u32>']])}
${u.declaration(3)}
${indexCheckWgsl(4)}
${elementMain(WG, 'u.size')}
  let r = i / u.rowSize;
  let col = i % u.rowSize;
  let row = idx[r];
  if (row < 0 || u32(row) >= u.rows) {
    if (u.first == 1u && col == 0u) { report_bad_index(u.errSlot, r, row); }
    return;
  }
  let local = u32(row) - u.rowStart;
  if (u32(row) < u.rowStart || local >= u.chunkRows) { return; }
  let at_ = local * u.rowSize + col;
  let v = f32(src[i]);
  var old = atomicLoad(&out[at_]);
  loop {
    let res = atomicCompareExchangeWeak(&out[at_], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (res.exchanged) { break; }
    old = res.old_value;
  }
}`,
          { indexChecks: true },
        );
        ctx.dispatch(prog, [src, idx], [view], u, grid(src.size, WG));
        view.dispose();
      });
      if (src.dtype !== 'f16') return out;
      // Sums accumulate in f32 and are rounded once to f16, as in the unsplit kernel.
      const half = ctx.run('Cast', [out], { dtype: 'f16' });
      out.dispose();
      return half;
    },
    { chunked: true },
  );
}
