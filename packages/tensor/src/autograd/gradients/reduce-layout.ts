import { engine } from '../../engine.js';
import { registerGradient } from '../../registry.js';
import { stridesOf } from '../../shape.js';
import * as E from '../../ops/elementwise.js';
import { cast, expand, reshape, scatterAdd, gather } from '../../ops/layout.js';
import { cumsum, sum } from '../../ops/reduce.js';
import { matmul } from '../../ops/matmul.js';
import { sumToShape } from './util.js';
import type { Tensor } from '../../tensor.js';

/** Shape of a reduction's output with kept (size-1) dims, to broadcast a gradient back. */
function keptShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Registers the gradients of reductions, layout ops and matmul. */
export function registerReduceLayoutGradients(): void {
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
  registerGradient('Reshape', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { inputShapes }) => [reshape(dy, inputShapes[0])],
  });
  registerGradient('Cast', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { inputShapes }) => [reshape(dy, inputShapes[0])],
  });
  // The gradient of a strided copy is the transposed copy: read dy where the forward wrote.
  registerGradient('StridedCopy', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { attrs, inputShapes }) => {
      const inShape = inputShapes[0];
      const direct = attrs.inStrides.every((s, i) => s !== 0 || attrs.shape[i] === 1);
      if (direct) {
        // Each input element is read at most once: copy dy back with roles swapped.
        const g = engine.runOp('StridedCopy', [dy], {
          shape: attrs.shape,
          inOffset: attrs.outOffset,
          inStrides: attrs.outStrides,
          outShape: [...inShape],
          outOffset: attrs.inOffset,
          outStrides: attrs.inStrides,
          fill: 0,
        });
        return [g];
      }
      // Broadcast reads (expand): gather dy into iteration order, then sum the broadcast dims.
      const it = engine.runOp('StridedCopy', [dy], {
        shape: attrs.shape,
        inOffset: attrs.outOffset,
        inStrides: attrs.outStrides,
        outShape: attrs.shape,
        outOffset: 0,
        outStrides: stridesOf(attrs.shape),
        fill: 0,
      });
      const axes = attrs.inStrides.map((s, i) => (s === 0 && attrs.shape[i] !== 1 ? i : -1)).filter((i) => i >= 0);
      const reduced = sum(it, axes, true);
      const nonBroadcast = attrs.shape.map((d, i) => (axes.includes(i) ? 1 : d));
      // Remaining dims are read with the input's own strides: copy them back.
      const g = engine.runOp('StridedCopy', [reduced], {
        shape: nonBroadcast,
        inOffset: 0,
        inStrides: stridesOf(nonBroadcast),
        outShape: [...inShape],
        outOffset: attrs.inOffset,
        outStrides: attrs.inStrides.map((s, i) => (axes.includes(i) ? 0 : s)),
        fill: 0,
      });
      return [g];
    },
  });
  registerGradient('Gather', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [, idx], inputShapes }) => [scatterAdd(dy, idx, inputShapes[0][0]), null],
  });
  registerGradient('ScatterAdd', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [, idx] }) => [gather(dy, idx), null],
  });
  registerGradient('Triu', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { attrs }) => [engine.runOp('Triu', [dy], { diagonal: attrs.diagonal, fill: 0 })],
  });
  // C = op(A) op(B): dA = dC op(B)^T (transposed back if A was), dB likewise; batch dims summed.
  registerGradient('MatMul', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { attrs: { transposeA, transposeB }, inputs: [a, b], inputShapes, needsGrad }) => {
      let ga: Tensor | null = null;
      let gb: Tensor | null = null;
      if (needsGrad[0]) {
        ga = transposeA ? matmul(b, dy, { transposeA: transposeB, transposeB: true }) : matmul(dy, b, { transposeB: !transposeB });
        ga = sumToShape(ga, inputShapes[0]);
      }
      if (needsGrad[1]) {
        gb = transposeB ? matmul(dy, a, { transposeA: true, transposeB: transposeA }) : matmul(a, dy, { transposeA: !transposeA });
        gb = sumToShape(gb, inputShapes[1]);
      }
      return [ga, gb];
    },
  });
}
