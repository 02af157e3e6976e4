/** Gradients of layer norm and RMS norm: a fused input-gradient op, and row sums for the weights. */
import { engine } from '../engine.js';
import { registerGradient } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { mul } from './elementwise.js';
import { reshape } from './layout.js';
import { layerNorm, rmsNorm } from './norms.js';
import { sum } from './reduce.js';

/** Sums `t [..., D]` over every dim but the last: `-> [D]`. */
function sumRows(t: Tensor): Tensor {
  return sum(reshape(t, [-1, t.shape[t.rank - 1]]), 0);
}

/** Registers the gradients of the norms. */
export function registerNormGradients(): void {
  // dx is one fused kernel; dweight/dbias reduce over rows using the normalised input.
  registerGradient('LayerNorm', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { attrs, inputs: [x, w], needsGrad }) => [
      needsGrad[0] ? engine.runOp('LayerNormGrad', [dy, x, w], attrs) : null,
      needsGrad[1] ? sumRows(mul(dy, layerNorm(x, null, null, attrs.eps))) : null,
      needsGrad[2] ? sumRows(dy) : null,
    ],
  });
  registerGradient('RmsNorm', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { attrs, inputs: [x, w], needsGrad }) => [
      needsGrad[0] ? engine.runOp('RmsNormGrad', [dy, x, w], attrs) : null,
      needsGrad[1] ? sumRows(mul(dy, rmsNorm(x, null, attrs.eps))) : null,
    ],
  });
}
