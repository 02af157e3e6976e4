/**
 * Names and attribute types of the ops, in two tiers:
 *
 * - **primitives** ({@link PrimitiveOpAttrs}): every backend has a kernel for each, and
 *   each differentiable one has a gradient written with primitives;
 * - **fused ops** ({@link FusedOpAttrs}): softmax, cross-entropy, norms, activations
 *   (and ops other packages declare, such as quant's `Linear4bit`). Each declares a
 *   composite definition written with primitives (`registerComposite`): the fallback
 *   where a backend has no kernel for it, and the oracle its kernels are tested against.
 *
 * Everything else (mean, mse, attention...) is a function composed of ops and has no
 * kernel or gradient of its own. Other packages and users add ops by merging into
 * {@link OpAttrs} (`declare module '@webpeft/tensor/kernel' { interface OpAttrs { ... } }`).
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
  'Erf',
  'Sin',
  'Cos',
  'Sign',
  'Square',
  'Reciprocal',
  'Floor',
] as const;
/** Name of a unary elementwise primitive. */
export type UnaryOp = (typeof UNARY_OPS)[number];

/** Fused activations: one elementwise kernel each, with composite definitions in primitives. */
export const ACTIVATION_OPS = ['Gelu', 'GeluTanh', 'Silu'] as const;
/** Name of a fused activation. */
export type ActivationOp = (typeof ACTIVATION_OPS)[number];

/**
 * Input gradients of the fused activations, `(dy, x) -> dx` (same shape and dtype):
 * one elementwise kernel each instead of the 6-18 primitives of the derivative.
 */
export const ACTIVATION_GRAD_OPS = ['GeluGrad', 'GeluTanhGrad', 'SiluGrad'] as const;
/** Name of a fused activation's gradient op. */
export type ActivationGradOp = (typeof ACTIVATION_GRAD_OPS)[number];

/** Binary elementwise ops with numpy broadcasting. */
export const BINARY_OPS = ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Maximum', 'Minimum'] as const;
/** Name of a binary elementwise primitive. */
export type BinaryOp = (typeof BINARY_OPS)[number];

/** Comparisons with broadcasting; the result dtype is `bool`. */
export const COMPARE_OPS = ['Equal', 'NotEqual', 'Less', 'LessEqual', 'Greater', 'GreaterEqual'] as const;
/** Name of a comparison primitive. */
export type CompareOp = (typeof COMPARE_OPS)[number];

/**
 * Binary ops whose scalar operand can travel in the uniforms (`BinaryScalar`): those
 * whose gradient needs neither input, and the comparisons (no gradient).
 */
export type ScalarOperandOp = 'Add' | 'Sub' | 'Mul' | 'Div' | 'Maximum' | CompareOp;

/** Reductions over a trailing block of `reduceSize` elements (see `ReduceAttrs`). */
export const REDUCE_OPS = ['Sum', 'Max', 'ArgMax'] as const;
/** Name of a reduction primitive. */
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

/**
 * Where one matrix of a {@link StridedMatMulAttrs} operand lies among its tensor's
 * elements (row-major storage): entry `(batch t, row i, column j)` is element
 * `offset + sum(t[d] * batchStrides[d]) + i * rowStride + j * colStride`. Strides are
 * non-negative; a zero batch stride broadcasts.
 */
export interface MatrixView {
  offset: number;
  batchStrides: number[];
  rowStride: number;
  colStride: number;
}

/**
 * A batched product over views (`stridedMatmul`): `C[t] = A[t] B[t]` with `A [m, k]`
 * and `B [k, n]` read through views of the two inputs, batch `batchShape`, and `C`
 * written through `out` into a new tensor of `outShape` that it covers exactly (a
 * permuted layout, e.g. attention heads merged back into `[B, T, H * Dh]`).
 */
export interface StridedMatMulAttrs {
  batchShape: number[];
  m: number;
  k: number;
  n: number;
  a: MatrixView;
  b: MatrixView;
  outShape: number[];
  out: MatrixView;
}

/** Attributes of the primitive ops, by name. */
export interface PrimitiveOpAttrs extends Record<UnaryOp | BinaryOp | CompareOp, Record<string, never>> {
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
}

/** Attributes of the built-in fused ops, by name (inputs are listed with each op's function). */
export interface FusedOpAttrs extends Record<ActivationOp | ActivationGradOp, Record<string, never>> {
  Softmax: Record<string, never>;
  LogSoftmax: Record<string, never>;
  /** Gradient kernels of the fused ops (inputs listed in their docs). */
  SoftmaxGrad: Record<string, never>;
  LogSoftmaxGrad: Record<string, never>;
  /** Per-row losses of cross-entropy from logits `[N, C]` and i32 labels `[N]` (0 at ignored rows). */
  CrossEntropy: { ignoreIndex: number };
  CrossEntropyGrad: { ignoreIndex: number };
  /**
   * Row statistics of `hidden [N, D] @ weight[V, D]^T (+ bias [V])` over vocabulary chunks of
   * `chunkSize` rows (0: chosen from the device's limits): `[2, N]` f32, row 0 the
   * logsumexp, row 1 the label's logit (0 at ignored rows). Inputs `[hidden, weight, labels, bias?]`.
   */
  LinearCrossEntropyStats: { ignoreIndex: number; chunkSize: number };
  /**
   * Per-row cross-entropy `[N]` (f32, 0 at ignored rows) of `hidden @ weight^T (+ bias)`
   * without the `[N, V]` logits. Inputs `[hidden, weight, labels, stats, bias?]`, `stats`
   * being `LinearCrossEntropyStats` of the same inputs (detached: the gradient is the total one).
   */
  LinearCrossEntropy: { ignoreIndex: number; chunkSize: number };
  LayerNorm: { eps: number };
  LayerNormGrad: { eps: number };
  RmsNorm: { eps: number };
  RmsNormGrad: { eps: number };
  /** `dy`, `x` `[..., D] -> [D]`: the weight gradient `sum_rows(dy * xhat)` of layer norm. */
  LayerNormWeightGrad: { eps: number };
  /** `dy`, `x` `[..., D] -> [D]`: the weight gradient `sum_rows(dy * x * rstd)` of RMS norm. */
  RmsNormWeightGrad: { eps: number };
  /**
   * `alpha * op(a) op(b) + c` (`matmulAdd`): a matmul whose kernel scales and adds as it
   * stores, `c` absent, a bias `[n]` or of the output's shape `[..., m, n]`.
   */
  MatMulAdd: { transposeA: boolean; transposeB: boolean; alpha: number };
  /**
   * A batched matmul that reads its operands and writes its output through strided
   * views (`stridedMatmul`): heads of a fused qkv projection and the merge back, with
   * no copy where the backend's kernel reads views. Composite: copies and `MatMul`.
   */
  StridedMatMul: StridedMatMulAttrs;
  /**
   * `x op value`, or `value op x` with `scalarFirst`, the scalar in the kernel's
   * uniforms instead of a `Fill`ed tensor: one dispatch instead of two. Same shape (and
   * dtype, `bool` for comparisons) as `x`. `value / x` is not one (its gradient needs `x`).
   */
  BinaryScalar: { op: ScalarOperandOp; value: number; scalarFirst: boolean };
  /**
   * Memory-efficient attention (`ops/attention.ts`): inputs `q [B, H, T, Dh]`, `k`, `v`
   * `[B, H_kv, L, Dh]` and an optional additive bias `[B | 1, 1, T | 1, L]`; output
   * `[B, H, T, Dh + 2]` (f32, or f64): the attention output, then each row's score max
   * and exp-sum. `causal`: query `i` sees keys `j <= L - T + i`.
   */
  FusedAttention: AttentionAttrs;
  /** `dq` of {@link FusedAttention} from `[dy, q, k, v, out, rowDot, bias?]`. */
  FusedAttentionGradQ: AttentionAttrs;
  /** `dk` and `dv` of {@link FusedAttention} stacked `[2, B, H_kv, L, Dh]`, same inputs. */
  FusedAttentionGradKV: AttentionAttrs;
}

/** Attributes of the fused attention ops: the score scale and whether the causal mask applies. */
export interface AttentionAttrs {
  scale: number;
  causal: boolean;
}

/**
 * Attributes of every op, by name: the built-in primitives and fused ops, plus the ops
 * other packages and users declare by merging into this interface.
 */
export interface OpAttrs extends PrimitiveOpAttrs, FusedOpAttrs {}

/** Name of a primitive op. */
export type PrimitiveOpName = keyof PrimitiveOpAttrs;
/** Name of a built-in fused op. */
export type FusedOpName = keyof FusedOpAttrs;
/** Name of any declared op. */
export type OpName = keyof OpAttrs;
