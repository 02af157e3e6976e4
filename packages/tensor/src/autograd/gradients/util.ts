import { shapesEqual } from '../../shape.js';
import type { Tensor } from '../../tensor.js';
import { reshape } from '../../ops/layout.js';
import { sum } from '../../ops/reduce.js';

/**
 * Reduces a broadcast gradient `g` back to `shape` (sums over the dims that
 * broadcasting added or expanded). Disposes `g` when it returns a new tensor.
 */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const s = sum(g, axes, true);
  const out = reshape(s, shape);
  s.dispose();
  g.dispose();
  return out;
}

/** Disposes intermediates of a gradient computation, returning `result`. */
export function freeing<T>(result: T, ...temps: Tensor[]): T {
  for (const t of temps) t.dispose();
  return result;
}
