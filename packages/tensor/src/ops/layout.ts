import type { DType } from '../dtype.js';
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { engine } from '../engine.js';
import type { StridedCopyAttrs } from '../op-names.js';
import { assertValidShape, normalizeAxis, shapesEqual, sizeOf, stridesOf } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { add } from './elementwise.js';

/**
 * Same elements, new shape (free: shares storage). One dim may be -1 (inferred).
 * @example reshape(x, [2, -1])
 */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const resolved = [...shape];
  const infer = resolved.indexOf(-1);
  if (infer !== -1) {
    const rest = sizeOf(resolved.filter((_, i) => i !== infer));
    if (rest === 0 || x.size % rest !== 0) {
      throw new ShapeError(`reshape: cannot infer -1 in ${fmtShape(shape)} for ${x.size} elements`);
    }
    resolved[infer] = x.size / rest;
  }
  assertValidShape('reshape', resolved);
  if (sizeOf(resolved) !== x.size) {
    throw new ShapeError(`reshape: ${fmtShape(x.shape)} (${x.size} elements) cannot become ${fmtShape(shape)}`);
  }
  if (shapesEqual(resolved, x.shape) && !x.requiresGrad) return engine.shareStorage(x, resolved, 'reshape');
  return engine.runOp('Reshape', [x], { shape: resolved });
}

/** Inserts a size-1 dim at `axis`. */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = axis < 0 ? axis + x.rank + 1 : axis;
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
}

/** Removes size-1 dims (the given axis, or all). */
export function squeeze(x: Tensor, axis?: number): Tensor {
  if (axis === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const a = normalizeAxis('squeeze', axis, x.rank);
  if (x.shape[a] !== 1) throw new ShapeError(`squeeze: dim ${axis} of ${fmtShape(x.shape)} is not 1`);
  return reshape(x, x.shape.filter((_, i) => i !== a));
}

/** Runs the strided-copy kernel (the layout workhorse). */
function stridedCopy(x: Tensor, attrs: StridedCopyAttrs): Tensor {
  return engine.runOp('StridedCopy', [x], attrs);
}

/**
 * Reorders dims: output dim `i` is input dim `perm[i]`. `[d0..dn] -> [d_perm0..]`.
 * @example permute(x, [0, 2, 1, 3])
 */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank || new Set(perm.map((p) => normalizeAxis('permute', p, x.rank))).size !== x.rank) {
    throw new ShapeError(`permute: ${JSON.stringify(perm)} is not a permutation of the ${x.rank} dims of ${fmtShape(x.shape)}`);
  }
  const p = perm.map((a) => normalizeAxis('permute', a, x.rank));
  const inStrides = stridesOf(x.shape);
  const shape = p.map((a) => x.shape[a]);
  return stridedCopy(x, {
    shape,
    inOffset: 0,
    inStrides: p.map((a) => inStrides[a]),
    outShape: shape,
    outOffset: 0,
    outStrides: stridesOf(shape),
    fill: 0,
  });
}

/** Swaps two dims (default: the last two). */
export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const a = normalizeAxis('transpose', dim0, x.rank);
  const b = normalizeAxis('transpose', dim1, x.rank);
  const perm = x.shape.map((_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

/**
 * Sub-tensor `x[begin[0]:begin[0]+size[0], ...]`; `size` -1 means "to the end".
 * Missing trailing entries take whole dims.
 */
export function slice(x: Tensor, begin: readonly number[], size?: readonly number[]): Tensor {
  const b = x.shape.map((d, i) => {
    const v = begin[i] ?? 0;
    return v < 0 ? v + d : v;
  });
  const s = x.shape.map((d, i) => {
    const v = size?.[i] ?? -1;
    return v === -1 ? d - b[i] : v;
  });
  for (let i = 0; i < x.rank; i++) {
    if (b[i] < 0 || s[i] < 0 || b[i] + s[i] > x.shape[i]) {
      throw new ShapeError(`slice: begin ${JSON.stringify(begin)} size ${JSON.stringify(size ?? [])} is out of bounds for ${fmtShape(x.shape)}`);
    }
  }
  const strides = stridesOf(x.shape);
  return stridedCopy(x, {
    shape: s,
    inOffset: b.reduce((acc, v, i) => acc + v * strides[i], 0),
    inStrides: strides,
    outShape: s,
    outOffset: 0,
    outStrides: stridesOf(s),
    fill: 0,
  });
}

/** Elements `[start, end)` along one axis. */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = normalizeAxis('narrow', axis, x.rank);
  const begin = x.shape.map(() => 0);
  const size = x.shape.map(() => -1);
  begin[a] = start;
  size[a] = length;
  return slice(x, begin, size);
}

/** Splits along `axis` into pieces of the given sizes (or `n` equal pieces). */
export function split(x: Tensor, sizesOrCount: number | readonly number[], axis = 0): Tensor[] {
  const a = normalizeAxis('split', axis, x.rank);
  const dim = x.shape[a];
  let sizes: number[];
  if (typeof sizesOrCount === 'number') {
    if (dim % sizesOrCount !== 0) throw new ShapeError(`split: dim ${a} of ${fmtShape(x.shape)} is not divisible into ${sizesOrCount} pieces`);
    sizes = new Array<number>(sizesOrCount).fill(dim / sizesOrCount);
  } else sizes = [...sizesOrCount];
  if (sizes.reduce((p, v) => p + v, 0) !== dim) {
    throw new ShapeError(`split: sizes ${JSON.stringify(sizes)} do not sum to dim ${a} (${dim}) of ${fmtShape(x.shape)}`);
  }
  let start = 0;
  return sizes.map((len) => {
    const piece = narrow(x, a, start, len);
    start += len;
    return piece;
  });
}

/**
 * Pads with `value`: `padding[i] = [before, after]` for dim i (missing dims: none).
 * `[.., d, ..] -> [.., before + d + after, ..]`.
 */
export function pad(x: Tensor, padding: readonly (readonly [number, number])[], value = 0): Tensor {
  const p = x.shape.map((_, i) => padding[i] ?? [0, 0]);
  if (p.some(([b, e]) => b < 0 || e < 0 || !Number.isInteger(b) || !Number.isInteger(e))) {
    throw new ShapeError(`pad: paddings must be non-negative integers, got ${JSON.stringify(padding)}`);
  }
  const outShape = x.shape.map((d, i) => d + p[i][0] + p[i][1]);
  const outStrides = stridesOf(outShape);
  return stridedCopy(x, {
    shape: [...x.shape],
    inOffset: 0,
    inStrides: stridesOf(x.shape),
    outShape,
    outOffset: p.reduce((acc, [b], i) => acc + b * outStrides[i], 0),
    outStrides,
    fill: value,
  });
}

/** Broadcasts to `shape` (size-1 dims repeat; new leading dims are added). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const offset = shape.length - x.rank;
  if (offset < 0) throw new ShapeError(`expand: ${fmtShape(x.shape)} has more dims than ${fmtShape(shape)}`);
  const strides = stridesOf(x.shape);
  const inStrides = shape.map((d, i) => {
    const j = i - offset;
    if (j < 0) return 0;
    if (x.shape[j] === d) return strides[j];
    if (x.shape[j] === 1) return 0;
    throw new ShapeError(`expand: ${fmtShape(x.shape)} cannot expand to ${fmtShape(shape)} (dim ${i})`);
  });
  return stridedCopy(x, {
    shape: [...shape],
    inOffset: 0,
    inStrides,
    outShape: [...shape],
    outOffset: 0,
    outStrides: stridesOf(shape),
    fill: 0,
  });
}

/**
 * Joins tensors along `axis` (all other dims equal). Built as a sum of zero-padded
 * pieces, so each piece's gradient is a slice.
 */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new ShapeError('concat: no tensors given');
  const a = normalizeAxis('concat', axis, xs[0].rank);
  for (const t of xs) {
    if (t.rank !== xs[0].rank || t.shape.some((d, i) => i !== a && d !== xs[0].shape[i]) || t.dtype !== xs[0].dtype) {
      throw new ShapeError(`concat: shapes ${xs.map((t) => `${fmtShape(t.shape)} ${t.dtype}`).join(', ')} differ outside axis ${a}`);
    }
  }
  if (xs.length === 1) return add(xs[0], 0);
  const total = xs.reduce((p, t) => p + t.shape[a], 0);
  let before = 0;
  let acc: Tensor | null = null;
  for (const t of xs) {
    const padding = t.shape.map((): [number, number] => [0, 0]);
    padding[a] = [before, total - before - t.shape[a]];
    before += t.shape[a];
    const padded = pad(t, padding);
    if (acc === null) acc = padded;
    else {
      const next: Tensor = add(acc, padded);
      acc.dispose();
      padded.dispose();
      acc = next;
    }
  }
  return acc!;
}

/** Stacks equal-shape tensors along a new `axis`. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  const parts = xs.map((t) => unsqueeze(t, axis));
  const out = concat(parts, axis);
  for (const p of parts) p.dispose();
  return out;
}

/**
 * Rows of `x` selected along axis 0: `x [V, ...rest]`, `indices` i32 of any shape
 * `[...I]` -> `[...I, ...rest]` (embedding lookup). Backward is a scatter-add.
 * An out-of-range index throws `IndexError`: on cpu at the call, on webgpu at (or
 * before) the next readback.
 */
export function gather(x: Tensor, indices: Tensor): Tensor {
  if (indices.dtype !== 'i32') throw new DTypeError(`gather: indices must be i32, got ${indices.dtype}`);
  if (x.rank < 1) throw new ShapeError(`gather: x must have rank >= 1, got ${fmtShape(x.shape)}`);
  return engine.runOp('Gather', [x, indices], {});
}

/**
 * Zeros `[numRows, ...rest]` plus rows of `src [...I, ...rest]` added at `indices [...I]`.
 * An index outside `[0, numRows)` throws `IndexError` (webgpu: at the next readback).
 */
export function scatterAdd(src: Tensor, indices: Tensor, numRows: number): Tensor {
  if (indices.dtype !== 'i32') throw new DTypeError(`scatterAdd: indices must be i32, got ${indices.dtype}`);
  if (!shapesEqual(src.shape.slice(0, indices.rank), indices.shape)) {
    throw new ShapeError(`scatterAdd: src ${fmtShape(src.shape)} must start with the indices shape ${fmtShape(indices.shape)}`);
  }
  return engine.runOp('ScatterAdd', [src, indices], { numRows });
}

/** Keeps the upper triangle (`col - row >= diagonal`) of the last two dims, `fill` elsewhere. */
export function triu(x: Tensor, diagonal = 0, fill = 0): Tensor {
  if (x.rank < 2) throw new ShapeError(`triu: needs rank >= 2, got ${fmtShape(x.shape)}`);
  return engine.runOp('Triu', [x], { diagonal, fill });
}

/** Converts to `dtype` (floats to ints truncate toward zero; nonzero becomes true). */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return engine.runOp('Reshape', [x], { shape: [...x.shape] });
  return engine.runOp('Cast', [x], { dtype });
}
