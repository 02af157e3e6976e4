import { ACTIVATIONS } from '../../layers/activations.js';
import { ConfigError } from '../config-error.js';
import { type RawConfig, fieldError, optBool, optInt, optNumber, optString, optTokenIds, requireInt } from '../config-utils.js';

/**
 * A resolved GPT-2 config: Hugging Face `config.json` field names (so it writes back
 * unchanged) plus the generic sizes every causal LM exposes.
 */
export interface GPT2Config {
  model_type: 'gpt2';
  vocab_size: number;
  /** Longest sequence (`wpe` rows). */
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  /** MLP width (HF default `4 * n_embd` when null). */
  n_inner: number;
  /** MLP activation ('gelu_new' = tanh GELU). */
  activation_function: string;
  /** Dropout after attention and MLP outputs. */
  resid_pdrop: number;
  /** Dropout on the summed embeddings. */
  embd_pdrop: number;
  /** Dropout on attention probabilities. */
  attn_pdrop: number;
  layer_norm_epsilon: number;
  /** Std of the normal init (c_proj weights are scaled by 1/sqrt(2 n_layer), as GPT-2). */
  initializer_range: number;
  /** Divide scores by sqrt(head_dim) (true in every released GPT-2). */
  scale_attn_weights: boolean;
  /** Also divide scores by (layer index + 1) (Mistral's GPT-2 runs). */
  scale_attn_by_inverse_layer_idx: boolean;
  /** `lm_head` shares `wte`'s weight (true for GPT-2). */
  tie_word_embeddings: boolean;
  bos_token_id?: number;
  eos_token_id?: number;
  /** Generic names: `n_embd`, `n_layer`, `n_head`, `n_head`, `n_embd / n_head`. */
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
}

/** GPT-2 small (124M) defaults, as HF's `GPT2Config()`. */
const DEFAULTS = { vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 };

/**
 * Resolves a GPT-2 `config.json` (missing fields take HF's defaults) or throws a
 * `ConfigError` naming the bad field (wrong type, non-integer size, probability outside
 * [0, 1], epsilon <= 0, unknown activation). Unknown keys are ignored, as transformers
 * does. Cross-attention is not supported; `reorder_and_upcast_attn` is ignored (it only
 * changes half-precision rounding, and compute here is f32).
 * @example const cfg = gpt2Config({ n_embd: 32, n_layer: 2, n_head: 4, vocab_size: 64 });
 */
export function gpt2Config(raw: RawConfig = {}): GPT2Config {
  const r: RawConfig = { ...DEFAULTS, ...raw };
  const type = optString(r, 'model_type', 'gpt2', 'gpt2');
  if (type !== 'gpt2') throw new ConfigError(`gpt2Config: model_type '${type}' is not gpt2`, undefined, 'model_type');
  if (optBool(r, 'add_cross_attention', false, 'gpt2')) throw new ConfigError('gpt2 config: add_cross_attention is not supported', undefined, 'add_cross_attention');
  const nEmbd = requireInt(r, 'n_embd', 'gpt2');
  const nHead = requireInt(r, 'n_head', 'gpt2');
  if (nEmbd % nHead !== 0) throw new ConfigError(`gpt2 config: 'n_embd' ${nEmbd} is not divisible by 'n_head' ${nHead}`, undefined, 'n_embd');
  const nLayer = requireInt(r, 'n_layer', 'gpt2');
  const activation = optString(r, 'activation_function', 'gelu_new', 'gpt2');
  if (!(activation in ACTIVATIONS)) fieldError('gpt2', 'activation_function', `one of ${Object.keys(ACTIVATIONS).join(', ')}`, activation);
  const bos = optTokenIds(r, 'bos_token_id', 'gpt2');
  const eos = optTokenIds(r, 'eos_token_id', 'gpt2');
  // A probability is in [0, 1]; transformers' nn.Dropout rejects anything else at build time.
  const prob = { min: 0, max: 1 };
  return {
    model_type: 'gpt2',
    vocab_size: requireInt(r, 'vocab_size', 'gpt2'),
    n_positions: requireInt(r, 'n_positions', 'gpt2'),
    n_embd: nEmbd,
    n_layer: nLayer,
    n_head: nHead,
    n_inner: optInt(r, 'n_inner', 4 * nEmbd, 'gpt2'),
    activation_function: activation,
    resid_pdrop: optNumber(r, 'resid_pdrop', 0.1, 'gpt2', prob),
    embd_pdrop: optNumber(r, 'embd_pdrop', 0.1, 'gpt2', prob),
    attn_pdrop: optNumber(r, 'attn_pdrop', 0.1, 'gpt2', prob),
    // A negative epsilon takes the root of a negative number on flat rows (NaN).
    layer_norm_epsilon: optNumber(r, 'layer_norm_epsilon', 1e-5, 'gpt2', { min: 0 }),
    initializer_range: optNumber(r, 'initializer_range', 0.02, 'gpt2', { min: 0 }),
    scale_attn_weights: optBool(r, 'scale_attn_weights', true, 'gpt2'),
    scale_attn_by_inverse_layer_idx: optBool(r, 'scale_attn_by_inverse_layer_idx', false, 'gpt2'),
    tie_word_embeddings: optBool(r, 'tie_word_embeddings', true, 'gpt2'),
    ...(typeof bos === 'number' ? { bos_token_id: bos } : {}),
    ...(typeof eos === 'number' ? { eos_token_id: eos } : {}),
    hidden_size: nEmbd,
    num_hidden_layers: nLayer,
    num_attention_heads: nHead,
    num_key_value_heads: nHead,
    head_dim: nEmbd / nHead,
  };
}
