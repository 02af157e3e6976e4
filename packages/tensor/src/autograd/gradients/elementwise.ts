import { registerGradient } from '../../registry.js';
import type { Tensor } from '../../tensor.js';
import * as E from '../../ops/elementwise.js';
import { cast } from '../../ops/layout.js';
import { freeing, sumToShape } from './util.js';

/** `dy * f(x)` where `f` builds a local derivative from saved tensors; frees what it made. */
function chain(dy: Tensor, local: Tensor): Tensor {
  return freeing(E.mul(dy, local), local);
}

/** Registers the gradients of the unary, binary and where ops. */
export function registerElementwiseGradients(): void {
  registerGradient('Neg', { saveInputs: false, saveOutput: false, grad: (dy) => [E.neg(dy)] });
  registerGradient('Abs', { saveInputs: true, saveOutput: false, grad: (dy, { inputs: [x] }) => [chain(dy, E.sign(x))] });
  registerGradient('Exp', { saveInputs: false, saveOutput: true, grad: (dy, { output }) => [E.mul(dy, output!)] });
  registerGradient('Log', { saveInputs: true, saveOutput: false, grad: (dy, { inputs: [x] }) => [E.div(dy, x)] });
  registerGradient('Sqrt', {
    saveInputs: false,
    saveOutput: true,
    grad: (dy, { output }) => {
      const twice = E.mul(output!, 2);
      return [freeing(E.div(dy, twice), twice)];
    },
  });
  // d rsqrt(x) = -0.5 * y^3
  registerGradient('Rsqrt', {
    saveInputs: false,
    saveOutput: true,
    grad: (dy, { output: y }) => {
      const y2 = E.square(y!);
      const y3 = E.mul(y2, y!);
      const local = E.mul(y3, -0.5);
      return [freeing(chain(dy, local), y2, y3)];
    },
  });
  registerGradient('Tanh', {
    saveInputs: false,
    saveOutput: true,
    grad: (dy, { output: y }) => {
      const y2 = E.square(y!);
      return [freeing(chain(dy, E.sub(1, y2)), y2)];
    },
  });
  registerGradient('Sigmoid', {
    saveInputs: false,
    saveOutput: true,
    grad: (dy, { output: y }) => {
      const oneMinus = E.sub(1, y!);
      return [freeing(chain(dy, E.mul(y!, oneMinus)), oneMinus)];
    },
  });
  registerGradient('Relu', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [x] }) => {
      const pos = E.greater(x, 0);
      const mask = cast(pos, x.dtype);
      return [freeing(chain(dy, mask), pos)];
    },
  });
  // d/dx 0.5 x (1 + erf(x/sqrt2)) = Phi(x) + x * phi(x)
  registerGradient('Gelu', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [x] }) => {
      const gx = E.gelu(x);
      const cdf = E.div(gx, x); // Phi(x) where x != 0
      const x2 = E.square(x);
      const e = E.mul(x2, -0.5);
      const pdf = E.exp(e);
      const xpdf = E.mul(x, pdf);
      const xpdfScaled = E.mul(xpdf, 0.3989422804014327);
      // Phi(x) = (gelu(x) / x) is 0/0 at x == 0, where Phi = 0.5.
      const isZero = E.equal(x, 0);
      const cdfSafe = E.where(isZero, 0.5, cdf);
      const local = E.add(cdfSafe, xpdfScaled);
      return [freeing(chain(dy, local), gx, cdf, x2, e, pdf, xpdf, xpdfScaled, isZero, cdfSafe)];
    },
  });
  // y = 0.5 x (1 + tanh(u)), u = c (x + 0.044715 x^3); dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3*0.044715 x^2)
  registerGradient('GeluTanh', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [x] }) => {
      const c = 0.7978845608028654;
      const x2 = E.square(x);
      const x3 = E.mul(x2, x);
      const inner = E.add(x, E.mul(x3, 0.044715));
      const u = E.mul(inner, c);
      const t = E.tanh(u);
      const onePlusT = E.add(t, 1);
      const a = E.mul(onePlusT, 0.5);
      const t2 = E.square(t);
      const sech2 = E.sub(1, t2);
      const du = E.mul(E.add(E.mul(x2, 3 * 0.044715), 1), c);
      const b = E.mul(E.mul(E.mul(x, sech2), du), 0.5);
      const local = E.add(a, b);
      return [freeing(chain(dy, local), x2, x3, inner, u, t, onePlusT, a, t2, sech2, du, b)];
    },
  });
  // silu' = s (1 + x (1 - s))
  registerGradient('Silu', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [x] }) => {
      const s = E.sigmoid(x);
      const oneMinus = E.sub(1, s);
      const xo = E.mul(x, oneMinus);
      const onePlus = E.add(xo, 1);
      return [freeing(chain(dy, E.mul(s, onePlus)), s, oneMinus, xo, onePlus)];
    },
  });
  registerGradient('Sin', { saveInputs: true, saveOutput: false, grad: (dy, { inputs: [x] }) => [chain(dy, E.cos(x))] });
  registerGradient('Cos', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [x] }) => {
      const s = E.sin(x);
      return [freeing(chain(dy, E.neg(s)), s)];
    },
  });
  registerGradient('Sign', { saveInputs: true, saveOutput: false, grad: (_dy, { inputs: [x] }) => [E.mul(x, 0)] });
  registerGradient('Floor', { saveInputs: true, saveOutput: false, grad: (_dy, { inputs: [x] }) => [E.mul(x, 0)] });
  registerGradient('Square', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [x] }) => [chain(dy, E.mul(x, 2))],
  });
  registerGradient('Reciprocal', {
    saveInputs: false,
    saveOutput: true,
    grad: (dy, { output: y }) => {
      const y2 = E.square(y!);
      return [freeing(chain(dy, E.neg(y2)), y2)];
    },
  });

  registerGradient('Add', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { inputShapes, needsGrad }) => [
      needsGrad[0] ? sumToShape(E.add(dy, 0), inputShapes[0]) : null,
      needsGrad[1] ? sumToShape(E.add(dy, 0), inputShapes[1]) : null,
    ],
  });
  registerGradient('Sub', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { inputShapes, needsGrad }) => [
      needsGrad[0] ? sumToShape(E.add(dy, 0), inputShapes[0]) : null,
      needsGrad[1] ? sumToShape(E.neg(dy), inputShapes[1]) : null,
    ],
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
    grad: (dy, { inputs: [a, b], inputShapes, needsGrad }) => {
      const ga = needsGrad[0] ? sumToShape(E.div(dy, b), inputShapes[0]) : null;
      let gb: Tensor | null = null;
      if (needsGrad[1]) {
        const b2 = E.square(b);
        const q = E.div(a, b2);
        const t = E.mul(dy, q);
        gb = sumToShape(freeing(E.neg(t), b2, q, t), inputShapes[1]);
      }
      return [ga, gb];
    },
  });
  // d a^b / da = b a^(b-1); d/db = a^b ln a (only where a > 0, else 0 as PyTorch gives for a == 0)
  registerGradient('Pow', {
    saveInputs: true,
    saveOutput: true,
    grad: (dy, { inputs: [a, b], output, inputShapes, needsGrad }) => {
      let ga: Tensor | null = null;
      let gb: Tensor | null = null;
      if (needsGrad[0]) {
        const bm1 = E.sub(b, 1);
        const p = E.pow(a, bm1);
        const local = E.mul(b, p);
        ga = sumToShape(freeing(E.mul(dy, local), bm1, p, local), inputShapes[0]);
      }
      if (needsGrad[1]) {
        const pos = E.greater(a, 0);
        const safeA = E.where(pos, a, 1);
        const ln = E.log(safeA);
        const local = E.mul(output!, ln);
        gb = sumToShape(freeing(E.mul(dy, local), pos, safeA, ln, local), inputShapes[1]);
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
        const ga = needsGrad[0] ? sumToShape(E.where(pick, dy, 0), inputShapes[0]) : null;
        const gb = needsGrad[1] ? sumToShape(E.where(pick, 0, dy), inputShapes[1]) : null;
        pick.dispose();
        return [ga, gb];
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
