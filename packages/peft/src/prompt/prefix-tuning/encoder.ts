import { Linear, Module } from '@webpeft/nn';
import { type BackendName, type Tensor, tanh, tidy } from '@webpeft/tensor';
import { PromptEncoder } from '../encoder.js';
import type { PrefixTuningConfig } from './config.js';

/**
 * Prefix tuning's encoder (PEFT's `PrefixEncoder`): `embedding [P, layers*2*tokenDim]`,
 * or with `prefixProjection` (training) `embedding [P, tokenDim] -> Linear(tokenDim, encoderHidden)
 * -> tanh -> Linear(encoderHidden, layers*2*tokenDim)`. `forward()` returns `[P, layers*2*tokenDim]`.
 */
export class PrefixEncoder extends PromptEncoder {
  /** True when the rows go through the MLP (training with `prefixProjection`). */
  readonly projection: boolean;
  private readonly transform: PrefixMlp | null;

  constructor(config: PrefixTuningConfig, backend?: BackendName) {
    const dim = config.tokenDim as number;
    const out = (config.numLayers as number) * 2 * dim;
    // In inference mode PEFT keeps only the projected prefixes (what it saves).
    const projection = Boolean(config.prefixProjection) && !config.inferenceMode;
    super(config.numVirtualTokens, projection ? dim : out, backend);
    this.projection = projection;
    this.transform = projection ? this.registerModule('transform', new PrefixMlp(dim, config.encoderHiddenSize ?? dim, out, backend)) : null;
  }

  override forward(): Tensor {
    const transform = this.transform;
    if (!transform) return this.rows();
    return tidy(() => transform.forward(this.rows()));
  }
}

/** `Linear -> tanh -> Linear`, registered as PEFT's `transform.0` / `transform.2`. */
class PrefixMlp extends Module {
  private readonly first: Linear;
  private readonly second: Linear;

  constructor(dim: number, hidden: number, out: number, backend?: BackendName) {
    super();
    this.first = this.registerModule('0', new Linear(dim, hidden, { backend }));
    this.second = this.registerModule('2', new Linear(hidden, out, { backend }));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => this.second.forward(tanh(this.first.forward(x))));
  }
}
