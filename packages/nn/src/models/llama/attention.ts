import { type Tensor, cast, permute, reshape, ropeHeads, tidy } from '@webpeft/tensor';
import { type AttentionContext, extendKeyValues } from '../../attention/context.js';
import { scaledDotProductAttention } from '../../attention/scaled-dot-product.js';
import type { ParamOptions } from '../../init.js';
import { Linear } from '../../layers/linear.js';
import type { RotaryEmbedding } from '../../layers/rope.js';
import type { LinearLike } from '../../linear-like.js';
import { Module } from '../../module.js';
import type { LlamaConfig } from './config.js';

/**
 * RoPE tables of one forward pass: `[T, Dh]` (positions shared by the batch) or
 * `[B, T, Dh]` (per-row positions), in the activations' dtype where known.
 */
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
      // RoPE and the head split of q and k are one kernel each (`ropeHeads`: [B, T, H, Dh]
      // in, [B, H, T, Dh] out); f16 activations read the tables rounded to f16, as
      // transformers does.
      const rotary = (y: Tensor, n: number) => {
        const [c, s] = [rope.cos, rope.sin].map((tab) => (tab.dtype === y.dtype ? tab : cast(tab, y.dtype)));
        return ropeHeads(reshape(y, [b, t, n, this.headDim]), c, s);
      };
      const q = rotary(this.q_proj.forward(x), this.nHeads);
      const k = rotary(this.k_proj.forward(x), this.nKv);
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
