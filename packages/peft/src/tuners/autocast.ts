/**
 * Adapters over a half-precision base (PyTorch autocast / PEFT semantics): adapter
 * weights and their optimizer state stay f32; a tuner layer casts the f16 activations
 * to the adapter's dtype, computes its part in f32, and rounds the sum with the base
 * output once to the base's dtype (PEFT's `result.to(torch_result_dtype)`).
 */
import { type DType, type Tensor, add, cast } from '@webpeft/tensor';

/** `t` in `dtype`: the same tensor when it already is, else a cast (inside a tidy scope). */
export function asDtype(t: Tensor, dtype: DType): Tensor {
  return t.dtype === dtype ? t : cast(t, dtype);
}

/**
 * `y + delta` for a base output `y` (f16 or f32) and an adapter term `delta` (f32): added
 * in `delta`'s dtype and rounded once to `y`'s. Shapes broadcast as in `add`. Inside a
 * tidy scope.
 */
export function addToBase(y: Tensor, delta: Tensor): Tensor {
  if (y.dtype === delta.dtype) return add(y, delta);
  return cast(add(cast(y, delta.dtype), delta), y.dtype);
}
