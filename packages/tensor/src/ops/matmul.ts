import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { engine } from '../engine.js';
import { registerComposite } from '../registry.js';
import { shapesEqual } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { add, mul } from './elementwise.js';
import { matmulShapes } from './matmul-shapes.js';

/** Transpose flags of `matmul`. */
export interface MatmulOptions {
  /** Use `a`'s last two dims transposed (`[..., k, m]` read as `[..., m, k]`) at no cost. */
  transposeA?: boolean;
  /** Use `b`'s last two dims transposed (`[..., n, k]` read as `[..., k, n]`) at no cost. */
  transposeB?: boolean;
}

/**
 * Batched matrix product `[..., m, k] x [..., k, n] -> [..., m, n]`; batch dims
 * broadcast. A linear layer with weight `[out, in]` is `matmul(x, w, { transposeB: true })`.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transposeA = opts.transposeA ?? false;
  const transposeB = opts.transposeB ?? false;
  if (a.dtype !== b.dtype || (a.dtype !== 'f32' && a.dtype !== 'f64' && a.dtype !== 'f16')) {
    throw new DTypeError(`matmul: expected two float tensors of one dtype (f16, f32 or f64), got ${a.dtype} ${JSON.stringify(a.shape)} and ${b.dtype} ${JSON.stringify(b.shape)}`);
  }
  matmulShapes(a.shape, b.shape, transposeA, transposeB);
  return engine.runOp('MatMul', [a, b], { transposeA, transposeB });
}

/** Options of {@link matmulAdd}: the transpose flags and the factor on the product. */
export interface MatmulAddOptions extends MatmulOptions {
  /** Factor on the product before `c` is added (default 1; LoRA's `scaling`). */
  alpha?: number;
}

/**
 * `alpha * matmul(a, b) + c` as one fused op: the kernel scales and adds as it stores
 * the product, so a linear layer's bias or LoRA's `base + (h B^T) * scaling` costs no
 * dispatch of its own. `a [..., m, k]`, `b [..., k, n]` (transpose flags as
 * {@link matmul}), `c` null, `[n]` (a bias row) or `[..., m, n]` (the output's shape)
 * -> `[..., m, n]`. Every operand has one float dtype.
 * @example
 * const y = matmulAdd(x, w, bias);                          // Conv1D: x W + b
 * const z = matmulAdd(h, B, base, { transposeB: true, alpha: 2 }); // base + 2 h B^T
 */
export function matmulAdd(a: Tensor, b: Tensor, c: Tensor | null, opts: MatmulAddOptions = {}): Tensor {
  const transposeA = opts.transposeA ?? false;
  const transposeB = opts.transposeB ?? false;
  const alpha = opts.alpha ?? 1;
  if (a.dtype !== b.dtype || (c !== null && c.dtype !== a.dtype) || (a.dtype !== 'f32' && a.dtype !== 'f64' && a.dtype !== 'f16')) {
    throw new DTypeError(`matmulAdd: expected float tensors of one dtype (f16, f32 or f64), got a ${a.dtype}, b ${b.dtype}${c ? `, c ${c.dtype}` : ''}`);
  }
  if (!Number.isFinite(alpha)) throw new RangeError(`matmulAdd: alpha must be a finite number, got ${alpha}`);
  const { m, n, batchShape } = matmulShapes(a.shape, b.shape, transposeA, transposeB);
  const outShape = [...batchShape, m, n];
  if (c !== null && !(c.rank === 1 && c.shape[0] === n) && !shapesEqual(c.shape, outShape)) {
    throw new ShapeError(`matmulAdd: c ${fmtShape(c.shape)} must be [${n}] (a bias row) or the product's shape ${fmtShape(outShape)}`);
  }
  return engine.runOp('MatMulAdd', c === null ? [a, b] : [a, b, c], { transposeA, transposeB, alpha });
}

/** Registers the composite of `MatMulAdd`: `matmul`, a scalar `mul` unless alpha is 1, and `add`. */
export function registerMatmulComposites(): void {
  registerComposite('MatMulAdd', ([a, b, c], { transposeA, transposeB, alpha }) => {
    const p = engine.runOp('MatMul', [a, b], { transposeA, transposeB });
    const scaled = alpha === 1 ? p : mul(p, alpha);
    return c === undefined ? scaled : add(scaled, c);
  });
}
