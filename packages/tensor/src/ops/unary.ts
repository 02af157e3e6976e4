import { DTypeError } from '../errors.js';
import { engine } from '../engine.js';
import type { ActivationOp, UnaryOp } from '../op-names.js';
import type { Tensor } from '../tensor.js';

/** Runs a float elementwise op (a unary primitive or a fused activation), checking the dtype. */
export function unary(op: UnaryOp | ActivationOp, name: string, x: Tensor): Tensor {
  if (x.dtype !== 'f32' && x.dtype !== 'f64' && x.dtype !== 'f16') {
    throw new DTypeError(`${name}: expected a float tensor (f16, f32 or f64), got ${x.dtype} ${JSON.stringify(x.shape)}`);
  }
  return engine.runOp(op, [x], {});
}

