/**
 * Names and attribute types of the primitive ops. Only these have kernels and
 * gradients; everything else (mean, relu via maximum, softmax composites, mse...) is
 * written with them.
 */
import type { DType } from './dtype.js';

/** Unary elementwise ops (one generated kernel family per backend). */
export const UNARY_OPS = [
  'Neg',
  'Abs',
  'Exp',
  'Log',
  'Sqrt',
  'Rsqrt',
  'Tanh',
  'Sigmoid',
  'Relu',
  'Gelu',
  'GeluTanh',
  'Silu',
  'Sin',
  'Cos',
  'Sign',
  'Square',
  'Reciprocal',
  'Floor',
] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

/** Binary elementwise ops with numpy broadcasting. */
export const BINARY_OPS = ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Maximum', 'Minimum'] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

/** Comparisons with broadcasting; the result dtype is `bool`. */
export const COMPARE_OPS = ['Equal', 'NotEqual', 'Less', 'LessEqual', 'Greater', 'GreaterEqual'] as const;
export type CompareOp = (typeof COMPARE_OPS)[number];

/** Reductions over a trailing block of `reduceSize` elements (see `ReduceAttrs`). */
export const REDUCE_OPS = ['Sum', 'Max', 'ArgMax'] as const;
export type ReduceOp = (typeof REDUCE_OPS)[number];

/** Attributes of a reduction: reduce the listed axes (sorted, unique). */
export interface ReduceAttrs {
  axes: number[];
  keepDims: boolean;
}

/**
 * General strided copy, the one kernel behind permute, slice, expand, concat and pad.
 * Iterates over `shape`; element at coordinate `c` is read from
 * `inOffset + sum(c[d] * inStrides[d])` of the single input and written to
 * `outOffset + sum(c[d] * outStrides[d])` of an output of `outShape` whose other
 * elements are `fill`. When `into` is set the output is that existing tensor (written
 * in place; used internally by concat).
 */
export interface StridedCopyAttrs {
  shape: number[];
  inOffset: number;
  inStrides: number[];
  outShape: number[];
  outOffset: number;
  outStrides: number[];
  fill: number;
}

/** Attributes of every primitive op, by name. */
export interface OpAttrs extends Record<UnaryOp | BinaryOp | CompareOp, Record<string, never>> {
  Sum: ReduceAttrs;
  Max: ReduceAttrs;
  ArgMax: ReduceAttrs;
  /** Cumulative sum along `axis`. */
  CumSum: { axis: number };
  /** `where(cond, a, b)` with broadcasting. */
  Where: Record<string, never>;
  Cast: { dtype: DType };
  Reshape: { shape: number[] };
  StridedCopy: StridedCopyAttrs;
  /** Batched matmul `[..., m, k] x [..., k, n] -> [..., m, n]` with transpose flags on the last two dims. */
  MatMul: { transposeA: boolean; transposeB: boolean };
  /** Rows of `x` (any rank) selected along axis 0 by an i32 index tensor of any shape. */
  Gather: Record<string, never>;
  /** Zeros of `[numRows, ...rest]` with rows of `src` added at `indices` (gather's gradient). */
  ScatterAdd: { numRows: number };
  /** Fills `shape` with `value`. */
  Fill: { shape: number[]; value: number; dtype: DType };
  /** `start + i * step` for `i < shape[0]`. */
  Arange: { start: number; step: number; size: number; dtype: DType };
  /** Keeps elements with `col - row >= diagonal` (upper triangle) of the last two dims, else `fill`. */
  Triu: { diagonal: number; fill: number };
  /** Philox uniform [0,1) (`normal: false`) or standard normal (`normal: true`). */
  Random: { shape: number[]; seed: number; offset: number; normal: boolean };
  /** Inverted dropout: keep with probability `1 - p`, scale kept by `1/(1-p)`; mask from Philox. */
  Dropout: { p: number; seed: number; offset: number };
  Softmax: Record<string, never>;
  LogSoftmax: Record<string, never>;
  /** Gradient kernels of the fused ops (inputs listed in their docs). */
  SoftmaxGrad: Record<string, never>;
  LogSoftmaxGrad: Record<string, never>;
  /** Per-row losses of cross-entropy from logits `[N, C]` and i32 labels `[N]` (0 at ignored rows). */
  CrossEntropy: { ignoreIndex: number };
  CrossEntropyGrad: { ignoreIndex: number };
  LayerNorm: { eps: number };
  LayerNormGrad: { eps: number };
  RmsNorm: { eps: number };
  RmsNormGrad: { eps: number };
}

/** Name of any primitive op. */
export type OpName = keyof OpAttrs;
