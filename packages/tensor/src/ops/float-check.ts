import { DTypeError, fmtShape } from '../errors.js';
import type { Tensor } from '../tensor.js';

/** Throws a DTypeError naming `op` unless every tensor is f32 or f64. */
export function checkFloat(op: string, ...xs: Tensor[]): void {
  for (const x of xs) {
    if (x.dtype !== 'f32' && x.dtype !== 'f64') throw new DTypeError(`${op}: expected f32 or f64, got ${x.dtype} ${fmtShape(x.shape)}`);
  }
}
