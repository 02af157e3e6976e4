/** Gradients of the reductions (sum, max, cumulative sum). */
import { registerGradient } from '../registry.js';
import * as E from './elementwise.js';
import { cast, expand, reshape } from './layout.js';
import { cumsum, sum } from './reduce.js';

/** Shape of a reduction's output with kept (size-1) dims, to broadcast a gradient back. */
function keptShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Registers the gradients of the reductions. */
export function registerReduceGradients(): void {
  registerGradient('Sum', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { attrs, inputShapes }) => {
      const g = reshape(dy, keptShape(inputShapes[0], attrs.axes));
      return [expand(g, inputShapes[0])];
    },
  });
  // The gradient goes to every element equal to the max (ties split it, as PyTorch's amax).
  registerGradient('Max', {
    saveInputs: true,
    saveOutput: true,
    grad: (dy, { attrs, inputs: [x], output }) => {
      const kept = keptShape(x.shape, attrs.axes);
      const y = reshape(output!, kept);
      const isMax = cast(E.equal(x, y), x.dtype);
      const count = sum(isMax, attrs.axes, true);
      const g = E.div(reshape(dy, kept), count);
      return [E.mul(isMax, g)];
    },
  });
  // Reverse cumulative sum: flip-free form total - cumsum + dy.
  registerGradient('CumSum', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { attrs: { axis } }) => {
      const total = sum(dy, axis, true);
      const c = cumsum(dy, axis);
      return [E.add(E.sub(total, c), dy)];
    },
  });
}
