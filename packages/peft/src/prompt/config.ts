import type { Module } from '@webpeft/nn';
import { type PeftConfig, configError, resolveCommon } from '../config.js';

/** Fields shared by prompt-learning methods (PEFT's `PromptLearningConfig`). */
export interface PromptLearningConfig extends PeftConfig {
  /** Number of virtual tokens (required). */
  numVirtualTokens: number;
  /** Hidden size of the base model (default: from `model.config`). */
  tokenDim?: number;
  /** 1 for decoder-only models. */
  numTransformerSubmodules?: number;
  /** Attention heads of the base model (default: from `model.config`). */
  numAttentionHeads?: number;
  /** Decoder layers of the base model (default: from `model.config`). */
  numLayers?: number;
}

/**
 * Prompt tuning (Lester et al. 2021, arXiv:2104.08691): `numVirtualTokens` learned
 * embeddings prepended to the input embeddings.
 */
export interface PromptTuningConfig extends PromptLearningConfig {
  peftType: 'PROMPT_TUNING';
  /** `RANDOM` (N(0, 1), default), `SAMPLE_VOCAB` (rows of random vocabulary ids) or `TEXT` (rows of the tokenised text, repeated/truncated). */
  promptTuningInit?: 'RANDOM' | 'SAMPLE_VOCAB' | 'TEXT';
  /** Text for `TEXT` init. */
  promptTuningInitText?: string | null;
  /** Saved for PEFT's loaders (which tokenizer made the TEXT init). */
  tokenizerNameOrPath?: string | null;
  /** Tokenizer for `TEXT` init (not saved): `encode(text)` returns token ids. */
  tokenizer?: { encode(text: string): ArrayLike<number> | { ids: ArrayLike<number> } };
}

/**
 * Prefix tuning (Li & Liang 2021, arXiv:2101.00190; P-tuning v2 is the same deep
 * prompts): learned keys and values per layer, attended to before the input.
 */
export interface PrefixTuningConfig extends PromptLearningConfig {
  peftType: 'PREFIX_TUNING';
  /** Reparameterise through `Embedding -> Linear -> tanh -> Linear` while training. */
  prefixProjection?: boolean;
  /** Hidden size of that MLP (default `tokenDim`). */
  encoderHiddenSize?: number;
}

interface ModelDims {
  hidden_size?: number;
  n_embd?: number;
  num_hidden_layers?: number;
  n_layer?: number;
  num_attention_heads?: number;
  n_head?: number;
  num_key_value_heads?: number;
  head_dim?: number;
  vocab_size?: number;
}

/** The base model's sizes from `model.config` (HF names, GPT-2 aliases). */
export function modelDims(model: Module): { hidden: number; layers: number; heads: number; kvHeads: number; headDim: number } | null {
  const c = (model as unknown as { config?: ModelDims }).config;
  if (!c) return null;
  const hidden = c.hidden_size ?? c.n_embd;
  const layers = c.num_hidden_layers ?? c.n_layer;
  const heads = c.num_attention_heads ?? c.n_head;
  if (!hidden || !layers || !heads) return null;
  const kvHeads = c.num_key_value_heads ?? heads;
  return { hidden, layers, heads, kvHeads, headDim: c.head_dim ?? hidden / heads };
}

function resolvePromptLearning<C extends PromptLearningConfig>(c: C, model: Module | undefined, kind: string): C {
  if (!(Number.isInteger(c.numVirtualTokens) && c.numVirtualTokens > 0)) configError(kind, `numVirtualTokens must be a positive integer, got ${c.numVirtualTokens}`);
  const dims = model ? modelDims(model) : null;
  const tokenDim = c.tokenDim ?? dims?.hidden;
  const numLayers = c.numLayers ?? dims?.layers;
  const numAttentionHeads = c.numAttentionHeads ?? dims?.heads;
  if (!tokenDim || !numLayers || !numAttentionHeads) configError(kind, 'tokenDim, numLayers and numAttentionHeads are required when the model has no config with its sizes');
  return resolveCommon({ ...c, tokenDim, numLayers, numAttentionHeads, numTransformerSubmodules: c.numTransformerSubmodules ?? 1 });
}

/** Defaults and validation of {@link PromptTuningConfig}. */
export function resolvePromptTuningConfig(c: PromptTuningConfig, model?: Module): PromptTuningConfig {
  const init = c.promptTuningInit ?? 'RANDOM';
  if (!['RANDOM', 'SAMPLE_VOCAB', 'TEXT'].includes(init)) configError('PROMPT_TUNING', `promptTuningInit must be RANDOM, SAMPLE_VOCAB or TEXT, got ${init}`);
  if (init === 'TEXT' && !c.promptTuningInitText) configError('PROMPT_TUNING', 'promptTuningInit TEXT needs promptTuningInitText');
  return { ...resolvePromptLearning(c, model, 'PROMPT_TUNING'), promptTuningInit: init, promptTuningInitText: c.promptTuningInitText ?? null, tokenizerNameOrPath: c.tokenizerNameOrPath ?? null };
}

/** Defaults and validation of {@link PrefixTuningConfig}. */
export function resolvePrefixTuningConfig(c: PrefixTuningConfig, model?: Module): PrefixTuningConfig {
  // Prefixes are keys/values: with grouped-query attention PEFT sets token_dim to
  // kvHeads * headDim and num_attention_heads to kvHeads.
  const dims = model ? modelDims(model) : null;
  const gqa = { tokenDim: c.tokenDim ?? (dims ? dims.kvHeads * dims.headDim : undefined), numAttentionHeads: c.numAttentionHeads ?? dims?.kvHeads };
  const r = resolvePromptLearning({ ...c, ...gqa }, model, 'PREFIX_TUNING');
  return { ...r, prefixProjection: c.prefixProjection ?? false, encoderHiddenSize: c.encoderHiddenSize ?? r.tokenDim };
}

/** `adapter_config.json` fields of a prompt-learning config (PEFT's names). */
export function promptConfigToJson(c: PromptTuningConfig | PrefixTuningConfig): Record<string, unknown> {
  const common = {
    // PEFT's from_pretrained builds PeftModelForCausalLM only from task_type CAUSAL_LM; with
    // null it builds the bare PeftModel, which never applies the prompt (the only task here).
    task_type: c.taskType ?? 'CAUSAL_LM',
    num_virtual_tokens: c.numVirtualTokens,
    token_dim: c.tokenDim,
    num_transformer_submodules: c.numTransformerSubmodules,
    num_attention_heads: c.numAttentionHeads,
    num_layers: c.numLayers,
  };
  if (c.peftType === 'PROMPT_TUNING') {
    return { ...common, prompt_tuning_init: c.promptTuningInit, prompt_tuning_init_text: c.promptTuningInitText ?? null, tokenizer_name_or_path: c.tokenizerNameOrPath ?? null, tokenizer_kwargs: null };
  }
  return { ...common, prefix_projection: c.prefixProjection, encoder_hidden_size: c.encoderHiddenSize };
}

/** A prompt-learning config from `adapter_config.json`. */
export function promptConfigFromJson(j: Record<string, unknown>): PromptTuningConfig | PrefixTuningConfig {
  const common = {
    numVirtualTokens: j.num_virtual_tokens as number,
    tokenDim: j.token_dim as number,
    numTransformerSubmodules: (j.num_transformer_submodules as number) ?? 1,
    numAttentionHeads: j.num_attention_heads as number,
    numLayers: j.num_layers as number,
  };
  if (j.peft_type === 'PROMPT_TUNING') {
    return { peftType: 'PROMPT_TUNING', ...common, promptTuningInit: (j.prompt_tuning_init as 'RANDOM') ?? 'RANDOM', promptTuningInitText: (j.prompt_tuning_init_text as string) ?? null, tokenizerNameOrPath: (j.tokenizer_name_or_path as string) ?? null };
  }
  if (j.peft_type === 'PREFIX_TUNING') {
    return { peftType: 'PREFIX_TUNING', ...common, prefixProjection: Boolean(j.prefix_projection), encoderHiddenSize: j.encoder_hidden_size as number };
  }
  return configError(String(j.peft_type), 'not a prompt-learning method this package implements (PROMPT_TUNING, PREFIX_TUNING)');
}

/** True for the prompt-learning family. */
export function isPromptLearning(c: PeftConfig): c is PromptTuningConfig | PrefixTuningConfig {
  return c.peftType === 'PROMPT_TUNING' || c.peftType === 'PREFIX_TUNING';
}
