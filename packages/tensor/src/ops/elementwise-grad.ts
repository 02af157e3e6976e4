/**
 * Gradients of the elementwise primitives (unary math, binary arithmetic, where).
 * Each runs inside a scope opened by backward, which frees its intermediates.
 */
import { engine } from '../engine.js';
import { registerGradient } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { sumToShape } from '../autograd/sum-to-shape.js';
import * as E from './elementwise.js';
import { cast } from './layout.js';

/**
 * `dy` passed on unchanged as a new handle on the same storage: backward disposes `dy`
 * after the gradient returns, and gradients are never written in place, so sharing is
 * safe and costs no dispatch (a copy was two: a zero scalar and an add).
 */
function passThrough(dy: Tensor): Tensor {
  return engine.shareStorage(dy, dy.shape, 'backward');
}

/** Registers the gradients of the unary, binary and where ops. */
export function registerElementwiseGradients(): void {
  registerGradient('Neg', { saveInputs: false, saveOutput: false, grad: (dy) => [E.neg(dy)] });
  registerGradient('Abs', { saveInputs: true, saveOutput: false, grad: (dy, { inputs: [x] }) => [E.mul(dy, E.sign(x))] });
  registerGradient('Exp', { saveInputs: false, saveOutput: true, grad: (dy, { output }) => [E.mul(dy, output!)] });
  registerGradient('Log', { saveInputs: true, saveOutput: false, grad: (dy, { inputs: [x] }) => [E.div(dy, x)] });
  registerGradient('Sqrt', { saveInputs: false, saveOutput: true, grad: (dy, { output }) => [E.div(dy, E.mul(output!, 2))] });
  // d rsqrt(x) = -0.5 * y^3
  registerGradient('Rsqrt', {
    saveInputs: false,
    saveOutput: true,
    grad: (dy, { output: y }) => [E.mul(dy, E.mul(E.mul(E.square(y!), y!), -0.5))],
  });
  registerGradient('Tanh', { saveInputs: false, saveOutput: true, grad: (dy, { output: y }) => [E.mul(dy, E.sub(1, E.square(y!)))] });
  registerGradient('Sigmoid', { saveInputs: false, saveOutput: true, grad: (dy, { output: y }) => [E.mul(dy, E.mul(y!, E.sub(1, y!)))] });
  registerGradient('Relu', { saveInputs: true, saveOutput: false, grad: (dy, { inputs: [x] }) => [E.mul(dy, cast(E.greater(x, 0), x.dtype))] });
  // d erf(x) = 2 / sqrt(pi) * exp(-x^2)
  registerGradient('Erf', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [x] }) => [E.mul(dy, E.mul(E.exp(E.neg(E.square(x))), 1.1283791670955126))],
  });
  registerGradient('Sin', { saveInputs: true, saveOutput: false, grad: (dy, { inputs: [x] }) => [E.mul(dy, E.cos(x))] });
  registerGradient('Cos', { saveInputs: true, saveOutput: false, grad: (dy, { inputs: [x] }) => [E.mul(dy, E.neg(E.sin(x)))] });
  registerGradient('Sign', { saveInputs: true, saveOutput: false, grad: (_dy, { inputs: [x] }) => [E.mul(x, 0)] });
  registerGradient('Floor', { saveInputs: true, saveOutput: false, grad: (_dy, { inputs: [x] }) => [E.mul(x, 0)] });
  registerGradient('Square', { saveInputs: true, saveOutput: false, grad: (dy, { inputs: [x] }) => [E.mul(dy, E.mul(x, 2))] });
  registerGradient('Reciprocal', { saveInputs: false, saveOutput: true, grad: (dy, { output: y }) => [E.mul(dy, E.neg(E.square(y!)))] });

  registerGradient('Add', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { inputShapes, needsGrad }) => [
      needsGrad[0] ? sumToShape(passThrough(dy), inputShapes[0]) : null,
      needsGrad[1] ? sumToShape(passThrough(dy), inputShapes[1]) : null,
    ],
  });
  registerGradient('Sub', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { inputShapes, needsGrad }) => [
      needsGrad[0] ? sumToShape(passThrough(dy), inputShapes[0]) : null,
      needsGrad[1] ? sumToShape(E.neg(dy), inputShapes[1]) : null,
    ],
  });
  // Scalar operand in the uniforms: x + c, x - c, c - x, x * c, x / c (comparisons have no gradient).
  registerGradient('BinaryScalar', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { attrs: { op, value, scalarFirst } }) => {
      if (op === 'Add' || (op === 'Sub' && !scalarFirst)) return [passThrough(dy)];
      if (op === 'Sub') return [E.neg(dy)];
      if (op === 'Mul') return [E.mul(dy, value)];
      if (op === 'Div' && !scalarFirst) return [E.div(dy, value)];
      throw new Error(`backward: BinaryScalar ${op}${scalarFirst ? ' (scalar first)' : ''} has no gradient`);
    },
  });
  registerGradient('Mul', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [a, b], inputShapes, needsGrad }) => [
      needsGrad[0] ? sumToShape(E.mul(dy, b), inputShapes[0]) : null,
      needsGrad[1] ? sumToShape(E.mul(dy, a), inputShapes[1]) : null,
    ],
  });
  registerGradient('Div', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [a, b], inputShapes, needsGrad }) => [
      needsGrad[0] ? sumToShape(E.div(dy, b), inputShapes[0]) : null,
      needsGrad[1] ? sumToShape(E.neg(E.mul(dy, E.div(a, E.square(b)))), inputShapes[1]) : null,
    ],
  });
  // d a^b / da = b a^(b-1); d/db = a^b ln a (only where a > 0, else 0 as PyTorch gives for a == 0)
  registerGradient('Pow', {
    saveInputs: true,
    saveOutput: true,
    grad: (dy, { inputs: [a, b], output, inputShapes, needsGrad }) => {
      let ga: Tensor | null = null;
      let gb: Tensor | null = null;
      if (needsGrad[0]) ga = sumToShape(E.mul(dy, E.mul(b, E.pow(a, E.sub(b, 1)))), inputShapes[0]);
      if (needsGrad[1]) {
        const ln = E.log(E.where(E.greater(a, 0), a, 1));
        gb = sumToShape(E.mul(dy, E.mul(output!, ln)), inputShapes[1]);
      }
      return [ga, gb];
    },
  });
  for (const op of ['Maximum', 'Minimum'] as const) {
    registerGradient(op, {
      saveInputs: true,
      saveOutput: false,
      grad: (dy, { inputs: [a, b], inputShapes, needsGrad }) => {
        // Ties send the gradient to `a`, matching the kernel which returns `a` on ties.
        const pick = op === 'Maximum' ? E.greaterEqual(a, b) : E.lessEqual(a, b);
        return [
          needsGrad[0] ? sumToShape(E.where(pick, dy, 0), inputShapes[0]) : null,
          needsGrad[1] ? sumToShape(E.where(pick, 0, dy), inputShapes[1]) : null,
        ];
      },
    });
  }
  registerGradient('Where', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [c, , ], inputShapes, needsGrad }) => [
      null,
      needsGrad[1] ? sumToShape(E.where(c, dy, 0), inputShapes[1]) : null,
      needsGrad[2] ? sumToShape(E.where(c, 0, dy), inputShapes[2]) : null,
    ],
  });
}
