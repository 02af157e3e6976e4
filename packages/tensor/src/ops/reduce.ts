import { DTypeError } from '../errors.js';
import { engine } from '../engine.js';
import { normalizeAxes, normalizeAxis } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { div } from './elementwise.js';

/** Axes argument of the reductions: one axis, a list, or all when omitted. */
export type Axes = number | readonly number[] | undefined;

function checkNumeric(name: string, x: Tensor): void {
  if (x.dtype === 'bool') throw new DTypeError(`${name}: dtype ${x.dtype} is storage-only here; cast first`);
}

/** Sum over `axes` (all by default). `[..] -> [..]` with the reduced dims removed, or 1 with `keepDims`. */
export function sum(x: Tensor, axes?: Axes, keepDims = false): Tensor {
  checkNumeric('sum', x);
  return engine.runOp('Sum', [x], { axes: normalizeAxes('sum', axes, x.rank), keepDims });
}

/** Mean over `axes` (all by default). */
export function mean(x: Tensor, axes?: Axes, keepDims = false): Tensor {
  const ax = normalizeAxes('mean', axes, x.rank);
  const count = ax.reduce((p, a) => p * x.shape[a], 1);
  const s = sum(x, ax, keepDims);
  const m = div(s, count);
  s.dispose();
  return m;
}

/** Maximum over `axes` (all by default). Gradient flows to the (first) maximal element. */
export function max(x: Tensor, axes?: Axes, keepDims = false): Tensor {
  checkNumeric('max', x);
  return engine.runOp('Max', [x], { axes: normalizeAxes('max', axes, x.rank), keepDims });
}

/** Index (i32) of the first maximum along `axis`. */
export function argmax(x: Tensor, axis = -1, keepDims = false): Tensor {
  checkNumeric('argmax', x);
  return engine.runOp('ArgMax', [x], { axes: [normalizeAxis('argmax', axis, x.rank)], keepDims });
}

/** Cumulative sum along `axis`. Shape unchanged. */
export function cumsum(x: Tensor, axis = -1): Tensor {
  checkNumeric('cumsum', x);
  return engine.runOp('CumSum', [x], { axis: normalizeAxis('cumsum', axis, x.rank) });
}
