import { checkSequenceLength } from '../input-limits.js';
import { type Tensor, add, gather, isGradEnabled, tidy } from '@webpeft/tensor';
import { checkpointedLayer, checkpointingActive } from '../layer-checkpoint.js';
import { type AttentionContext, buildAttentionContext, scoreDtypeOf } from '../../attention/context.js';
import { type AttnImplementation, checkAttnImplementation } from '../../attention/scaled-dot-product.js';
import type { ParamOptions } from '../../init.js';
import { Dropout } from '../../layers/dropout.js';
import { Embedding } from '../../layers/embedding.js';
import { Linear } from '../../layers/linear.js';
import { MLP } from '../../layers/mlp.js';
import { LayerNorm } from '../../layers/norms.js';
import type { LinearLike } from '../../linear-like.js';
import { ModuleList } from '../../module-list.js';
import { Module } from '../../module.js';
import { type CausalLM, type CausalLMInput, type CausalLMOutput, causalLMHead } from '../causal-lm.js';
import type { RawConfig } from '../config-utils.js';
import { GPT2Attention } from './attention.js';
import { type GPT2Config, gpt2Config } from './config.js';

/** One pre-norm GPT-2 block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`. `[B, T, d] -> [B, T, d]`. */
export class GPT2Block extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: GPT2Attention;
  readonly ln_2: LayerNorm;
  readonly mlp: MLP;

  constructor(config: GPT2Config, layerIdx: number, options: ParamOptions = {}) {
    super();
    const d = config.n_embd;
    this.ln_1 = this.registerModule('ln_1', new LayerNorm(d, config.layer_norm_epsilon, options));
    this.attn = this.registerModule('attn', new GPT2Attention(config, layerIdx, options));
    this.ln_2 = this.registerModule('ln_2', new LayerNorm(d, config.layer_norm_epsilon, options));
    const std = config.initializer_range;
    this.mlp = this.registerModule(
      'mlp',
      new MLP(d, config.n_inner, {
        ...options,
        activation: config.activation_function,
        dropout: config.resid_pdrop,
        initStd: std,
        projInitStd: std / Math.sqrt(2 * config.n_layer),
      }),
    );
  }

  forward(x: Tensor, ctx: AttentionContext): Tensor {
    return tidy(() => {
      const h = add(x, this.attn.forward(this.ln_1.forward(x), ctx));
      return add(h, this.mlp.forward(this.ln_2.forward(h)));
    });
  }
}

/** GPT-2's decoder stack (`transformer`): token and position embeddings, blocks, final norm. */
export class GPT2Model extends Module {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly drop: Dropout;
  readonly h: ModuleList<GPT2Block>;
  readonly ln_f: LayerNorm;

  constructor(
    readonly config: GPT2Config,
    options: ParamOptions = {},
  ) {
    super();
    const c = config;
    const std = c.initializer_range;
    this.wte = this.registerModule('wte', new Embedding(c.vocab_size, c.n_embd, { ...options, initStd: std }));
    this.wpe = this.registerModule('wpe', new Embedding(c.n_positions, c.n_embd, { ...options, initStd: std }));
    this.drop = this.registerModule('drop', new Dropout(c.embd_pdrop));
    this.h = this.registerModule('h', new ModuleList(Array.from({ length: c.n_layer }, (_, i) => new GPT2Block(c, i, options))));
    this.ln_f = this.registerModule('ln_f', new LayerNorm(c.n_embd, c.layer_norm_epsilon, options));
  }

  /**
   * Recompute each decoder layer in backward instead of keeping its activations (set by
   * the LM's `gradientCheckpointingEnable()`); applies in training mode with grad on.
   */
  gradientCheckpointing = false;

  /** How attention is computed (set by the LM's `setAttnImplementation`; default `'eager'`). */
  attnImplementation: AttnImplementation = 'eager';

  /** Hidden states `[B, T, d]` after `ln_f`, and the context used (caller disposes it). */
  forward(input: CausalLMInput): { hidden: Tensor; ctx: AttentionContext } {
    const embeds = input.inputsEmbeds;
    const ids = input.inputIds;
    if ((embeds === undefined) === (ids === undefined)) throw new Error('GPT2Model.forward: give exactly one of inputIds and inputsEmbeds');
    const [b, t] = (embeds ?? ids)!.shape;
    const backend = (embeds ?? ids)!.backend.name;
    // Known from shapes alone: positions past the table would read out of range (GPT-2's
    // wpe) or run beyond the trained length (RoPE), so they are refused up front.
    const past = input.pastKeyValues?.length ?? 0;
    const prefix = input.prefixKeyValues?.[0]?.key.shape[2] ?? 0;
    // Explicit positionIds (left-padded batches) may sit below the key length; GPT-2's
    // position lookup still checks them on the device.
    if (!input.positionIds) checkSequenceLength(this.config.model_type, this.config, prefix + past + t, `prefix ${prefix} + past ${past} + ${t} new`);
    const ctx = buildAttentionContext({ ...input, batch: b, length: t, numLayers: this.config.n_layer, scoreDtype: scoreDtypeOf(this.wte.weight), attnImplementation: this.attnImplementation }, backend);
    const ckpt = checkpointingActive('GPT2Model', this.gradientCheckpointing, this.training, isGradEnabled(), ctx);
    const hidden = tidy(() => {
      const tok = embeds ?? this.wte.forward(ids!);
      const pos = gather(this.wpe.weight, ctx.positions);
      let x = this.drop.forward(add(tok, pos));
      for (const block of this.h) {
        const next = ckpt ? checkpointedLayer('GPT2Model', block.attn.layerIdx, x, ctx, [], (h, c) => block.forward(h, c)) : block.forward(x, ctx);
        x.dispose(); // always created here (dropout returns a new handle), never the caller's
        x = next;
      }
      return this.ln_f.forward(x);
    });
    return { hidden, ctx };
  }
}

/**
 * GPT-2 with its language-model head (`GPT2LMHeadModel`): `transformer` plus `lm_head`
 * (tied to `transformer.wte` unless `tie_word_embeddings` is false).
 * Forward: ids `[B, T]` -> logits `[B, T, V]` (+ loss with labels, + cache).
 * @example
 * const model = new GPT2LMHeadModel({ n_embd: 32, n_layer: 2, n_head: 4, vocab_size: 64, n_positions: 64 });
 * const { logits, loss } = model.forward({ inputIds, labels: inputIds });
 */
export class GPT2LMHeadModel extends Module implements CausalLM {
  readonly config: GPT2Config;
  readonly transformer: GPT2Model;
  readonly lm_head!: LinearLike;

  constructor(config: RawConfig | GPT2Config = {}, options: ParamOptions = {}) {
    super();
    this.config = gpt2Config(config as RawConfig);
    const c = this.config;
    this.transformer = this.registerModule('transformer', new GPT2Model(c, options));
    const tied = c.tie_word_embeddings ? { weight: this.transformer.wte.weight } : {};
    this.registerModule('lm_head', new Linear(c.n_embd, c.vocab_size, { ...options, bias: false, ...tied }));
  }

  /**
   * Gradient checkpointing (transformers' name): in training, each decoder layer keeps
   * only its input and is recomputed in backward (same gradients, bit for bit, with
   * dropout masks replayed; fewer activation bytes, one more forward per layer). A
   * training forward with a KV cache then throws. Returns `this`.
   */
  gradientCheckpointingEnable(): this {
    this.transformer.gradientCheckpointing = true;
    return this;
  }

  /** Turns gradient checkpointing off (every activation is kept again). Returns `this`. */
  gradientCheckpointingDisable(): this {
    this.transformer.gradientCheckpointing = false;
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
    checkAttnImplementation(impl, 'GPT2LMHeadModel.setAttnImplementation');
    this.transformer.attnImplementation = impl;
    return this;
  }

  /** The attention implementation in use (see {@link setAttnImplementation}). */
  get attnImplementation(): AttnImplementation {
    return this.transformer.attnImplementation;
  }

  /** Whether gradient checkpointing is on (transformers' `is_gradient_checkpointing`). */
  get isGradientCheckpointing(): boolean {
    return this.transformer.gradientCheckpointing;
  }

  getInputEmbeddings(): Embedding {
    return this.transformer.wte;
  }

  forward(input: CausalLMInput): CausalLMOutput {
    const { hidden, ctx } = this.transformer.forward(input);
    return causalLMHead(this.lm_head, hidden, ctx, input.labels, this.fusedCrossEntropy);
  }
}
