import { engine } from '../../engine.js';
import { registerGradient } from '../../registry.js';
import * as E from '../../ops/elementwise.js';
import { layerNorm, rmsNorm } from '../../ops/fused.js';
import { reshape } from '../../ops/layout.js';
import { sum } from '../../ops/reduce.js';
import type { Tensor } from '../../tensor.js';

/** Sums `t [..., D]` over every dim but the last: `-> [D]`. */
function sumRows(t: Tensor): Tensor {
  const d = t.shape[t.rank - 1];
  const flat = reshape(t, [-1, d]);
  return sum(flat, 0);
}

/** Registers the gradients of the fused ops (softmax, cross-entropy, norms, dropout). */
export function registerFusedGradients(): void {
  registerGradient('Softmax', {
    saveInputs: false,
    saveOutput: true,
    grad: (dy, { output }) => [engine.runOp('SoftmaxGrad', [dy, output!], {})],
  });
  registerGradient('LogSoftmax', {
    saveInputs: false,
    saveOutput: true,
    grad: (dy, { output }) => [engine.runOp('LogSoftmaxGrad', [dy, output!], {})],
  });
  registerGradient('CrossEntropy', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { attrs, inputs: [x, labels] }) => [engine.runOp('CrossEntropyGrad', [dy, x, labels], attrs), null],
  });
  // dx is one fused kernel; dweight/dbias reduce over rows using the normalised input.
  registerGradient('LayerNorm', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { attrs, inputs: [x, w], needsGrad }) => {
      const dx = needsGrad[0] ? engine.runOp('LayerNormGrad', [dy, x, w], attrs) : null;
      let dw: Tensor | null = null;
      if (needsGrad[1]) {
        const xhat = layerNorm(x, null, null, attrs.eps);
        dw = sumRows(E.mul(dy, xhat));
      }
      const db = needsGrad[2] ? sumRows(dy) : null;
      return [dx, dw, db];
    },
  });
  registerGradient('RmsNorm', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { attrs, inputs: [x, w], needsGrad }) => {
      const dx = needsGrad[0] ? engine.runOp('RmsNormGrad', [dy, x, w], attrs) : null;
      let dw: Tensor | null = null;
      if (needsGrad[1]) {
        const xhat = rmsNorm(x, null, attrs.eps);
        dw = sumRows(E.mul(dy, xhat));
      }
      return [dx, dw];
    },
  });
  // The same Philox mask (same seed and offset) scales the gradient.
  registerGradient('Dropout', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { attrs }) => [engine.runOp('Dropout', [dy], attrs)],
  });
}
