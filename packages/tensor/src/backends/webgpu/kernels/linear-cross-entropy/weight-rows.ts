/**
 * Row ranges of a `[rows, cols]` tensor, the one way the fused linear + cross-entropy
 * reads its weight and writes its weight gradient. The tensor may be one storage buffer
 * or split in row chunks (a tied head larger than one binding, as Qwen2.5's 151936 x 896
 * embedding): a range is copied piece by piece, one piece per chunk it overlaps, between
 * chunk views, so the kernels that read the range never bind a chunked tensor.
 */
import type { WebGpuKernelContext } from '../../../../kernel-context.js';
import type { Tensor } from '../../../../tensor.js';
import { enableF16 } from '../../f16.js';
import { program } from '../../program.js';
import { Uniforms, elementMain, grid, storageBindings, wgslType } from '../../wgsl.js';

const WG = 256;

/**
 * Copies `count` elements from `src` at element `srcOffset` to `dst` at `dstOffset`
 * (neither chunked): a buffer copy where the byte ranges are 4-byte aligned (always for
 * f32), else one dispatch (f16 ranges of odd length or start).
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

/**
 * Calls `piece(part, localRow, row, rows)` for each run of rows `[start, end)` of `t`
 * that lies in one buffer: `part` is `t` itself when it is one buffer, else a view of the
 * chunk holding the run (freed after the call), `localRow` the run's first row in `part`.
 */
function forEachPiece(ctx: WebGpuKernelContext, t: Tensor, start: number, end: number, piece: (part: Tensor, localRow: number, row: number, rows: number) => void): void {
  const info = ctx.chunks(t);
  if (!info) {
    piece(t, start, start, end - start);
    return;
  }
  info.ranges.forEach((range, i) => {
    const lo = Math.max(start, range.rowStart);
    const hi = Math.min(end, range.rowStart + range.rows);
    if (hi <= lo) return;
    const view = ctx.chunkView(t, i);
    try {
      piece(view, lo - range.rowStart, lo, hi - lo);
    } finally {
      view.dispose();
    }
  });
}

/** Rows `[start, end)` of `weight [V, D]` (one buffer or row chunks) as a new `[end - start, D]` tensor in one buffer. */
export function weightRows(ctx: WebGpuKernelContext, weight: Tensor, start: number, end: number): Tensor {
  const d = weight.shape[1];
  const out = ctx.output([end - start, d], weight.dtype, 'linearCrossEntropy');
  try {
    forEachPiece(ctx, weight, start, end, (part, local, row, rows) => copyElements(ctx, part, local * d, out, (row - start) * d, rows * d));
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/** Writes `rows [r, ...]` (one buffer) into `dst [R, ...]` (one buffer or row chunks) from row `start` on (rows of the same width). */
export function writeRows(ctx: WebGpuKernelContext, rows: Tensor, dst: Tensor, start: number): void {
  const width = rows.shape.slice(1).reduce((p, x) => p * x, 1);
  const count = rows.rank === 0 ? 1 : rows.shape[0];
  forEachPiece(ctx, dst, start, start + count, (part, local, row, n) => copyElements(ctx, rows, (row - start) * width, part, local * width, n * width));
}
