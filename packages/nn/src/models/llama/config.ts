import type { RopeScaling } from '../../layers/rope.js';
import { ACTIVATIONS } from '../../layers/activations.js';
import { ConfigError } from '../config-error.js';
import { type RawConfig, fieldError, optBool, optInt, optNumber, optString, optTokenIds, requireInt } from '../config-utils.js';

/** Model types built by {@link LlamaForCausalLM} (same graph, different defaults). */
export const LLAMA_FAMILY = ['llama', 'mistral', 'qwen2'] as const;

/**
 * A resolved LLaMA-family config (LLaMA 1-3, TinyLlama, SmolLM, Mistral, Qwen2): Hugging
 * Face `config.json` field names plus the derived `head_dim`.
 */
export interface LlamaConfig {
  model_type: (typeof LLAMA_FAMILY)[number];
  vocab_size: number;
  hidden_size: number;
  /** SwiGLU width. */
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  /** Grouped-query attention: kv heads (default `num_attention_heads`). */
  num_key_value_heads: number;
  /** Per-head width (default `hidden_size / num_attention_heads`). */
  head_dim: number;
  hidden_act: string;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: RopeScaling | null;
  /** Biases on q/k/v/o (LLaMA's `attention_bias`). */
  attention_bias: boolean;
  /** Biases on q/k/v only (Qwen2 has them, without `attention_bias`). */
  qkv_bias: boolean;
  attention_dropout: number;
  mlp_bias: boolean;
  /** `lm_head` shares `embed_tokens`' weight (SmolLM, Qwen2-0.5B). */
  tie_word_embeddings: boolean;
  initializer_range: number;
  /** Attention window (Mistral; Qwen2 with `use_sliding_window`), or null for full attention. */
  sliding_window: number | null;
  bos_token_id?: number;
  eos_token_id?: number | number[];
}

/**
 * Resolves a LLaMA-family `config.json` (HF defaults for missing fields: LLaMA-7B sizes)
 * or throws naming the bad field. Sliding-window attention (Mistral) is not applied: it
 * only matters beyond `sliding_window` tokens, so longer inputs throw instead.
 * @example const cfg = llamaConfig({ hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 64 });
 */
export function llamaConfig(raw: RawConfig = {}): LlamaConfig {
  const type = optString(raw, 'model_type', 'llama', 'llama');
  if (!(LLAMA_FAMILY as readonly string[]).includes(type)) throw new ConfigError(`llamaConfig: model_type '${type}' is not one of ${LLAMA_FAMILY.join(', ')}`, undefined, 'model_type');
  const defaults: RawConfig = { vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, max_position_embeddings: 2048 };
  const r = { ...defaults, ...raw };
  const hidden = requireInt(r, 'hidden_size', type);
  const heads = requireInt(r, 'num_attention_heads', type);
  const kvHeads = optInt(r, 'num_key_value_heads', heads, type);
  if (heads % kvHeads !== 0) throw new ConfigError(`${type} config: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`, undefined, 'num_key_value_heads');
  const headDim = r.head_dim == null ? hidden / heads : requireInt(r, 'head_dim', type);
  // transformers checks this even when head_dim is given.
  if (hidden % heads !== 0) throw new ConfigError(`${type} config: hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`, undefined, 'hidden_size');
  if (headDim % 2 !== 0) throw new ConfigError(`${type} config: the head dim ${headDim} must be even for RoPE`, undefined, r.head_dim == null ? 'hidden_size' : 'head_dim');
  const attentionBias = optBool(r, 'attention_bias', false, type);
  const activation = optString(r, 'hidden_act', 'silu', type);
  if (!(activation in ACTIVATIONS)) fieldError(type, 'hidden_act', `one of ${Object.keys(ACTIVATIONS).join(', ')}`, activation);
  const eos = optTokenIds(r, 'eos_token_id', type, true);
  const bos = optTokenIds(r, 'bos_token_id', type);
  const rope = ropeParameters(r, type);
  const scaling = r.rope_scaling == null ? (rope?.scaling ?? null) : checkScaling(r.rope_scaling, 'rope_scaling', type);
  return {
    model_type: type as LlamaConfig['model_type'],
    vocab_size: requireInt(r, 'vocab_size', type),
    hidden_size: hidden,
    intermediate_size: requireInt(r, 'intermediate_size', type),
    num_hidden_layers: requireInt(r, 'num_hidden_layers', type),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    hidden_act: activation,
    max_position_embeddings: requireInt(r, 'max_position_embeddings', type),
    // A negative eps takes the root of a negative number on small rows: NaN logits (as transformers gives).
    rms_norm_eps: optNumber(r, 'rms_norm_eps', 1e-6, type, { min: 0 }),
    // theta <= 0 makes every RoPE frequency NaN or infinite.
    rope_theta: optNumber(r, 'rope_theta', rope?.theta ?? 10000, type, { min: 0, minExclusive: true }),
    rope_scaling: scaling,
    attention_bias: attentionBias,
    // Qwen2's attention always has q/k/v biases (its config has no flag for them).
    qkv_bias: attentionBias || type === 'qwen2',
    attention_dropout: optNumber(r, 'attention_dropout', 0, type, { min: 0, max: 1 }),
    mlp_bias: optBool(r, 'mlp_bias', false, type),
    tie_word_embeddings: optBool(r, 'tie_word_embeddings', false, type),
    initializer_range: optNumber(r, 'initializer_range', 0.02, type, { min: 0 }),
    sliding_window: slidingWindow(r, type),
    ...(typeof bos === 'number' ? { bos_token_id: bos } : {}),
    ...(eos !== undefined ? { eos_token_id: eos } : {}),
  };
}

/**
 * transformers >= 5 writes `rope_parameters` (`{ rope_theta, rope_type, factor, ... }`)
 * in place of `rope_theta` / `rope_scaling`; a non-default type is the scaling.
 */
function ropeParameters(r: RawConfig, type: string): { theta?: number; scaling: RopeScaling | null } | null {
  const p = r.rope_parameters;
  if (p == null) return null;
  if (typeof p !== 'object' || Array.isArray(p)) fieldError(type, 'rope_parameters', 'an object or null', p);
  const params = p as RawConfig;
  const theta = params.rope_theta;
  // theta <= 0 makes every RoPE frequency NaN or infinite.
  if (theta !== undefined && !(typeof theta === 'number' && Number.isFinite(theta) && theta > 0)) fieldError(type, 'rope_parameters.rope_theta', 'a finite number > 0', theta);
  const kind = params.rope_type ?? params.type ?? 'default';
  return { theta: theta, scaling: kind === 'default' ? null : checkScaling(params, 'rope_parameters', type) };
}

/** RoPE scaling types the rotary layer implements. */
const SCALING_TYPES = ['default', 'linear', 'llama3'];

/** Checks a `rope_scaling` / `rope_parameters` object's type and numeric fields, naming `key.field`. */
function checkScaling(value: unknown, key: string, type: string): RopeScaling | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fieldError(type, key, 'an object or null', value);
  const s = value as RawConfig;
  const kind = s.rope_type ?? s.type ?? 'default';
  if (typeof kind !== 'string' || !SCALING_TYPES.includes(kind)) fieldError(type, `${key}.rope_type`, `one of ${SCALING_TYPES.join(', ')}`, kind);
  if (kind === 'default') return null;
  for (const f of ['factor', 'low_freq_factor', 'high_freq_factor']) {
    const v = s[f];
    const required = f === 'factor';
    if ((v === undefined || v === null) && !required) continue;
    if (typeof v !== 'number' || !(Number.isFinite(v) && v > 0)) fieldError(type, `${key}.${f}`, 'a finite number > 0', v);
  }
  const orig = s.original_max_position_embeddings;
  if (kind === 'llama3' && (s.high_freq_factor ?? 4) === (s.low_freq_factor ?? 1)) {
    // llama3 scaling interpolates over (high - low): equal factors divide by zero.
    fieldError(type, `${key}.high_freq_factor`, 'different from low_freq_factor', s.high_freq_factor ?? 4);
  }
  if (orig != null && !(typeof orig === 'number' && Number.isSafeInteger(orig) && orig > 0)) fieldError(type, `${key}.original_max_position_embeddings`, 'a positive integer', orig);
  return s;
}

function slidingWindow(r: RawConfig, type: string): number | null {
  const use = type === 'qwen2' && optBool(r, 'use_sliding_window', false, type);
  const w = r.sliding_window;
  if (w === undefined || w === null) return null;
  if (typeof w !== 'number' || !Number.isSafeInteger(w) || w <= 0) fieldError(type, 'sliding_window', 'a positive integer or null', w);
  if (type === 'mistral') return w;
  if (use) return w;
  return null;
}
