import type { ParamOptions } from '../init.js';
import { ConfigError } from './config-error.js';
import type { CausalLM } from './causal-lm.js';
import type { RawConfig } from './config-utils.js';
import { GPT2LMHeadModel } from './gpt2/model.js';
import { LLAMA_FAMILY } from './llama/config.js';
import { LlamaForCausalLM } from './llama/model.js';

/** `model_type` values {@link causalLMFromConfig} builds. */
export const SUPPORTED_MODEL_TYPES: readonly string[] = ['gpt2', ...LLAMA_FAMILY];

/**
 * Builds the causal LM a Hugging Face `config.json` describes, with fresh weights (or
 * shapes only with `{ backend: 'meta' }`, e.g. to count a 7B model's parameters).
 * @example const model = causalLMFromConfig(JSON.parse(text), { backend: 'meta' }); model.numParameters();
 */
export function causalLMFromConfig(config: RawConfig, options: ParamOptions = {}): CausalLM {
  const type = config.model_type;
  if (type === 'gpt2') return new GPT2LMHeadModel(config, options);
  if (typeof type === 'string' && (LLAMA_FAMILY as readonly string[]).includes(type)) return new LlamaForCausalLM(config, options);
  throw new ConfigError(`causalLMFromConfig: model_type ${JSON.stringify(type)} is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`, undefined, 'model_type');
}

/** Checkpoint keys a model ignores when loading, and how bare keys gain the model's prefix. */
export interface CheckpointLayout {
  /** Prefix of the decoder stack (`transformer`, `model`); checkpoints of the bare stack omit it. */
  basePrefix: string;
  /** Keys that old checkpoints carry but that are not weights (causal-mask and RoPE buffers). */
  ignore: RegExp;
  /** Whether `lm_head.weight` is the input embedding (may be absent from the file). */
  tied: boolean;
}

/** The checkpoint layout of a model built by {@link causalLMFromConfig}. */
export function checkpointLayout(model: CausalLM): CheckpointLayout {
  if (model instanceof GPT2LMHeadModel) {
    return { basePrefix: 'transformer', ignore: /(^|\.)attn\.(bias|masked_bias)$/, tied: model.config.tie_word_embeddings };
  }
  if (model instanceof LlamaForCausalLM) {
    return { basePrefix: 'model', ignore: /(^|\.)rotary_emb\.inv_freq$/, tied: model.config.tie_word_embeddings };
  }
  throw new Error(`checkpointLayout: unknown model class ${model.constructor.name}`);
}
