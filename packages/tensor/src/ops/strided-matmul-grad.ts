/** Gradient of `StridedMatMul`: two more strided products, each put back through its operand's view. */
import { engine } from '../engine.js';
import type { MatrixView, StridedMatMulAttrs } from '../op-names.js';
import { type GradAccumulator, registerGradient } from '../registry.js';
import { isWholeRowMajor, shapesEqual, sizeOf, stridesOf } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { accumulateInto } from './accumulate.js';
import { reshape } from './layout.js';
import { sum } from './reduce.js';
import { scatterViewAttrs, stridedMatmul } from './strided-matmul.js';

/** The row-major view of `[...batchShape, rows, cols]`. */
function rowMajor(batchShape: readonly number[], rows: number, cols: number): MatrixView {
  const s = stridesOf([...batchShape, rows, cols]);
  return { offset: 0, batchStrides: s.slice(0, -2), rowStride: rows === 0 ? 0 : s[s.length - 2], colStride: 1 };
}

/** The same matrices transposed (rows and columns swap strides). */
function transposed(v: MatrixView): MatrixView {
  return { ...v, rowStride: v.colStride, colStride: v.rowStride };
}

/**
 * The gradient of an operand of shape `base` read through view `v` of `dims`, from `g`
 * (row-major `dims`): broadcast batch dims (stride 0) summed, then `g` written into
 * zeros of `base` through the view, or only reshaped when the view is `base`'s own
 * row-major layout. With `target` (the operand's pending gradient, which the caller may
 * write; asked for only when needed) a view that is not the whole operand adds `g` into its window of `target`
 * instead, and null is returned.
 */
function throughView(g: Tensor, v: MatrixView, dims: readonly number[], base: readonly number[], target: () => Tensor | null = () => null): Tensor | null {
  const axes = v.batchStrides.map((s, d) => (s === 0 && dims[d] > 1 ? d : -1)).filter((d) => d >= 0);
  let src = g;
  let srcDims = [...dims];
  if (axes.length > 0) {
    src = sum(g, axes, true);
    srcDims = dims.map((d, i) => (axes.includes(i) ? 1 : d));
  }
  if (isWholeRowMajor(srcDims, v.offset, [...v.batchStrides, v.rowStride, v.colStride], sizeOf(base))) {
    return shapesEqual(srcDims, base) ? src : reshape(src, base);
  }
  const scatter = scatterViewAttrs(v, srcDims, base);
  const into = target();
  if (!into) return engine.runOp('StridedCopy', [src], scatter);
  accumulateInto(into, src, { offset: scatter.outOffset, strides: scatter.outStrides });
  return null;
}

/**
 * `dA = dC B^T` and `dB = A^T dC`, themselves strided products: `dC` is read through the
 * output's view and the other operand through its own (transposed), so no operand is
 * copied; each result goes back through its operand's view, handed to `acc` (added into
 * the operand's pending gradient where there is one, so q, k and v of one packed
 * projection fill one buffer: a zero-padded copy only for the first).
 */
function stridedMatmulGrads(
  dy: Tensor,
  a: Tensor,
  b: Tensor,
  at: StridedMatMulAttrs,
  inputShapes: readonly (readonly number[])[],
  needsGrad: readonly boolean[],
  acc: GradAccumulator,
): void {
  const { batchShape, m, k, n } = at;
  if (needsGrad[0]) {
    const dims = [...batchShape, m, k];
    const g = stridedMatmul(dy, b, { batchShape, m, k: n, n: k, a: at.out, b: transposed(at.b), outShape: dims, out: rowMajor(batchShape, m, k) });
    const ga = throughView(g, at.a, dims, inputShapes[0], () => acc.target(0));
    if (ga) acc.add(0, ga);
  }
  if (needsGrad[1]) {
    const dims = [...batchShape, k, n];
    const g = stridedMatmul(a, dy, { batchShape, m: k, k: m, n, a: transposed(at.a), b: at.out, outShape: dims, out: rowMajor(batchShape, k, n) });
    const gb = throughView(g, at.b, dims, inputShapes[1], () => acc.target(1));
    if (gb) acc.add(1, gb);
  }
}

/** Registers the gradient of `StridedMatMul`. */
export function registerStridedMatmulGradient(): void {
  registerGradient('StridedMatMul', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { attrs, inputs: [a, b], inputShapes, needsGrad }) => {
      const out: (Tensor | null)[] = [null, null];
      stridedMatmulGrads(dy, a, b, attrs, inputShapes, needsGrad, { target: () => null, add: (i, g) => (out[i] = g) });
      return out;
    },
    gradInto: (dy, { attrs, inputs: [a, b], inputShapes, needsGrad }, acc) => stridedMatmulGrads(dy, a, b, attrs, inputShapes, needsGrad, acc),
  });
}
