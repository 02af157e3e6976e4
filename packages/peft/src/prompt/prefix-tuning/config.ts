import { type Module, showValue } from '@webpeft/nn';
import { AdapterJson } from '../../config-json.js';
import { configError } from '../../config.js';
import { type PromptLearningConfig, modelDims, promptLearningConfigFromJson, promptLearningConfigToJson, resolvePromptLearningConfig } from '../config.js';

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

/** Defaults and validation of {@link PrefixTuningConfig}. */
export function resolvePrefixTuningConfig(c: PrefixTuningConfig, model?: Module): PrefixTuningConfig {
  if (c.prefixProjection !== undefined && typeof c.prefixProjection !== 'boolean') configError('PREFIX_TUNING', `prefixProjection must be true or false, got ${showValue(c.prefixProjection)}`, 'prefixProjection');
  const ehs = c.encoderHiddenSize;
  if (ehs != null && !(typeof ehs === 'number' && Number.isSafeInteger(ehs) && ehs > 0)) configError('PREFIX_TUNING', `encoderHiddenSize must be a positive integer, got ${showValue(ehs)}`, 'encoderHiddenSize');
  // Prefixes are keys/values: with grouped-query attention PEFT sets token_dim to
  // kvHeads * headDim and num_attention_heads to kvHeads.
  const dims = model ? modelDims(model) : null;
  const gqa = { tokenDim: c.tokenDim ?? (dims ? dims.kvHeads * dims.headDim : undefined), numAttentionHeads: c.numAttentionHeads ?? dims?.kvHeads };
  const r = resolvePromptLearningConfig({ ...c, ...gqa }, model);
  return { ...r, prefixProjection: c.prefixProjection ?? false, encoderHiddenSize: c.encoderHiddenSize ?? r.tokenDim };
}

/** `adapter_config.json` fields of a prefix-tuning config (PEFT's names). */
export function prefixTuningConfigToJson(c: PrefixTuningConfig): Record<string, unknown> {
  return { ...promptLearningConfigToJson(c), prefix_projection: c.prefixProjection, encoder_hidden_size: c.encoderHiddenSize };
}

/** A prefix-tuning config from `adapter_config.json`. */
export function prefixTuningConfigFromJson(j: Record<string, unknown>): PrefixTuningConfig {
  const f = new AdapterJson(j, 'PREFIX_TUNING');
  return {
    ...promptLearningConfigFromJson(j),
    peftType: 'PREFIX_TUNING',
    prefixProjection: f.bool('prefix_projection', false),
    encoderHiddenSize: f.posIntOrNull('encoder_hidden_size') ?? undefined,
  };
}
