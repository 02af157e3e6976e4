/** Gradients of the layout primitives (reshape, cast, strided copy, gather, scatter-add, triu). */
import { engine } from '../engine.js';
import { registerGradient } from '../registry.js';
import { stridesOf } from '../shape.js';
import { cast, gather, reshape, scatterAdd } from './layout.js';
import { sum } from './reduce.js';

/** Registers the gradients of the layout ops. */
export function registerLayoutGradients(): void {
  registerGradient('Reshape', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { inputShapes }) => [reshape(dy, inputShapes[0])],
  });
  // A float-to-float cast's gradient is dy cast back to the input's dtype (f32 -> f16 rounds).
  registerGradient('Cast', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { inputShapes, inputDtypes }) => [reshape(cast(dy, inputDtypes[0]), inputShapes[0])],
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
}
