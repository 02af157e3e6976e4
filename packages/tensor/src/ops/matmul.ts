import { DTypeError } from '../errors.js';
import { engine } from '../engine.js';
import type { Tensor } from '../tensor.js';
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
