/**
 * Half precision in the WGSL kernels: f16 is a storage type, every kernel computes in
 * f32. A float kernel reads an f16 element widened to f32 (exact), computes and
 * accumulates in f32, and rounds each result once to f16 when it stores it (the
 * conversion rounds to nearest even and overflows to infinity, as the cpu reference's
 * `f32ToF16Bits` does). So an f16 kernel equals the cpu reference (`widenF16`) bitwise
 * where no sum is formed, and within one f16 ulp where the f32 summation order differs.
 */
import type { DType } from '../../dtype.js';
import { DTypeError } from '../../errors.js';
import type { WebGpuKernelContext } from '../../kernel-context.js';
import { wgslType } from './wgsl.js';

/** How a float kernel stores one dtype while computing in f32. */
export interface FloatIO {
  /** WGSL element type of the storage (`f32` or `f16`). */
  readonly T: string;
  /** `enable f16;` where the storage is f16, else empty (goes first in the source). */
  readonly enable: string;
  /** WGSL expression reading storage expression `e` as an f32. */
  load(e: string): string;
  /** WGSL expression turning f32 expression `e` into the storage type. */
  store(e: string): string;
}

/**
 * Throws a clear DTypeError when `op` is given f16 tensors on an adapter without the
 * `shader-f16` feature (f16 tensors cannot normally be made there; this names the op).
 */
export function checkF16(ctx: WebGpuKernelContext, op: string, dtypes: readonly DType[]): void {
  if (dtypes.includes('f16') && !ctx.capabilities.f16) {
    throw new DTypeError(`${op}: f16 needs a WebGPU adapter with the 'shader-f16' feature, which this adapter lacks (use f32)`);
  }
}

/** `enable f16;` when any of `dtypes` is f16 (after {@link checkF16}), else empty. */
export function enableF16(ctx: WebGpuKernelContext, op: string, dtypes: readonly DType[]): string {
  checkF16(ctx, op, dtypes);
  return dtypes.includes('f16') ? 'enable f16;\n' : '';
}

/** The {@link FloatIO} of a float kernel storing `dtype` (f32 or f16). */
export function floatIO(ctx: WebGpuKernelContext, op: string, dtype: DType): FloatIO {
  const T = wgslType(dtype);
  const half = dtype === 'f16';
  return {
    T,
    enable: enableF16(ctx, op, [dtype]),
    load: (e) => (half ? `f32(${e})` : e),
    store: (e) => (half ? `f16(${e})` : e),
  };
}
