/** Gradient of the batched matmul. */
import { registerGradient } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { sumToShape } from '../autograd/sum-to-shape.js';
import { matmul } from './matmul.js';

/** Registers the gradient of MatMul. */
export function registerMatmulGradients(): void {
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
