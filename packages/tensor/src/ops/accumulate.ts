/**
 * The in-place op `Accumulate`: `dst[region] += src`, where the region of `dst` is an
 * element offset plus one stride per dimension of `src` (by default all of `dst`, which
 * then has `src`'s shape). The engine sums gradients with it when the pending gradient
 * owns its storage (no new buffer per extra use of a tensor, none for `.grad` across
 * backward calls), and a slice's gradient adds into its window of a bigger one. Each
 * element is `dst + src` in that order, rounded once, exactly as the `Add` kernel of the
 * same backend computes it, so in-place and out-of-place sums are bitwise equal.
 */
import { throwBusy } from '../busy.js';
import { engine } from '../engine.js';
import { isFloat } from '../dtype.js';
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { isWholeRowMajor, shapesEqual, stridesOf } from '../shape.js';
import type { Tensor } from '../tensor.js';

/** Arguments of the `Accumulate` in-place op. */
export interface AccumulateArgs {
  /** The accumulator, written in place. Must own its storage: nothing else may read it meanwhile. */
  readonly dst: Tensor;
  /** The addend, read in row-major order of its own shape; same dtype and backend as `dst`. */
  readonly src: Tensor;
  /**
   * Where `src` lands in `dst`: element `idx` of `src` is added to `dst` element
   * `offset + sum(idx[d] * strides[d])`. Omitted: all of `dst` (`src` of `dst`'s shape).
   * The region must lie inside `dst` and never reach one element twice.
   */
  readonly region?: AccumulateRegion;
}

/** A window of the accumulator: element offset and one stride per dimension of `src`. */
export interface AccumulateRegion {
  readonly offset: number;
  readonly strides: readonly number[];
}

declare module '../registry.js' {
  interface InPlaceOps {
    /** `dst[region] += src` (see {@link AccumulateArgs}); f32, f16 (summed in f32, rounded once) and f64 where the backend has it. */
    Accumulate: { args: AccumulateArgs; result: void };
  }
}

/**
 * Checks the arguments of `Accumulate` (called by every backend's kernel, before it
 * writes anything) and returns the region, defaulted to all of `dst`. Throws a
 * `ShapeError` / `DTypeError` naming the op, shapes and dtypes.
 */
export function checkAccumulate({ dst, src, region }: AccumulateArgs): AccumulateRegion {
  dst.liveStorage('accumulate');
  src.liveStorage('accumulate');
  // Not an owner's update (as an optimizer step is): a tensor in flight is refused like any op's input.
  if (dst.busyWith !== null) throwBusy('accumulate', dst);
  if (src.busyWith !== null) throwBusy('accumulate', src);
  if (dst.backend !== src.backend) throw new Error(`accumulate: dst is on '${dst.backend.name}' and src on '${src.backend.name}'; move them with toBackend()`);
  if (!isFloat(dst.dtype) || dst.dtype !== src.dtype) {
    throw new DTypeError(`accumulate: dst ${fmtShape(dst.shape)} ${dst.dtype} and src ${fmtShape(src.shape)} ${src.dtype} must share one float dtype`);
  }
  if (dst.storage === src.storage)
    throw new ShapeError(`accumulate: dst ${fmtShape(dst.shape)} and src ${fmtShape(src.shape)} share one storage (the sum would read what it writes)`);
  if (!region) {
    if (!shapesEqual(dst.shape, src.shape))
      throw new ShapeError(`accumulate: src ${fmtShape(src.shape)} must have dst's shape ${fmtShape(dst.shape)} (or pass a region)`);
    return { offset: 0, strides: stridesOf(dst.shape) };
  }
  const { offset, strides } = region;
  const where = `accumulate: region offset ${offset}, strides [${strides.join(', ')}] of src ${fmtShape(src.shape)} into dst ${fmtShape(dst.shape)}`;
  if (strides.length !== src.rank) throw new ShapeError(`${where}: needs one stride per src dimension`);
  if (!Number.isSafeInteger(offset) || offset < 0 || strides.some((s) => !Number.isSafeInteger(s) || s < 0)) {
    throw new ShapeError(`${where}: offset and strides must be non-negative integers`);
  }
  if (src.size === 0) return region;
  // Injective when each stride (ascending) passes every element the smaller ones reach.
  const dims = src.shape.map((n, d) => ({ n, s: strides[d] })).filter((x) => x.n > 1);
  dims.sort((a, b) => a.s - b.s);
  let reach = 0;
  for (const { n, s } of dims) {
    if (s <= reach) throw new ShapeError(`${where}: reaches some dst element twice (a broadcast or overlapping window)`);
    reach += (n - 1) * s;
  }
  if (offset + reach >= dst.size) throw new ShapeError(`${where}: reaches element ${offset + reach}, past dst's ${dst.size}`);
  return region;
}

/** Whether `region` covers `dst` exactly in its own row-major order (so chunks of same-shape operands align). */
export function isWholeRegion(dst: Tensor, src: Tensor, region: AccumulateRegion): boolean {
  return isWholeRowMajor(src.shape, region.offset, region.strides, dst.size);
}

/**
 * `dst[region] += src` on `dst`'s backend (the `Accumulate` in-place op; see
 * {@link AccumulateArgs}). For gradients that add into a pending gradient
 * (`GradientSpec.gradInto`).
 */
export function accumulateInto(dst: Tensor, src: Tensor, region?: AccumulateRegion): void {
  engine.runInPlace('Accumulate', { dst, src, region }, dst.liveStorage('accumulate').backend);
}
