import { checkSequenceLength } from '../input-limits.js';
import { type Tensor, add, addRmsNorm, cast, isGradEnabled, rmsNorm, tidy } from '@webpeft/tensor';
import { checkpointedLayer, checkpointingActive } from '../layer-checkpoint.js';
import { type AttentionContext, buildAttentionContext, disposeContext, scoreDtypeOf } from '../../attention/context.js';
import { type AttnImplementation, checkAttnImplementation } from '../../attention/scaled-dot-product.js';
import type { ParamOptions } from '../../init.js';
import { Embedding } from '../../layers/embedding.js';
import { Linear } from '../../layers/linear.js';
import { SwiGLU } from '../../layers/mlp.js';
import { RMSNorm } from '../../layers/norms.js';
import { RotaryEmbedding } from '../../layers/rope.js';
import type { LinearLike } from '../../linear-like.js';
import { ModuleList } from '../../module-list.js';
import { Module } from '../../module.js';
import { type CausalLM, type CausalLMInput, type CausalLMOutput, causalLMHead } from '../causal-lm.js';
import type { RawConfig } from '../config-utils.js';
import { LlamaAttention, type RopeTables } from './attention.js';
import { type LlamaConfig, llamaConfig } from './config.js';

/** One pre-norm LLaMA layer: `x + self_attn(input_layernorm(x))`, then `x + mlp(post_attention_layernorm(x))`. */
export class LlamaDecoderLayer extends Module {
  readonly self_attn: LlamaAttention;
  readonly mlp: SwiGLU;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;

  constructor(config: LlamaConfig, layerIdx: number, options: ParamOptions = {}) {
    super();
    const d = config.hidden_size;
    this.self_attn = this.registerModule('self_attn', new LlamaAttention(config, layerIdx, options));
    this.mlp = this.registerModule('mlp', new SwiGLU(d, config.intermediate_size, { ...options, activation: config.hidden_act, bias: config.mlp_bias }));
    this.input_layernorm = this.registerModule('input_layernorm', new RMSNorm(d, config.rms_norm_eps, options));
    this.post_attention_layernorm = this.registerModule('post_attention_layernorm', new RMSNorm(d, config.rms_norm_eps, options));
  }

  forward(x: Tensor, ctx: AttentionContext, rope: RopeTables): Tensor {
    return tidy(() => {
      const { residual, delta } = this.forwardSplit(x, null, ctx, rope);
      return add(residual, delta);
    });
  }

  /**
   * The layer with its last residual add left to the caller, so that it runs fused with
   * the next norm: the input is `residual + delta` (`delta` null: `residual` alone), the
   * output `{ residual: h, delta: mlp(...) }` with `h + delta` the layer's output. Each
   * residual add runs in one kernel with the RMS norm after it (`addRmsNorm`).
   * `[B, T, D]` throughout; the caller disposes the two results.
   */
  forwardSplit(residual: Tensor, delta: Tensor | null, ctx: AttentionContext, rope: RopeTables): { residual: Tensor; delta: Tensor } {
    return tidy(() => {
      const n1 = this.input_layernorm;
      const first = delta === null ? { sum: residual, normed: rmsNorm(residual, n1.weight, n1.eps) } : addRmsNorm(residual, delta, n1.weight, n1.eps);
      const attn = this.self_attn.forward(first.normed, ctx, rope);
      const n2 = this.post_attention_layernorm;
      const second = addRmsNorm(first.sum, attn, n2.weight, n2.eps);
      return { residual: second.sum, delta: this.mlp.forward(second.normed) };
    });
  }
}

/** LLaMA's decoder stack (`model`): `embed_tokens`, `layers`, final `norm`, shared `rotary_emb`. */
export class LlamaModel extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<LlamaDecoderLayer>;
  readonly norm: RMSNorm;
  readonly rotary_emb: RotaryEmbedding;

  constructor(
    readonly config: LlamaConfig,
    options: ParamOptions = {},
  ) {
    super();
    const c = config;
    this.embed_tokens = this.registerModule('embed_tokens', new Embedding(c.vocab_size, c.hidden_size, { ...options, initStd: c.initializer_range }));
    this.layers = this.registerModule('layers', new ModuleList(Array.from({ length: c.num_hidden_layers }, (_, i) => new LlamaDecoderLayer(c, i, options))));
    this.norm = this.registerModule('norm', new RMSNorm(c.hidden_size, c.rms_norm_eps, options));
    this.rotary_emb = this.registerModule('rotary_emb', new RotaryEmbedding(c.head_dim, { ...options, theta: c.rope_theta, scaling: c.rope_scaling }));
  }

  /**
   * Recompute each decoder layer in backward instead of keeping its activations (set by
   * the LM's `gradientCheckpointingEnable()`); applies in training mode with grad on.
   */
  gradientCheckpointing = false;

  /** How attention is computed (set by the LM's `setAttnImplementation`; default `'eager'`). */
  attnImplementation: AttnImplementation = 'eager';

  /** Hidden states `[B, T, D]` after `norm`, and the context used (caller disposes it). */
  forward(input: CausalLMInput): { hidden: Tensor; ctx: AttentionContext } {
    const embeds = input.inputsEmbeds;
    const ids = input.inputIds;
    if ((embeds === undefined) === (ids === undefined)) throw new Error('LlamaModel.forward: give exactly one of inputIds and inputsEmbeds');
    const [b, t] = (embeds ?? ids)!.shape;
    const backend = (embeds ?? ids)!.backend.name;
    // Known from shapes alone: positions past the table would read out of range (GPT-2's
    // wpe) or run beyond the trained length (RoPE), so they are refused up front.
    const past = input.pastKeyValues?.length ?? 0;
    const prefix = input.prefixKeyValues?.[0]?.key.shape[2] ?? 0;
    // Explicit positionIds (left-padded batches) may sit below the key length; GPT-2's
    // position lookup still checks them on the device.
    if (!input.positionIds) checkSequenceLength(this.config.model_type, this.config, prefix + past + t, `prefix ${prefix} + past ${past} + ${t} new`);
    const ctx = buildAttentionContext({ ...input, batch: b, length: t, numLayers: this.config.num_hidden_layers, scoreDtype: scoreDtypeOf(this.embed_tokens.weight), attnImplementation: this.attnImplementation }, backend);
    const window = this.config.sliding_window;
    const keyLength = (ctx.prefix?.[0].key.shape[2] ?? 0) + (ctx.cache?.length ?? 0) + t;
    if (window !== null && keyLength > window) {
      disposeContext(ctx);
      throw new Error(`${this.config.model_type}: ${keyLength} keys exceed sliding_window ${window}; sliding-window attention is not supported`);
    }
    const ckpt = checkpointingActive('LlamaModel', this.gradientCheckpointing, this.training, isGradEnabled(), ctx);
    const hidden = tidy(() => {
      let x = embeds ?? this.embed_tokens.forward(ids!);
      // [T, Dh] or [B, T, Dh] tables, rounded once to the activations' dtype (f16 models).
      const tables = this.rotary_emb.cosSin(ctx.positions);
      const rope: RopeTables =
        tables.cos.dtype === x.dtype ? { rope: this.rotary_emb, ...tables } : { rope: this.rotary_emb, cos: cast(tables.cos, x.dtype), sin: cast(tables.sin, x.dtype) };
      if (ckpt) {
        for (const layer of this.layers) {
          const next = checkpointedLayer('LlamaModel', layer.self_attn.layerIdx, x, ctx, [rope.cos, rope.sin], (h, c, [cos, sin]) => layer.forward(h, c, { rope: rope.rope, cos, sin }));
          if (x !== embeds) x.dispose();
          x = next;
        }
        return this.norm.forward(x);
      }
      // Each layer's last residual add runs fused with the next layer's input norm (the
      // last one with the final norm): one kernel for the sum and the normed sum.
      let delta: Tensor | null = null;
      for (const layer of this.layers) {
        const next = layer.forwardSplit(x, delta, ctx, rope);
        if (x !== embeds) x.dispose();
        delta?.dispose();
        x = next.residual;
        delta = next.delta;
      }
      if (delta === null) return this.norm.forward(x);
      const out = addRmsNorm(x, delta, this.norm.weight, this.norm.eps);
      out.sum.dispose();
      return out.normed;
    });
    return { hidden, ctx };
  }
}

/**
 * A LLaMA-family causal LM (`LlamaForCausalLM`; also Mistral, Qwen2, TinyLlama, SmolLM
 * configs): `model` plus `lm_head` (tied to `model.embed_tokens` with
 * `tie_word_embeddings`). Forward: ids `[B, T]` -> logits `[B, T, V]` (+ loss, + cache).
 * @example
 * const model = new LlamaForCausalLM({ hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
 *   num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 64 });
 * const { logits } = model.forward({ inputIds });
 */
export class LlamaForCausalLM extends Module implements CausalLM {
  readonly config: LlamaConfig;
  readonly model: LlamaModel;
  readonly lm_head!: LinearLike;

  constructor(config: RawConfig | LlamaConfig = {}, options: ParamOptions = {}) {
    super();
    this.config = llamaConfig(config as RawConfig);
    const c = this.config;
    this.model = this.registerModule('model', new LlamaModel(c, options));
    const tied = c.tie_word_embeddings ? { weight: this.model.embed_tokens.weight } : {};
    this.registerModule('lm_head', new Linear(c.hidden_size, c.vocab_size, { ...options, bias: false, ...tied }));
  }

  /**
   * Gradient checkpointing (transformers' name): in training, each decoder layer keeps
   * only its input and is recomputed in backward (same gradients, bit for bit, with
   * dropout masks replayed; fewer activation bytes, one more forward per layer). A
   * training forward with a KV cache then throws. Returns `this`.
   */
  gradientCheckpointingEnable(): this {
    this.model.gradientCheckpointing = true;
    return this;
  }

  /** Turns gradient checkpointing off (every activation is kept again). Returns `this`. */
  gradientCheckpointingDisable(): this {
    this.model.gradientCheckpointing = false;
    return this;
  }

  /**
   * Compute the loss of a forward with labels by the fused linear + cross-entropy
   * (`linearCrossEntropy`): no `[B, T, V]` logits are made, the output has none (reading
   * them throws), the loss and every gradient are those of the unfused path. Needs a plain
   * `Linear` head (not an adapter on `lm_head`).
   */
  fusedCrossEntropy = false;

  /**
   * Chooses how attention is computed (transformers' `attn_implementation`): `'eager'`
   * (default; scores `[B, H, T, L]` with matmuls and a softmax) or `'fused'`
   * (`fusedAttention`: on webgpu the scores and probabilities are never stored; the
   * padding mask is read as `[B, 1, 1, L]` and the causal mask applied in the kernel).
   * Same logits and gradients to rounding. `'fused'` refuses attention dropout in
   * training. Returns `this`.
   */
  setAttnImplementation(impl: AttnImplementation): this {
    checkAttnImplementation(impl, 'LlamaForCausalLM.setAttnImplementation');
    this.model.attnImplementation = impl;
    return this;
  }

  /** The attention implementation in use (see {@link setAttnImplementation}). */
  get attnImplementation(): AttnImplementation {
    return this.model.attnImplementation;
  }

  /** Whether gradient checkpointing is on (transformers' `is_gradient_checkpointing`). */
  get isGradientCheckpointing(): boolean {
    return this.model.gradientCheckpointing;
  }

  getInputEmbeddings(): Embedding {
    return this.model.embed_tokens;
  }

  forward(input: CausalLMInput): CausalLMOutput {
    const { hidden, ctx } = this.model.forward(input);
    return causalLMHead(this.lm_head, hidden, ctx, input.labels, this.fusedCrossEntropy);
  }
}
