import { ShapeError, fmtShape } from './errors.js';

/** Number of elements of a shape (1 for a scalar `[]`). */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides of a contiguous tensor of `shape`. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/**
 * Whether a strided layout of `shape` (element `offset`, one stride per dimension) is
 * the row-major layout of all `size` elements of its storage: every element, each once,
 * in order. Size-1 dimensions may have any stride.
 */
export function isWholeRowMajor(shape: readonly number[], offset: number, strides: readonly number[], size: number): boolean {
  if (offset !== 0 || sizeOf(shape) !== size) return false;
  const own = stridesOf(shape);
  return shape.every((n, d) => n === 1 || strides[d] === own[d]);
}

/**
 * Numpy broadcasting of two shapes: dims are aligned from the right and must be equal
 * or 1. Throws a {@link ShapeError} naming `op` and both shapes otherwise.
 */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast (dim ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/**
 * Strides for reading a tensor of `shape` as if it had the (larger) `outShape`:
 * broadcast dims get stride 0, missing leading dims are added.
 */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const own = stridesOf(shape);
  const offset = outShape.length - shape.length;
  return outShape.map((_, i) => {
    const j = i - offset;
    if (j < 0) return 0;
    return shape[j] === 1 && outShape[i] !== 1 ? 0 : own[j];
  });
}

/**
 * Normalises axes (negative counts from the end) for a tensor of `rank`; `undefined`
 * means all axes. Returns them sorted and unique, or throws naming `op`.
 */
export function normalizeAxes(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : [...axes];
  const out = new Set<number>();
  for (const a of list) {
    const n = a < 0 ? a + rank : a;
    if (!Number.isInteger(n) || n < 0 || n >= rank) {
      throw new ShapeError(`${op}: axis ${a} is out of range for rank ${rank}`);
    }
    out.add(n);
  }
  return [...out].sort((x, y) => x - y);
}

/** Normalises one axis (negative counts from the end) or throws naming `op`. */
export function normalizeAxis(op: string, axis: number, rank: number): number {
  return normalizeAxes(op, axis, rank)[0];
}

/** True when two shapes are identical. */
export function shapesEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Validates that every dim is a non-negative integer; throws naming `op`. */
export function assertValidShape(op: string, shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${op}: invalid shape ${fmtShape(shape)}`);
  }
}
