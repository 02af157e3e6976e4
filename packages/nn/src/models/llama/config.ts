import type { RopeScaling } from '../../layers/rope.js';
import { type RawConfig, optBool, optNumber, optString, requireInt } from '../config-utils.js';

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
  const type = optString(raw, 'model_type', 'llama');
  if (!(LLAMA_FAMILY as readonly string[]).includes(type)) throw new Error(`llamaConfig: model_type '${type}' is not one of ${LLAMA_FAMILY.join(', ')}`);
  const defaults: RawConfig = { vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, max_position_embeddings: 2048 };
  const r = { ...defaults, ...raw };
  const hidden = requireInt(r, 'hidden_size', type);
  const heads = requireInt(r, 'num_attention_heads', type);
  const kvHeads = r.num_key_value_heads == null ? heads : requireInt(r, 'num_key_value_heads', type);
  if (heads % kvHeads !== 0) throw new Error(`${type} config: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  const headDim = r.head_dim == null ? hidden / heads : requireInt(r, 'head_dim', type);
  if (!Number.isInteger(headDim)) throw new Error(`${type} config: hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`);
  const attentionBias = optBool(r, 'attention_bias', false);
  const eos = r.eos_token_id;
  const bos = r.bos_token_id;
  const scaling = r.rope_scaling;
  if (scaling != null && typeof scaling !== 'object') throw new Error(`${type} config: rope_scaling must be an object or null`);
  const rope = ropeParameters(r, type);
  return {
    model_type: type as LlamaConfig['model_type'],
    vocab_size: requireInt(r, 'vocab_size', type),
    hidden_size: hidden,
    intermediate_size: requireInt(r, 'intermediate_size', type),
    num_hidden_layers: requireInt(r, 'num_hidden_layers', type),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    hidden_act: optString(r, 'hidden_act', 'silu'),
    max_position_embeddings: requireInt(r, 'max_position_embeddings', type),
    rms_norm_eps: optNumber(r, 'rms_norm_eps', 1e-6),
    rope_theta: optNumber(r, 'rope_theta', rope?.theta ?? 10000),
    rope_scaling: (scaling as RopeScaling | null | undefined) ?? rope?.scaling ?? null,
    attention_bias: attentionBias,
    // Qwen2's attention always has q/k/v biases (its config has no flag for them).
    qkv_bias: attentionBias || type === 'qwen2',
    attention_dropout: optNumber(r, 'attention_dropout', 0),
    mlp_bias: optBool(r, 'mlp_bias', false),
    tie_word_embeddings: optBool(r, 'tie_word_embeddings', false),
    initializer_range: optNumber(r, 'initializer_range', 0.02),
    sliding_window: slidingWindow(r, type),
    ...(typeof bos === 'number' ? { bos_token_id: bos } : {}),
    ...(typeof eos === 'number' || Array.isArray(eos) ? { eos_token_id: eos as number | number[] } : {}),
  };
}

/**
 * transformers >= 5 writes `rope_parameters` (`{ rope_theta, rope_type, factor, ... }`)
 * in place of `rope_theta` / `rope_scaling`; a non-default type is the scaling.
 */
function ropeParameters(r: RawConfig, type: string): { theta?: number; scaling: RopeScaling | null } | null {
  const p = r.rope_parameters;
  if (p == null) return null;
  if (typeof p !== 'object' || Array.isArray(p)) throw new Error(`${type} config: rope_parameters must be an object or null`);
  const params = p as RopeScaling & { rope_theta?: unknown };
  const theta = params.rope_theta;
  if (theta !== undefined && typeof theta !== 'number') throw new Error(`${type} config: rope_parameters.rope_theta must be a number, got ${JSON.stringify(theta)}`);
  const kind = params.rope_type ?? params.type ?? 'default';
  return { theta, scaling: kind === 'default' ? null : params };
}

function slidingWindow(r: RawConfig, type: string): number | null {
  const w = r.sliding_window;
  if (typeof w !== 'number') return null;
  if (type === 'mistral') return w;
  if (type === 'qwen2' && r.use_sliding_window === true) return w;
  return null;
}
