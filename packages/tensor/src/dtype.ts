/**
 * Element types a tensor can hold.
 *
 * - `f32`: the compute type of every kernel.
 * - `f16`: storage type on adapters with `shader-f16` (cast to and from f32).
 * - `f64`: cpu backend only; the float64 reference used by gradient checks.
 * - `i32`, `u32`: indices and packed data (4-bit weights live in `u32` words).
 * - `bool`: result of comparisons; stored as one 32-bit word per element so that
 *   every backend can address it without byte packing.
 */
export type DType = 'f32' | 'f16' | 'f64' | 'i32' | 'u32' | 'bool';

/** Typed array that backs a host copy of a tensor of the given dtype. */
export type TypedArrayFor<D extends DType> = D extends 'f32'
  ? Float32Array
  : D extends 'f64'
    ? Float64Array
    : D extends 'f16'
      ? Uint16Array
      : D extends 'i32'
        ? Int32Array
        : Uint32Array;

/** Any typed array a tensor's data can come back as. */
export type TensorData = Float32Array | Float64Array | Uint16Array | Int32Array | Uint32Array;

/** Bytes per element of each dtype. */
export const BYTES_PER_ELEMENT: Readonly<Record<DType, number>> = {
  f32: 4,
  f16: 2,
  f64: 8,
  i32: 4,
  u32: 4,
  bool: 4,
};

/** True for the floating-point dtypes (those that can carry gradients). */
export function isFloat(dtype: DType): boolean {
  return dtype === 'f32' || dtype === 'f16' || dtype === 'f64';
}

/** Allocates a zeroed host array for `size` elements of `dtype`. */
export function allocHostArray(dtype: DType, size: number): TensorData {
  switch (dtype) {
    case 'f32':
      return new Float32Array(size);
    case 'f64':
      return new Float64Array(size);
    case 'f16':
      return new Uint16Array(size);
    case 'i32':
      return new Int32Array(size);
    case 'u32':
    case 'bool':
      return new Uint32Array(size);
  }
}

/** Views `buffer` as the host array type of `dtype` (no copy). */
export function viewHostArray(dtype: DType, buffer: ArrayBuffer, size: number): TensorData {
  switch (dtype) {
    case 'f32':
      return new Float32Array(buffer, 0, size);
    case 'f64':
      return new Float64Array(buffer, 0, size);
    case 'f16':
      return new Uint16Array(buffer, 0, size);
    case 'i32':
      return new Int32Array(buffer, 0, size);
    case 'u32':
    case 'bool':
      return new Uint32Array(buffer, 0, size);
  }
}
