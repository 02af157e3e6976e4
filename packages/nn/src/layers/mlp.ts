import { type Tensor, mul, swiglu } from '@webpeft/tensor';
import type { ParamOptions } from '../init.js';
import type { LinearLike } from '../linear-like.js';
import { Module } from '../module.js';
import { getActivation } from './activations.js';
import { Dropout } from './dropout.js';
import { Conv1D, Linear } from './linear.js';

/** Options of {@link MLP}. */
export interface MLPOptions extends ParamOptions {
  /** `activation_function` / `hidden_act` name (default 'gelu_new', GPT-2's tanh GELU). */
  activation?: string;
  /** Dropout after the output projection (GPT-2's `resid_pdrop`; default 0). */
  dropout?: number;
  /** Store weights `[in, out]` as GPT-2's `Conv1D` (default true); false uses `Linear`. */
  conv1d?: boolean;
  /** Init std of the weights when `conv1d` (HF: `initializer_range`; c_proj is scaled by the caller). */
  initStd?: number;
  /** Init std of `c_proj` (GPT-2 scales it by 1/sqrt(2 * n_layer)). */
  projInitStd?: number;
}

/**
 * Two-layer feed-forward block of GPT-2 / nanoGPT: `c_proj(act(c_fc(x)))`, then dropout.
 * Shapes: `[..., dim] -> [..., dim]` through `[..., hidden]`.
 * @example const mlp = new MLP(768, 3072); const y = mlp.forward(x);
 */
export class MLP extends Module {
  readonly c_fc!: LinearLike;
  readonly c_proj!: LinearLike;
  readonly dropout: Dropout;
  private readonly act: (x: Tensor) => Tensor;

  constructor(
    readonly dim: number,
    readonly hidden: number,
    options: MLPOptions = {},
  ) {
    super();
    const conv = options.conv1d ?? true;
    const make = (i: number, o: number, std: number | undefined): LinearLike =>
      conv ? new Conv1D(i, o, { ...options, initStd: std }) : new Linear(i, o, options);
    this.registerModule('c_fc', make(dim, hidden, options.initStd));
    this.registerModule('c_proj', make(hidden, dim, options.projInitStd ?? options.initStd));
    this.act = getActivation(options.activation ?? 'gelu_new');
    this.dropout = this.registerModule('dropout', new Dropout(options.dropout ?? 0));
  }

  forward(x: Tensor): Tensor {
    const h = this.c_fc.forward(x);
    const a = this.act(h);
    h.dispose();
    const y = this.c_proj.forward(a);
    a.dispose();
    const out = this.dropout.forward(y);
    y.dispose();
    return out;
  }
}

/** Options of {@link SwiGLU}. */
export interface SwiGLUOptions extends ParamOptions {
  /** Gate activation name (`hidden_act`, default 'silu'). */
  activation?: string;
  /** Biases on the three projections (`mlp_bias`, default false). */
  bias?: boolean;
}

/**
 * Gated feed-forward block of LLaMA (Shazeer 2020, "GLU Variants Improve Transformer"):
 * `down_proj(act(gate_proj(x)) * up_proj(x))`. Shapes: `[..., dim] -> [..., dim]`.
 * Projections are `Linear` with PyTorch's default init.
 * @example const mlp = new SwiGLU(4096, 11008); const y = mlp.forward(x);
 */
export class SwiGLU extends Module {
  readonly gate_proj!: LinearLike;
  readonly up_proj!: LinearLike;
  readonly down_proj!: LinearLike;
  private readonly act: (x: Tensor) => Tensor;

  constructor(
    readonly dim: number,
    readonly hidden: number,
    options: SwiGLUOptions = {},
  ) {
    super();
    const bias = options.bias ?? false;
    this.registerModule('gate_proj', new Linear(dim, hidden, { ...options, bias }));
    this.registerModule('up_proj', new Linear(dim, hidden, { ...options, bias }));
    this.registerModule('down_proj', new Linear(hidden, dim, { ...options, bias }));
    const activation = options.activation ?? 'silu';
    this.act = getActivation(activation);
    this.fusedGate = activation === 'silu' || activation === 'swish';
  }

  /** The gate is SiLU: `silu(g) * u` runs as one fused kernel (`swiglu`), forward and backward. */
  private readonly fusedGate: boolean;

  forward(x: Tensor): Tensor {
    if (this.fusedGate) {
      const g = this.gate_proj.forward(x);
      const u = this.up_proj.forward(x);
      const h = swiglu(g, u);
      g.dispose();
      u.dispose();
      const y = this.down_proj.forward(h);
      h.dispose();
      return y;
    }
    const g = this.gate_proj.forward(x);
    const a = this.act(g);
    g.dispose();
    const u = this.up_proj.forward(x);
    const h = mul(a, u);
    a.dispose();
    u.dispose();
    const y = this.down_proj.forward(h);
    h.dispose();
    return y;
  }
}
