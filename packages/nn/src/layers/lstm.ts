import { type Tensor, add, concat, dropout, matmul, mul, narrow, reshape, sigmoid, stack, tanh, tidy } from '@webpeft/tensor';
import { type ParamOptions, uniformInit } from '../init.js';
import { Module } from '../module.js';

/** Options of {@link LSTM} (PyTorch's `nn.LSTM` arguments). */
export interface LSTMOptions extends ParamOptions {
  /** Stacked layers (default 1). */
  numLayers?: number;
  /** A second, reversed pass per layer whose outputs are concatenated (default false). */
  bidirectional?: boolean;
  /** Dropout on every layer's output except the last, while training (default 0). */
  dropout?: number;
}

/**
 * A long short-term memory layer (Hochreiter & Schmidhuber 1997) as PyTorch's `nn.LSTM`
 * with `batch_first=True` and zero initial state, built from ops (autograd flows
 * through them). Per layer and direction, with gates in PyTorch's order `i, f, g, o`:
 *
 *     [i, f, g, o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
 *     c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g);   h_t = sigmoid(o) * tanh(c_t)
 *
 * The reverse direction runs from the last step to the first. Parameters carry
 * PyTorch's names (`weight_ih_l0 [4H, in]`, `weight_hh_l0 [4H, H]`, `bias_ih_l0 [4H]`,
 * `bias_hh_l0 [4H]`, `..._reverse`), so state dicts load unchanged; init as PyTorch:
 * every tensor ~ U(-1/sqrt(H), 1/sqrt(H)).
 *
 * Shapes: `[B, T, inputSize] -> [B, T, D * hiddenSize]`, `D` = 2 when bidirectional.
 *
 * @example
 * const lstm = new LSTM(16, 8, { numLayers: 2, bidirectional: true });
 * const out = lstm.forward(x); // x [1, 4, 16] -> [1, 4, 16]
 */
export class LSTM extends Module {
  readonly numLayers: number;
  readonly bidirectional: boolean;
  readonly dropout: number;

  constructor(
    readonly inputSize: number,
    readonly hiddenSize: number,
    options: LSTMOptions = {},
  ) {
    super();
    this.numLayers = options.numLayers ?? 1;
    this.bidirectional = options.bidirectional ?? false;
    this.dropout = options.dropout ?? 0;
    for (const [name, v] of [['inputSize', inputSize], ['hiddenSize', hiddenSize], ['numLayers', this.numLayers]] as const) {
      if (!(Number.isInteger(v) && v > 0)) throw new Error(`LSTM: ${name} must be a positive integer, got ${v}`);
    }
    if (!(this.dropout >= 0 && this.dropout < 1)) throw new Error(`LSTM: dropout must be in [0, 1), got ${this.dropout}`);
    const bound = 1 / Math.sqrt(hiddenSize);
    const H4 = 4 * hiddenSize;
    for (let l = 0; l < this.numLayers; l++) {
      const inSize = l === 0 ? inputSize : hiddenSize * this.directions;
      for (const suffix of this.suffixes()) {
        this.registerParameter(`weight_ih_l${l}${suffix}`, uniformInit([H4, inSize], bound, options));
        this.registerParameter(`weight_hh_l${l}${suffix}`, uniformInit([H4, hiddenSize], bound, options));
        this.registerParameter(`bias_ih_l${l}${suffix}`, uniformInit([H4], bound, options));
        this.registerParameter(`bias_hh_l${l}${suffix}`, uniformInit([H4], bound, options));
      }
    }
  }

  /** 2 when bidirectional, else 1. */
  get directions(): number {
    return this.bidirectional ? 2 : 1;
  }

  /** `[B, T, inputSize] -> [B, T, directions * hiddenSize]` (zero initial hidden and cell state). */
  forward(x: Tensor): Tensor {
    if (x.rank !== 3 || x.shape[2] !== this.inputSize) {
      throw new Error(`LSTM.forward: input must be [batch, steps, ${this.inputSize}] (batch first), got [${x.shape.join(', ')}] (${x.dtype})`);
    }
    return tidy(() => {
      let h = x;
      for (let l = 0; l < this.numLayers; l++) {
        if (l > 0 && this.dropout > 0) h = dropout(h, this.dropout, this.training);
        const outs = this.suffixes().map((suffix) => this.direction(h, `l${l}${suffix}`, suffix === '_reverse'));
        h = outs.length === 1 ? outs[0] : concat(outs, 2);
      }
      return h;
    });
  }

  /** One layer in one direction: `[B, T, in] -> [B, T, H]`. Inside a tidy scope. */
  private direction(x: Tensor, key: string, reverse: boolean): Tensor {
    const [B, T] = x.shape;
    const H = this.hiddenSize;
    const p = (name: string) => this.getParameter(`${name}_${key}`);
    // The input part of every step's gates in one product: [B, T, 4H].
    const pre = add(add(matmul(x, p('weight_ih'), { transposeB: true }), p('bias_ih')), p('bias_hh'));
    const whh = p('weight_hh');
    const hs: Tensor[] = new Array<Tensor>(T);
    let hPrev: Tensor | null = null;
    let cPrev: Tensor | null = null;
    for (let k = 0; k < T; k++) {
      const t = reverse ? T - 1 - k : k;
      const preT = reshape(narrow(pre, 1, t, 1), [B, 4 * H]);
      const gates = hPrev ? add(preT, matmul(hPrev, whh, { transposeB: true })) : preT;
      const gate = (n: number) => narrow(gates, 1, n * H, H);
      const i = sigmoid(gate(0));
      const f = sigmoid(gate(1));
      const g = tanh(gate(2));
      const o = sigmoid(gate(3));
      const c: Tensor = cPrev ? add(mul(f, cPrev), mul(i, g)) : mul(i, g);
      const hNext = mul(o, tanh(c));
      hs[t] = hNext;
      hPrev = hNext;
      cPrev = c;
    }
    return stack(hs, 1);
  }

  private suffixes(): string[] {
    return this.bidirectional ? ['', '_reverse'] : [''];
  }

  private getParameter(name: string): Tensor {
    const t = this.ownParameters().find(([k]) => k === name)?.[1];
    if (!t) throw new Error(`LSTM: no parameter '${name}'`);
    return t;
  }
}
