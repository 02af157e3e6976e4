import { registerAttentionGradient } from '../ops/attention-grad.js';
import { registerAttentionComposites } from '../ops/attention.js';
import { registerActivationGradients } from '../ops/activations-grad.js';
import { registerDropoutGradient } from '../ops/dropout.js';
import { registerElementwiseGradients } from '../ops/elementwise-grad.js';
import { registerLayoutGradients } from '../ops/layout-grad.js';
import { registerMatmulGradients } from '../ops/matmul-grad.js';
import { registerStridedMatmulGradient } from '../ops/strided-matmul-grad.js';
import { registerStridedMatmulComposite } from '../ops/strided-matmul.js';
import { registerNormGradients } from '../ops/norms-grad.js';
import { registerReduceGradients } from '../ops/reduce-grad.js';
import { registerSoftmaxGradients } from '../ops/softmax-grad.js';
import { registerLinearCrossEntropyGradient } from '../ops/linear-cross-entropy-grad.js';
import { registerActivationComposites } from '../ops/activations.js';
import { registerBinaryScalarComposite } from '../ops/binary-scalar.js';
import { registerMatmulComposites } from '../ops/matmul.js';
import { registerNormComposites } from '../ops/norms.js';
import { registerRopeOps } from '../ops/rotary.js';
import { registerSwiGLUOps } from '../ops/swiglu.js';
import { registerSoftmaxComposites } from '../ops/softmax.js';
import { registerLinearCrossEntropyComposites } from '../ops/linear-cross-entropy.js';

let registered = false;

/** Registers every built-in gradient and composite definition once (called by `init`). */
export function registerGradientsAndComposites(): void {
  if (registered) return;
  registered = true;
  registerElementwiseGradients();
  registerActivationGradients();
  registerReduceGradients();
  registerLayoutGradients();
  registerMatmulGradients();
  registerStridedMatmulGradient();
  registerSoftmaxGradients();
  registerNormGradients();
  registerDropoutGradient();
  registerLinearCrossEntropyGradient();
  registerAttentionGradient();
  registerActivationComposites();
  registerSoftmaxComposites();
  registerNormComposites();
  registerMatmulComposites();
  registerStridedMatmulComposite();
  registerBinaryScalarComposite();
  registerLinearCrossEntropyComposites();
  registerAttentionComposites();
  registerRopeOps();
  registerSwiGLUOps();
}
