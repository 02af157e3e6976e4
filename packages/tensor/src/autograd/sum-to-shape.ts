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
