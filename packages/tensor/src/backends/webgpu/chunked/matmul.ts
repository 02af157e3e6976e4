/**
 * Matrix products with an operand or the output split in row chunks, in every
 * orientation a tied language-model head needs: `h @ W^T` with `W [V, D]` split along V
 * (output columns per chunk), `dy @ W` (the reduction over V summed chunk by chunk) and
 * `dy^T @ h` into a split gradient `[V, D]` (output rows per chunk), as well as logits
 * `[N, V]` that are split themselves. The product is cut into blocks along m, k and n at
 * every chunk boundary of the operands and the output; each block product runs the
 * ordinary matmul kernel on chunk views (or copied windows) and the k-blocks are summed.
 */
import type { ChunkInfo, WebGpuKernelContext } from '../../../kernel-context.js';
import { matmulShapes } from '../../../ops/matmul-shapes.js';
import { registerKernel } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import { broadcastStrides, stridesOf } from '../../../shape.js';
import { blockOf, segments, writeBlock } from './blocks.js';
import { anyChunked, baseKernel, outputChunked } from './elementwise.js';

/** Registers the chunk-aware `MatMul` kernel. */
export function registerChunkedMatmulKernel(): void {
  const matmul = baseKernel('MatMul');
  registerKernel(
    'MatMul',
    'webgpu',
    (inputs, attrs, ctx) => {
      const [a, b] = inputs;
      const { m, n, batchShape } = matmulShapes(a.shape, b.shape, attrs.transposeA, attrs.transposeB);
      const outShape = [...batchShape, m, n];
      if (!anyChunked(inputs) && !outputChunked(ctx, outShape, a.dtype)) return matmul(inputs, attrs, ctx);
      return chunkedMatmul(ctx, a, b, attrs.transposeA, attrs.transposeB, outShape);
    },
    { chunked: true },
  );
}

function chunkedMatmul(ctx: WebGpuKernelContext, a: Tensor, b: Tensor, transA: boolean, transB: boolean, outShape: number[]): Tensor {
  const { m, k, n, batchShape } = matmulShapes(a.shape, b.shape, transA, transB);
  const batch = batchShape.reduce((p, d) => p * d, 1);
  const out = ctx.chunkedOutput(outShape, a.dtype, 'matmul');
  try {
    // Batch dims fold into m when `a`'s rows stay contiguous and `b` is one matrix (the
    // usual `[B, T, D] x W`); otherwise each batch entry is its own product.
    if (b.rank === 2 && !transA) {
      matmulBlocks(ctx, a, b, out, transA, transB, batch * m, k, n, { a: 0, b: 0, out: 0 });
      return out;
    }
    const sa = broadcastStrides(a.shape.slice(0, -2), batchShape);
    const sb = broadcastStrides(b.shape.slice(0, -2), batchShape);
    const strides = stridesOf(batchShape);
    for (let i = 0; i < batch; i++) {
      let ia = 0;
      let ib = 0;
      for (let d = 0; d < batchShape.length; d++) {
        const c = Math.floor(i / strides[d]) % batchShape[d];
        ia += c * sa[d];
        ib += c * sb[d];
      }
      // Offsets in rows of each operand seen as a matrix `[rows, last dim]`.
      matmulBlocks(ctx, a, b, out, transA, transB, m, k, n, { a: ia * (transA ? k : m), b: ib * (transB ? n : k), out: i * m });
    }
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/**
 * `out[rows off.out ..][m, n] = op(a)[m, k] op(b)[k, n]` where each operand's matrix
 * starts at row `off.*` of its `[rows, last dim]` view. Cut at every chunk boundary of
 * the three tensors inside those rows, so each block lies in one chunk.
 */
function matmulBlocks(
  ctx: WebGpuKernelContext,
  a: Tensor,
  b: Tensor,
  out: Tensor,
  transA: boolean,
  transB: boolean,
  m: number,
  k: number,
  n: number,
  off: { a: number; b: number; out: number },
): void {
  const mCuts = new Set([0, m]);
  const kCuts = new Set([0, k]);
  const nCuts = new Set([0, n]);
  addCutsIn(mCuts, ctx.chunks(out), off.out, m);
  addCutsIn(transA ? kCuts : mCuts, ctx.chunks(a), off.a, transA ? k : m);
  addCutsIn(transB ? nCuts : kCuts, ctx.chunks(b), off.b, transB ? n : k);
  const ks = segments(kCuts);
  for (const [m0, mn] of segments(mCuts)) {
    for (const [n0, nn] of segments(nCuts)) {
      let acc: Tensor | null = null;
      for (const [k0, kn] of ks) {
        const ab = transA ? blockOf(ctx, a, off.a + k0, kn, m0, mn) : blockOf(ctx, a, off.a + m0, mn, k0, kn);
        const bb = transB ? blockOf(ctx, b, off.b + n0, nn, k0, kn) : blockOf(ctx, b, off.b + k0, kn, n0, nn);
        const p = ctx.run('MatMul', [ab, bb], { transposeA: transA, transposeB: transB });
        ab.dispose();
        bb.dispose();
        if (acc) {
          const sum: Tensor = ctx.run('Add', [acc, p], {});
          acc.dispose();
          p.dispose();
          acc = sum;
        } else acc = p;
      }
      writeBlock(ctx, out, off.out + m0, n0, acc!);
      acc!.dispose();
    }
  }
}

/** Adds the chunk boundaries of `info` inside rows `[offset, offset + length)`, relative to `offset`. */
function addCutsIn(cuts: Set<number>, info: ChunkInfo | null, offset: number, length: number): void {
  if (!info) return;
  for (const r of info.ranges) if (r.rowStart > offset && r.rowStart < offset + length) cuts.add(r.rowStart - offset);
}
