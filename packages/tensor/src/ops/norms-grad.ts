/** Gradients of layer norm and RMS norm: fused ops for the input and the weight gradients, a row sum for the bias. */
import { engine } from '../engine.js';
import { registerGradient } from '../registry.js';
import { sumRows } from '../autograd/sum-to-shape.js';

/** Registers the gradients of the norms. */
export function registerNormGradients(): void {
  // dx and dweight are one fused kernel each (dweight reduces dy * xhat over rows); dbias is a row sum.
  registerGradient('LayerNorm', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { attrs, inputs: [x, w], needsGrad }) => [
      needsGrad[0] ? engine.runOp('LayerNormGrad', [dy, x, w], attrs) : null,
      needsGrad[1] ? engine.runOp('LayerNormWeightGrad', [dy, x], attrs) : null,
      needsGrad[2] ? sumRows(dy) : null,
    ],
  });
  registerGradient('RmsNorm', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { attrs, inputs: [x, w], needsGrad }) => [
      needsGrad[0] ? engine.runOp('RmsNormGrad', [dy, x, w], attrs) : null,
      needsGrad[1] ? engine.runOp('RmsNormWeightGrad', [dy, x], attrs) : null,
    ],
  });
}
