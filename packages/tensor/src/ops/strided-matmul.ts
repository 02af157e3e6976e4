import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { engine } from '../engine.js';
import type { MatrixView, StridedCopyAttrs, StridedMatMulAttrs } from '../op-names.js';
import { registerComposite } from '../registry.js';
import { sizeOf, stridesOf } from '../shape.js';
import type { Tensor } from '../tensor.js';

/**
 * Batched matmul over strided views: `C[t] = A[t] B[t]`, `A [m, k]` a view of `a`,
 * `B [k, n]` a view of `b` (see {@link MatrixView}), batch `attrs.batchShape`; returns a
 * new tensor of `attrs.outShape` that `C` fills through `attrs.out` (every element
 * written once: a permutation of a row-major layout). On webgpu the matmul kernels read
 * and write the views in place wherever one axis of each has unit stride, so an
 * attention head split of a fused `[B, T, 3 * H * Dh]` projection and the merge of the
 * heads' outputs back to `[B, T, H * Dh]` need no copy; other views (and row-chunked
 * tensors) are copied first. Input views must not overlap themselves except through
 * zero (broadcast) batch strides, whose gradients are summed.
 * @example
 * // q k^T of head h of qkv [B, T, 3 * H * Dh] without splitting the heads out:
 * const s = stridedMatmul(qkv, qkv, {
 *   batchShape: [B, H], m: T, k: Dh, n: T,
 *   a: { offset: 0, batchStrides: [T * 3 * D, Dh], rowStride: 3 * D, colStride: 1 },
 *   b: { offset: D, batchStrides: [T * 3 * D, Dh], rowStride: 1, colStride: 3 * D },
 *   outShape: [B, H, T, T], out: { offset: 0, batchStrides: [H * T * T, T * T], rowStride: T, colStride: 1 },
 * });
 */
export function stridedMatmul(a: Tensor, b: Tensor, attrs: StridedMatMulAttrs): Tensor {
  if (a.dtype !== b.dtype || (a.dtype !== 'f32' && a.dtype !== 'f64' && a.dtype !== 'f16')) {
    throw new DTypeError(`stridedMatmul: expected two float tensors of one dtype (f16, f32 or f64), got ${a.dtype} ${fmtShape(a.shape)} and ${b.dtype} ${fmtShape(b.shape)}`);
  }
  checkStridedMatmul(a.shape, b.shape, attrs);
  return engine.runOp('StridedMatMul', [a, b], attrs);
}

/** Validates the views of a `StridedMatMul` against its operands' shapes, naming what is wrong. */
export function checkStridedMatmul(aShape: readonly number[], bShape: readonly number[], attrs: StridedMatMulAttrs): void {
  const { batchShape, m, k, n } = attrs;
  for (const [name, v] of [['m', m], ['k', k], ['n', n]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new ShapeError(`stridedMatmul: ${name} must be a non-negative integer, got ${v}`);
  }
  if (batchShape.some((d) => !Number.isInteger(d) || d < 0)) throw new ShapeError(`stridedMatmul: batchShape ${fmtShape(batchShape)} must hold non-negative integers`);
  checkInputView('a', aShape, attrs.a, [...batchShape, m, k]);
  checkInputView('b', bShape, attrs.b, [...batchShape, k, n]);
  checkOutputView(attrs.outShape, attrs.out, [...batchShape, m, n]);
}

/** The view's strides in the order of `dims` (batch dims, rows, columns). */
export function viewStrides(v: MatrixView): number[] {
  return [...v.batchStrides, v.rowStride, v.colStride];
}

function checkStrideList(what: string, v: MatrixView, dims: readonly number[]): number[] {
  const strides = viewStrides(v);
  if (v.batchStrides.length !== dims.length - 2) {
    throw new ShapeError(`stridedMatmul: view ${what} has ${v.batchStrides.length} batch strides for batch shape ${fmtShape(dims.slice(0, -2))}`);
  }
  if (!Number.isInteger(v.offset) || v.offset < 0 || strides.some((s) => !Number.isInteger(s) || s < 0)) {
    throw new ShapeError(`stridedMatmul: view ${what} (offset ${v.offset}, strides ${fmtShape(strides)}) needs a non-negative integer offset and strides`);
  }
  return strides;
}

/** Dims of size above 1 with a non-zero stride, sorted by stride: each must start past the previous one's extent. */
function nonOverlapping(dims: readonly number[], strides: readonly number[]): boolean {
  const axes = dims.map((d, i) => [d, strides[i]] as const).filter(([d, s]) => d > 1 && s > 0);
  axes.sort((x, y) => x[1] - y[1]);
  for (let i = 1; i < axes.length; i++) if (axes[i][1] < axes[i - 1][1] * axes[i - 1][0]) return false;
  return true;
}

function checkInputView(what: 'a' | 'b', shape: readonly number[], v: MatrixView, dims: readonly number[]): void {
  const strides = checkStrideList(what, v, dims);
  if (sizeOf(dims) === 0) return;
  const last = dims.reduce((acc, d, i) => acc + (d - 1) * strides[i], v.offset);
  if (last >= sizeOf(shape)) {
    throw new ShapeError(`stridedMatmul: view ${what} [${dims.join(', ')}] at offset ${v.offset} with strides ${fmtShape(strides)} reaches element ${last} of ${fmtShape(shape)} (${sizeOf(shape)} elements)`);
  }
  const broadcastFree = strides.map((s, i) => (i < dims.length - 2 && s === 0 ? 0 : s));
  if (strides.slice(-2).some((s, i) => s === 0 && dims[dims.length - 2 + i] > 1) || !nonOverlapping(dims, broadcastFree)) {
    throw new ShapeError(`stridedMatmul: view ${what} [${dims.join(', ')}] with strides ${fmtShape(strides)} reads some element twice (only batch strides may be 0)`);
  }
}

function checkOutputView(outShape: readonly number[], v: MatrixView, dims: readonly number[]): void {
  const strides = checkStrideList('out', v, dims);
  const axes = dims.map((d, i) => [d, strides[i]] as const).filter(([d]) => d > 1);
  axes.sort((x, y) => x[1] - y[1]);
  let expected = 1;
  let dense = v.offset === 0 || sizeOf(dims) === 0;
  for (const [d, s] of axes) {
    if (s !== expected) dense = false;
    expected *= d;
  }
  if (!dense || sizeOf(outShape) !== sizeOf(dims)) {
    throw new ShapeError(`stridedMatmul: out view [${dims.join(', ')}] at offset ${v.offset} with strides ${fmtShape(strides)} must cover outShape ${fmtShape(outShape)} exactly (a permuted row-major layout, offset 0)`);
  }
}

/** `StridedCopy` attributes reading view `v` of `dims` into a new row-major tensor of `dims`. */
export function gatherViewAttrs(v: MatrixView, dims: readonly number[]): StridedCopyAttrs {
  return { shape: [...dims], inOffset: v.offset, inStrides: viewStrides(v), outShape: [...dims], outOffset: 0, outStrides: stridesOf(dims), fill: 0 };
}

/** `StridedCopy` attributes writing a row-major `dims` tensor through view `v` into `outShape` (zeros elsewhere). */
export function scatterViewAttrs(v: MatrixView, dims: readonly number[], outShape: readonly number[]): StridedCopyAttrs {
  return { shape: [...dims], inOffset: 0, inStrides: stridesOf(dims), outShape: [...outShape], outOffset: v.offset, outStrides: viewStrides(v), fill: 0 };
}

/** Registers the composite of `StridedMatMul`: copy both views out, `MatMul`, copy the product into place. */
export function registerStridedMatmulComposite(): void {
  registerComposite('StridedMatMul', ([a, b], at) => {
    const { batchShape, m, k, n } = at;
    const av = engine.runOp('StridedCopy', [a], gatherViewAttrs(at.a, [...batchShape, m, k]));
    const bv = engine.runOp('StridedCopy', [b], gatherViewAttrs(at.b, [...batchShape, k, n]));
    const p = engine.runOp('MatMul', [av, bv], { transposeA: false, transposeB: false });
    return engine.runOp('StridedCopy', [p], scatterViewAttrs(at.out, [...batchShape, m, n], at.outShape));
  });
}
