/**
 * Fused activations: GELU (erf and tanh forms) and SiLU. Each has one elementwise
 * kernel per backend and a composite definition in primitives (the fallback and the
 * oracle of those kernels).
 */
import { registerComposite } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { add, erf, exp, mul, sigmoid, square, sub, tanh } from './elementwise.js';
import { unary } from './unary.js';

/** GELU with the exact erf form `0.5 x (1 + erf(x / sqrt 2))` (PyTorch `approximate='none'`). Shape unchanged. */
export const gelu = (x: Tensor) => unary('Gelu', 'gelu', x);
/** GELU with the tanh approximation (PyTorch `approximate='tanh'`, GPT-2's `gelu_new`). Shape unchanged. */
export const geluTanh = (x: Tensor) => unary('GeluTanh', 'geluTanh', x);
/** SiLU / swish `x * sigmoid(x)`. Shape unchanged. */
export const silu = (x: Tensor) => unary('Silu', 'silu', x);

/** Registers the composite definitions of the activations. */
export function registerActivationComposites(): void {
  registerComposite('Gelu', ([x]) => mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1)));
  registerComposite('GeluTanh', ([x]) => {
    const inner = mul(add(x, mul(mul(mul(x, x), x), 0.044715)), 0.7978845608028654);
    return mul(mul(x, 0.5), add(tanh(inner), 1));
  });
  registerComposite('Silu', ([x]) => mul(x, sigmoid(x)));
  registerActivationGradComposites();
}

/**
 * The derivatives of the activations times `dy`, inputs `[dy, x]`, written with
 * primitives: the composites of `GeluGrad`, `GeluTanhGrad`, `SiluGrad`.
 */
function registerActivationGradComposites(): void {
  // d/dx 0.5 x (1 + erf(x/sqrt2)) = Phi(x) + x phi(x), Phi(x) = 0.5 (1 + erf(x/sqrt2)).
  registerComposite('GeluGrad', ([dy, x]) => {
    const cdf = mul(add(erf(mul(x, Math.SQRT1_2)), 1), 0.5);
    const pdf = mul(exp(mul(square(x), -0.5)), 0.3989422804014327);
    return mul(dy, add(cdf, mul(x, pdf)));
  });
  // y = 0.5 x (1 + tanh(u)), u = c (x + 0.044715 x^3); dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3*0.044715 x^2)
  registerComposite('GeluTanhGrad', ([dy, x]) => {
    const c = 0.7978845608028654;
    const x2 = square(x);
    const t = tanh(mul(add(x, mul(mul(x2, x), 0.044715)), c));
    const a = mul(add(t, 1), 0.5);
    const du = mul(add(mul(x2, 3 * 0.044715), 1), c);
    const b = mul(mul(mul(x, sub(1, square(t))), du), 0.5);
    return mul(dy, add(a, b));
  });
  // silu' = s (1 + x (1 - s))
  registerComposite('SiluGrad', ([dy, x]) => {
    const s = sigmoid(x);
    return mul(dy, mul(s, add(mul(x, sub(1, s)), 1)));
  });
}
