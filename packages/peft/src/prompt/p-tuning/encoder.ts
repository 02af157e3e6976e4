import { LSTM, Linear, Module } from '@webpeft/nn';
import { type BackendName, type Tensor, relu, reshape, tidy } from '@webpeft/tensor';
import { PromptEncoder } from '../encoder.js';
import type { PTuningConfig } from './config.js';

/**
 * P-tuning's encoder (PEFT's `PromptEncoder`): `embedding [P, tokenDim]` and, while
 * training (not in inference mode), a reparameterisation under PEFT's module names:
 * - `MLP`: `mlp_head` = `Linear(tokenDim, h) -> ReLU -> Linear(h, h) -> ReLU -> Linear(h, tokenDim)`;
 * - `LSTM`: `lstm_head` = a bidirectional {@link LSTM}(tokenDim, h, encoderNumLayers) over
 *   the P rows as one sequence, then `mlp_head` = `Linear(2h, 2h) -> ReLU -> Linear(2h, tokenDim)`.
 * `forward()` returns the virtual tokens `[P, tokenDim]`; in inference mode the rows as
 * they are (what PEFT saves as `prompt_embeddings`).
 */
export class PTuningEncoder extends PromptEncoder {
  private readonly lstm: LSTM | null = null;
  private readonly mlp: Mlp | null = null;

  constructor(config: PTuningConfig, backend?: BackendName) {
    const dim = config.tokenDim as number;
    super(config.numVirtualTokens * (config.numTransformerSubmodules ?? 1), dim, backend);
    if (config.inferenceMode) return;
    const h = config.encoderHiddenSize ?? dim;
    if (config.encoderReparameterizationType === 'LSTM') {
      this.lstm = this.registerModule('lstm_head', new LSTM(dim, h, { numLayers: config.encoderNumLayers ?? 2, bidirectional: true, dropout: config.encoderDropout ?? 0, backend }));
      this.mlp = this.registerModule('mlp_head', new Mlp([2 * h, 2 * h, dim], backend));
    } else {
      this.mlp = this.registerModule('mlp_head', new Mlp([dim, h, h, dim], backend));
    }
  }

  override forward(): Tensor {
    const { lstm, mlp } = this;
    if (!mlp) return this.rows();
    return tidy(() => {
      const rows = this.rows();
      if (!lstm) return mlp.forward(rows);
      const [P, D] = rows.shape;
      const seq = lstm.forward(reshape(rows, [1, P, D])); // one batch row, P steps
      return mlp.forward(reshape(seq, [P, seq.shape[2]]));
    });
  }
}

/** Linears with ReLU between them, registered as `nn.Sequential` indices (`0`, `2`, `4`). */
class Mlp extends Module {
  private readonly layers: Linear[];

  constructor(sizes: number[], backend?: BackendName) {
    super();
    this.layers = sizes.slice(1).map((out, k) => this.registerModule(String(2 * k), new Linear(sizes[k], out, { backend })));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => this.layers.reduce((h, layer, k) => layer.forward(k === 0 ? h : relu(h)), x));
  }
}
