import { DTypeError, fmtShape } from '../errors.js';
import type { Tensor } from '../tensor.js';

/** Throws a DTypeError naming `op` unless every tensor is a float (f16, f32 or f64). */
export function checkFloat(op: string, ...xs: Tensor[]): void {
  for (const x of xs) {
    if (x.dtype !== 'f32' && x.dtype !== 'f64' && x.dtype !== 'f16') throw new DTypeError(`${op}: expected f16, f32 or f64, got ${x.dtype} ${fmtShape(x.shape)}`);
  }
}

/**
 * Throws a DTypeError naming `op` unless every tensor is a float of one dtype: no
 * silent promotion (cast an f32 weight to f16, or the f16 input to f32, first).
 */
export function checkSameFloat(op: string, ...xs: Tensor[]): void {
  checkFloat(op, ...xs);
  const first = xs[0];
  for (const x of xs) {
    if (x.dtype !== first.dtype) {
      throw new DTypeError(`${op}: dtypes differ (${xs.map((t) => `${t.dtype} ${fmtShape(t.shape)}`).join(', ')}); cast first`);
    }
  }
}
