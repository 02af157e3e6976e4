/** Gradients of the softmax family: each is one fused gradient op (with its own composite). */
import { engine } from '../engine.js';
import { registerGradient } from '../registry.js';

/** Registers the gradients of softmax, log-softmax and cross-entropy. */
export function registerSoftmaxGradients(): void {
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
}
