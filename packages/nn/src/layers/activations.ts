import { type Tensor, gelu, geluTanh, relu, silu, tanh } from '@webpeft/tensor';

/** Activation functions by their Hugging Face `config.json` names (`hidden_act`, `activation_function`). */
export const ACTIVATIONS: Readonly<Record<string, (x: Tensor) => Tensor>> = {
  gelu,
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  gelu_fast: geluTanh,
  relu,
  silu,
  swish: silu,
  tanh,
};

/** The activation named `name`, or an error listing the known names. */
export function getActivation(name: string): (x: Tensor) => Tensor {
  const fn = ACTIVATIONS[name];
  if (!fn) throw new Error(`unknown activation '${name}' (known: ${Object.keys(ACTIVATIONS).join(', ')})`);
  return fn;
}
