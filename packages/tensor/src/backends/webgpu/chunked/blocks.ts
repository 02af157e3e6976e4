/**
 * Blocks of tensors seen as row-major matrices `[rows, last dim]`, for kernels that work
 * on tensors split in row chunks (each chunk its own buffer, one binding). A block is a
 * chunk view where it is exactly one chunk, a shared handle where it is the whole of an
 * unchunked tensor, and otherwise a copy made by {@link copyWindow}.
 */
import { BYTES_PER_ELEMENT } from '../../../dtype.js';
import { engine } from '../../../engine.js';
import type { ChunkInfo, WebGpuKernelContext } from '../../../kernel-context.js';
import type { Tensor } from '../../../tensor.js';
import { program } from '../program.js';
import { Uniforms, elementMain, grid, storageBindings } from '../wgsl.js';
import { enableF16 } from '../f16.js';

const WG = 256;

/** Elements per row of `t` seen as a matrix (its last dimension; 1 for a scalar). */
export function rowElementsOf(t: Tensor): number {
  return t.rank > 0 ? t.shape[t.rank - 1] : 1;
}

/** Rows of `t` seen as a matrix `[rows, last dim]`. */
export function rowsOf(t: Tensor): number {
  const l = rowElementsOf(t);
  return l === 0 ? 0 : t.size / l;
}

/** An element range `[start, start + size)` a tensor is bound as: one of its chunks (`index`), or itself whole (-1). */
export interface ElementPiece {
  readonly index: number;
  readonly start: number;
  readonly size: number;
}

/**
 * The element ranges `t` is bound as, for kernels that pair source and destination
 * pieces (strided copies, accumulation): its chunks, or itself whole when it is not split.
 */
export function elementPieces(ctx: WebGpuKernelContext, t: Tensor): ElementPiece[] {
  const info = ctx.chunks(t);
  if (!info) return [{ index: -1, start: 0, size: t.size }];
  return info.ranges.map((g, index) => ({ index, start: g.rowStart * info.rowElements, size: g.rows * info.rowElements }));
}

/** The chunk of `info` holding row `row`. */
export function chunkIndexOf(info: ChunkInfo, row: number): number {
  const rows0 = info.ranges[0].rows;
  return Math.min(Math.floor(row / rows0), info.ranges.length - 1);
}

/** Adds the row boundaries of `info` (a tensor's chunks) to `cuts`. */
export function addCuts(cuts: Set<number>, info: ChunkInfo | null): void {
  if (info) for (const r of info.ranges) cuts.add(r.rowStart);
}

/** Sorted boundaries -> consecutive `[start, count]` segments. */
export function segments(cuts: Set<number>): [number, number][] {
  const sorted = [...cuts].sort((x, y) => x - y);
  const out: [number, number][] = [];
  for (let i = 0; i + 1 < sorted.length; i++) if (sorted[i + 1] > sorted[i]) out.push([sorted[i], sorted[i + 1] - sorted[i]]);
  return out;
}

/**
 * Copies a `rows x cols` window: element `(r, c)` of `src` at flat `srcOffset + r * srcLd + c`
 * to `dst` at `dstOffset + r * dstLd + c`. Neither tensor may be chunked (pass chunk views).
 * Bits are copied as they are (u32 words; f16 as f16).
 */
export function copyWindow(
  ctx: WebGpuKernelContext,
  src: Tensor,
  dst: Tensor,
  w: { rows: number; cols: number; srcOffset: number; srcLd: number; dstOffset: number; dstLd: number },
): void {
  const count = w.rows * w.cols;
  if (count === 0) return;
  const half = src.dtype === 'f16';
  const T = half ? 'f16' : 'u32';
  const enable = enableF16(ctx, 'copyWindow', [src.dtype]);
  const u = new Uniforms().u32('size', count).u32('cols', w.cols).u32('srcOffset', w.srcOffset).u32('srcLd', w.srcLd).u32('dstOffset', w.dstOffset).u32('dstLd', w.dstLd);
  const prog = program(`chunked/copyWindow/${T}`, 1, 1, () => `${enable}${storageBindings([['src', T]], [['dst', T]])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  let r = i / u.cols;
  let c = i % u.cols;
  dst[u.dstOffset + r * u.dstLd + c] = src[u.srcOffset + r * u.srcLd + c];
}`);
  ctx.dispatch(prog, [src], [dst], u, grid(count, WG));
}

/**
 * Block `[nr, nc]` of `t` (as `[rows, L]`) at row `r0`, column `c0`, as a tensor the
 * caller disposes. The rows must lie inside one chunk of `t` when `t` is chunked.
 */
export function blockOf(ctx: WebGpuKernelContext, t: Tensor, r0: number, nr: number, c0: number, nc: number): Tensor {
  const L = rowElementsOf(t);
  const info = ctx.chunks(t);
  const whole = c0 === 0 && nc === L;
  let src: Tensor;
  let local = r0;
  if (info) {
    const i = chunkIndexOf(info, r0);
    const range = info.ranges[i];
    if (r0 + nr > range.rowStart + range.rows) throw new RangeError(`chunked block: rows [${r0}, ${r0 + nr}) cross a chunk boundary of ${JSON.stringify(t.shape)}`);
    src = ctx.chunkView(t, i);
    if (whole && r0 === range.rowStart && nr === range.rows) return src;
    local = r0 - range.rowStart;
  } else {
    if (whole && r0 === 0 && nr === rowsOf(t)) return engine.shareStorage(t, [nr, L], 'chunked block');
    src = t;
  }
  const out = ctx.output([nr, nc], t.dtype, 'chunked block');
  const eb = BYTES_PER_ELEMENT[t.dtype];
  if (whole && (local * L * eb) % 4 === 0 && (nr * L * eb) % 4 === 0) ctx.copy(src, local * L * eb, out, 0, nr * L * eb);
  else copyWindow(ctx, src, out, { rows: nr, cols: nc, srcOffset: local * L + c0, srcLd: L, dstOffset: 0, dstLd: nc });
  if (src !== t) src.dispose();
  return out;
}

/**
 * Writes `src [nr, nc]` into `dst` (as `[rows, L]`) at row `r0`, column `c0`. The rows
 * must lie inside one chunk of `dst` when `dst` is chunked.
 */
export function writeBlock(ctx: WebGpuKernelContext, dst: Tensor, r0: number, c0: number, src: Tensor): void {
  const L = rowElementsOf(dst);
  const nr = rowsOf(src);
  const nc = rowElementsOf(src);
  const eb = BYTES_PER_ELEMENT[dst.dtype];
  if (c0 === 0 && nc === L && (r0 * L * eb) % 4 === 0 && (nr * L * eb) % 4 === 0) {
    // Whole rows are contiguous bytes; the backend's copy splits at chunk boundaries.
    ctx.copy(src, 0, dst, r0 * L * eb, nr * L * eb);
    return;
  }
  const info = ctx.chunks(dst);
  let target = dst;
  let local = r0;
  if (info) {
    const i = chunkIndexOf(info, r0);
    const range = info.ranges[i];
    if (r0 + nr > range.rowStart + range.rows) throw new RangeError(`chunked block: rows [${r0}, ${r0 + nr}) cross a chunk boundary of ${JSON.stringify(dst.shape)}`);
    target = ctx.chunkView(dst, i);
    local = r0 - range.rowStart;
  }
  copyWindow(ctx, src, target, { rows: nr, cols: nc, srcOffset: 0, srcLd: nc, dstOffset: local * L + c0, dstLd: L });
  if (target !== dst) target.dispose();
}
