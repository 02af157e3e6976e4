import { type Tensor, permute, reshape, split, tidy } from '@webpeft/tensor';
import { type AttentionContext, extendKeyValues } from '../../attention/context.js';
import { packedQkvAttention } from '../../attention/packed-qkv.js';
import { scaledDotProductAttention } from '../../attention/scaled-dot-product.js';
import type { ParamOptions } from '../../init.js';
import { Dropout } from '../../layers/dropout.js';
import { Conv1D } from '../../layers/linear.js';
import type { LinearLike } from '../../linear-like.js';
import { Module } from '../../module.js';
import type { GPT2Config } from './config.js';

/**
 * GPT-2 causal self-attention: one fused `c_attn` projection to q, k, v (`Conv1D`,
 * `[d, 3d]`), `H` heads, `c_proj` back to `d`. `[B, T, d] -> [B, T, d]`.
 */
export class GPT2Attention extends Module {
  readonly c_attn!: LinearLike;
  readonly c_proj!: LinearLike;
  readonly attn_dropout: Dropout;
  readonly resid_dropout: Dropout;
  private readonly nHead: number;
  private readonly headDim: number;
  private readonly scale: number;

  constructor(
    config: GPT2Config,
    readonly layerIdx: number,
    options: ParamOptions = {},
  ) {
    super();
    const d = config.n_embd;
    this.nHead = config.n_head;
    this.headDim = config.head_dim;
    let scale = config.scale_attn_weights ? 1 / Math.sqrt(this.headDim) : 1;
    if (config.scale_attn_by_inverse_layer_idx) scale /= layerIdx + 1;
    this.scale = scale;
    const std = config.initializer_range;
    this.registerModule('c_attn', new Conv1D(d, 3 * d, { ...options, initStd: std }));
    this.registerModule('c_proj', new Conv1D(d, d, { ...options, initStd: std / Math.sqrt(2 * config.n_layer) }));
    this.attn_dropout = this.registerModule('attn_dropout', new Dropout(config.attn_pdrop));
    this.resid_dropout = this.registerModule('resid_dropout', new Dropout(config.resid_pdrop));
  }

  forward(x: Tensor, ctx: AttentionContext): Tensor {
    return tidy(() => {
      const [b, t, d] = x.shape;
      const qkv = this.c_attn.forward(x);
      // Without a cache or prefix keys the heads are read in place from qkv (no copies).
      if (ctx.cache === null && ctx.prefix === null && ctx.implementation === 'eager') {
        const merged = packedQkvAttention(qkv, this.nHead, { bias: ctx.bias, scale: this.scale, dropoutP: this.attn_dropout.p, training: this.attn_dropout.training });
        return this.resid_dropout.forward(this.c_proj.forward(merged));
      }
      // One copy makes q, k and v head-major ([3, b, heads, t, headDim]); each is then a
      // contiguous block: 4 copies forward and 6 backward instead of a slice and a
      // permute each (6 and 8).
      const qkvHeads = permute(reshape(qkv, [b, t, 3, this.nHead, this.headDim]), [2, 0, 3, 1, 4]);
      const [q, k, v] = split(qkvHeads, 3, 0).map((y: Tensor) => reshape(y, [b, this.nHead, t, this.headDim]));
      const kv = extendKeyValues(ctx, this.layerIdx, k, v);
      const o = scaledDotProductAttention(q, kv.key, kv.value, {
        bias: ctx.bias,
        implementation: ctx.implementation,
        causal: ctx.causal,
        scale: this.scale,
        dropoutP: this.attn_dropout.p,
        training: this.attn_dropout.training,
      });
      const merged = reshape(permute(o, [0, 2, 1, 3]), [b, t, d]);
      return this.resid_dropout.forward(this.c_proj.forward(merged));
    });
  }
}
