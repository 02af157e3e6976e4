/** Gradients of the fused activations, written with primitives. */
import { registerGradient } from '../registry.js';
import * as E from './elementwise.js';

/** Registers the gradients of GELU (both forms) and SiLU. */
export function registerActivationGradients(): void {
  // d/dx 0.5 x (1 + erf(x/sqrt2)) = Phi(x) + x phi(x), Phi(x) = 0.5 (1 + erf(x/sqrt2)).
  registerGradient('Gelu', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [x] }) => {
      const cdf = E.mul(E.add(E.erf(E.mul(x, Math.SQRT1_2)), 1), 0.5);
      const pdf = E.mul(E.exp(E.mul(E.square(x), -0.5)), 0.3989422804014327);
      return [E.mul(dy, E.add(cdf, E.mul(x, pdf)))];
    },
  });
  // y = 0.5 x (1 + tanh(u)), u = c (x + 0.044715 x^3); dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3*0.044715 x^2)
  registerGradient('GeluTanh', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [x] }) => {
      const c = 0.7978845608028654;
      const x2 = E.square(x);
      const t = E.tanh(E.mul(E.add(x, E.mul(E.mul(x2, x), 0.044715)), c));
      const a = E.mul(E.add(t, 1), 0.5);
      const du = E.mul(E.add(E.mul(x2, 3 * 0.044715), 1), c);
      const b = E.mul(E.mul(E.mul(x, E.sub(1, E.square(t))), du), 0.5);
      return [E.mul(dy, E.add(a, b))];
    },
  });
  // silu' = s (1 + x (1 - s))
  registerGradient('Silu', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [x] }) => {
      const s = E.sigmoid(x);
      return [E.mul(dy, E.mul(s, E.add(E.mul(x, E.sub(1, s)), 1)))];
    },
  });
}
