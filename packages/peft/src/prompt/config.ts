import { type Module, showValue } from '@webpeft/nn';
import { type PeftConfig, configError, resolveCommon } from '../config.js';
import { AdapterJson, rejectSnakeCase } from '../config-json.js';

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

/**
 * Validates `numVirtualTokens` and fills `tokenDim`, `numLayers`, `numAttentionHeads`
 * (from `model.config`) and `numTransformerSubmodules` (1), naming `c.peftType` in errors.
 * A user's prompt-learning method calls this from its `resolveConfig`.
 */
export function resolvePromptLearningConfig<C extends PromptLearningConfig>(c: C, model?: Module): C {
  const kind = c.peftType;
  rejectSnakeCase(c, kind);
  if (!(typeof c.numVirtualTokens === 'number' && Number.isSafeInteger(c.numVirtualTokens) && c.numVirtualTokens > 0)) {
    configError(kind, `numVirtualTokens must be a positive integer, got ${showValue(c.numVirtualTokens)}`, 'numVirtualTokens');
  }
  for (const key of ['tokenDim', 'numTransformerSubmodules', 'numAttentionHeads', 'numLayers'] as const) {
    const v = c[key];
    if (v !== undefined && v !== null && !(typeof v === 'number' && Number.isSafeInteger(v) && v > 0)) configError(kind, `${key} must be a positive integer, got ${showValue(v)}`, key);
  }
  const dims = model ? modelDims(model) : null;
  const tokenDim = c.tokenDim ?? dims?.hidden;
  const numLayers = c.numLayers ?? dims?.layers;
  const numAttentionHeads = c.numAttentionHeads ?? dims?.heads;
  if (!tokenDim || !numLayers || !numAttentionHeads) configError(kind, 'tokenDim, numLayers and numAttentionHeads are required when the model has no config with its sizes', 'tokenDim');
  return resolveCommon({ ...c, tokenDim, numLayers, numAttentionHeads, numTransformerSubmodules: c.numTransformerSubmodules ?? 1 });
}

/** The shared prompt-learning fields of `adapter_config.json` (PEFT's names). */
export function promptLearningConfigToJson(c: PromptLearningConfig): Record<string, unknown> {
  return {
    // PEFT's from_pretrained builds PeftModelForCausalLM only from task_type CAUSAL_LM; with
    // null it builds the bare PeftModel, which never applies the prompt (the only task here).
    task_type: c.taskType ?? 'CAUSAL_LM',
    num_virtual_tokens: c.numVirtualTokens,
    token_dim: c.tokenDim,
    num_transformer_submodules: c.numTransformerSubmodules,
    num_attention_heads: c.numAttentionHeads,
    num_layers: c.numLayers,
  };
}

/** The shared prompt-learning fields from `adapter_config.json` (`peftType` from `peft_type`). */
export function promptLearningConfigFromJson(j: Record<string, unknown>): PromptLearningConfig {
  const f = new AdapterJson(j, String(j.peft_type));
  return {
    peftType: String(j.peft_type),
    numVirtualTokens: f.posInt('num_virtual_tokens'),
    tokenDim: f.posIntOrNull('token_dim') ?? undefined,
    numTransformerSubmodules: f.posIntOrNull('num_transformer_submodules') ?? 1,
    numAttentionHeads: f.posIntOrNull('num_attention_heads') ?? undefined,
    numLayers: f.posIntOrNull('num_layers') ?? undefined,
  };
}
