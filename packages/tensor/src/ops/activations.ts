/**
 * Fused activations: GELU (erf and tanh forms) and SiLU. Each has one elementwise
 * kernel per backend and a composite definition in primitives (the fallback and the
 * oracle of those kernels).
 */
import { registerComposite } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { add, erf, mul, sigmoid, tanh } from './elementwise.js';
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
}
