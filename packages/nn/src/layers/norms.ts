import { type Tensor, layerNorm, ones, rmsNorm, zeros } from '@webpeft/tensor';
import type { ParamOptions } from '../init.js';
import { Module } from '../module.js';

/** Layer norm over the last axis with `weight`, `bias [dim]`: `[..., dim] -> [..., dim]`. */
export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
    options: ParamOptions = {},
  ) {
    super();
    this.weight = this.registerParameter('weight', ones([dim], { backend: options.backend, dtype: options.dtype }));
    this.bias = this.registerParameter('bias', zeros([dim], { backend: options.backend, dtype: options.dtype }));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** RMS norm (LLaMA) with `weight [dim]`: `[..., dim] -> [..., dim]`. */
export class RMSNorm extends Module {
  readonly weight: Tensor;

  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
    options: ParamOptions = {},
  ) {
    super();
    this.weight = this.registerParameter('weight', ones([dim], { backend: options.backend, dtype: options.dtype }));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}
