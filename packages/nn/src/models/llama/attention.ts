import { type Tensor, permute, reshape, tidy } from '@webpeft/tensor';
import { type AttentionContext, extendKeyValues } from '../../attention/context.js';
import { scaledDotProductAttention } from '../../attention/scaled-dot-product.js';
import type { ParamOptions } from '../../init.js';
import { Linear } from '../../layers/linear.js';
import type { RotaryEmbedding } from '../../layers/rope.js';
import type { LinearLike } from '../../linear-like.js';
import { Module } from '../../module.js';
import type { LlamaConfig } from './config.js';

/** RoPE tables of one forward pass, broadcastable to `[B, H, T, Dh]`. */
export interface RopeTables {
  rope: RotaryEmbedding;
  cos: Tensor;
  sin: Tensor;
}

/**
 * LLaMA self-attention with grouped-query heads and RoPE: `q_proj`, `k_proj`, `v_proj`
 * (`H` and `H_kv` heads of `head_dim`), rotary positions on q and k, `o_proj` back to
 * the hidden size. `[B, T, D] -> [B, T, D]`.
 */
export class LlamaAttention extends Module {
  readonly q_proj!: LinearLike;
  readonly k_proj!: LinearLike;
  readonly v_proj!: LinearLike;
  readonly o_proj!: LinearLike;
  private readonly nHeads: number;
  private readonly nKv: number;
  private readonly headDim: number;
  private readonly dropoutP: number;

  constructor(
    config: LlamaConfig,
    readonly layerIdx: number,
    options: ParamOptions = {},
  ) {
    super();
    const d = config.hidden_size;
    this.nHeads = config.num_attention_heads;
    this.nKv = config.num_key_value_heads;
    this.headDim = config.head_dim;
    this.dropoutP = config.attention_dropout;
    const qkv = { ...options, bias: config.qkv_bias };
    this.registerModule('q_proj', new Linear(d, this.nHeads * this.headDim, qkv));
    this.registerModule('k_proj', new Linear(d, this.nKv * this.headDim, qkv));
    this.registerModule('v_proj', new Linear(d, this.nKv * this.headDim, qkv));
    this.registerModule('o_proj', new Linear(this.nHeads * this.headDim, d, { ...options, bias: config.attention_bias }));
  }

  forward(x: Tensor, ctx: AttentionContext, rope: RopeTables): Tensor {
    return tidy(() => {
      const [b, t] = x.shape;
      const heads = (y: Tensor, n: number) => permute(reshape(y, [b, t, n, this.headDim]), [0, 2, 1, 3]);
      const q = rope.rope.apply(heads(this.q_proj.forward(x), this.nHeads), rope.cos, rope.sin);
      const k = rope.rope.apply(heads(this.k_proj.forward(x), this.nKv), rope.cos, rope.sin);
      const v = heads(this.v_proj.forward(x), this.nKv);
      const kv = extendKeyValues(ctx, this.layerIdx, k, v);
      const o = scaledDotProductAttention(q, kv.key, kv.value, {
        bias: ctx.bias,
        implementation: ctx.implementation,
        causal: ctx.causal,
        scale: 1 / Math.sqrt(this.headDim),
        dropoutP: this.dropoutP,
        training: this.training,
      });
      return this.o_proj.forward(reshape(permute(o, [0, 2, 1, 3]), [b, t, this.nHeads * this.headDim]));
    });
  }
}
