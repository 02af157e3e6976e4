/**
 * The webgpu `StridedMatMul` kernel: the matmul kernels read each operand and write the
 * output at their views' offsets, batch strides and leading dimensions, so a head
 * split or merge costs no copy. A view with no unit-stride axis, an output whose
 * columns are not contiguous, and row-chunked tensors go through copies instead.
 */
import type { WebGpuKernelContext } from '../../../kernel-context.js';
import type { MatrixView, StridedMatMulAttrs } from '../../../op-names.js';
import { gatherViewAttrs, scatterViewAttrs } from '../../../ops/strided-matmul.js';
import { registerKernel } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import { anyChunked, outputChunked } from '../chunked/elementwise.js';
import { type OperandPlacement, runMatmul } from './matmul.js';

/**
 * How the matmul kernel reads view `v` of `[rows, cols]` matrices: along its unit-stride
 * axis (columns: as stored; rows: transposed) with the other axis's stride as leading
 * dimension, or null when neither axis has unit stride. A size-1 axis has any stride.
 */
function placementOf(v: MatrixView, rows: number, cols: number): { transposed: boolean; place: OperandPlacement } | null {
  if (v.colStride === 1 || cols === 1) return { transposed: false, place: { offset: v.offset, batchStrides: v.batchStrides, ld: rows === 1 ? 0 : v.rowStride } };
  if (v.rowStride === 1 || rows === 1) return { transposed: true, place: { offset: v.offset, batchStrides: v.batchStrides, ld: cols === 1 ? 0 : v.colStride } };
  return null;
}

/** The composite's path on kernels (chunk-aware `StridedCopy` and `MatMul`), freeing its copies. */
function viaCopies(ctx: WebGpuKernelContext, a: Tensor, b: Tensor, at: StridedMatMulAttrs): Tensor {
  const { batchShape, m, k, n } = at;
  const av = ctx.run('StridedCopy', [a], gatherViewAttrs(at.a, [...batchShape, m, k]));
  try {
    const bv = ctx.run('StridedCopy', [b], gatherViewAttrs(at.b, [...batchShape, k, n]));
    try {
      const p = ctx.run('MatMul', [av, bv], { transposeA: false, transposeB: false });
      try {
        return ctx.run('StridedCopy', [p], scatterViewAttrs(at.out, [...batchShape, m, n], at.outShape));
      } finally {
        p.dispose();
      }
    } finally {
      bv.dispose();
    }
  } finally {
    av.dispose();
  }
}

/** Registers the webgpu `StridedMatMul` kernel (chunk-aware: chunked operands are copied). */
export function registerWebGpuStridedMatmulKernel(): void {
  registerKernel(
    'StridedMatMul',
    'webgpu',
    (inputs, at, ctx) => {
      const [a, b] = inputs;
      const { batchShape, m, k, n } = at;
      if (anyChunked(inputs) || outputChunked(ctx, at.outShape, a.dtype)) return viaCopies(ctx, a, b, at);
      const pa = placementOf(at.a, m, k);
      const pb = placementOf(at.b, k, n);
      const pc = placementOf(at.out, m, n);
      // Only the output's column axis may be the unit-stride one (the kernel stores rows of 4 columns).
      if (pa === null || pb === null || pc === null || pc.transposed) return viaCopies(ctx, a, b, at);
      return runMatmul(ctx, inputs, { m, k, n, batchShape, transposeA: pa.transposed, transposeB: pb.transposed, a: pa.place, b: pb.place, c: pc.place, outShape: at.outShape });
    },
    { chunked: true },
  );
}
