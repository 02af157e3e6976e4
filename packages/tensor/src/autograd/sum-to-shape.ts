import { shapesEqual } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { reshape } from '../ops/layout.js';
import { sum } from '../ops/reduce.js';

/**
 * Reduces a broadcast gradient `g` back to `shape` (sums over the dims that
 * broadcasting added or expanded). Gradient functions run inside a scope that frees
 * their intermediates, so nothing here is disposed by hand.
 */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return reshape(sum(g, axes, true), shape);
}

/** Sums `t [..., D]` over every dim but the last: `-> [D]` (a norm's weight or bias gradient). */
export function sumRows(t: Tensor): Tensor {
  return sum(reshape(t, [-1, t.shape[t.rank - 1]]), 0);
}
