import type { Module } from '@webpeft/nn';
import { configError } from '../../config.js';
import { type PromptLearningConfig, promptLearningConfigFromJson, promptLearningConfigToJson, resolvePromptLearningConfig } from '../config.js';

/**
 * P-tuning (Liu et al. 2021, arXiv:2103.10385), PEFT's `P_TUNING` / `PromptEncoderConfig`:
 * virtual-token embeddings reparameterised by an encoder (an MLP, or a bidirectional
 * LSTM followed by an MLP) while training, prepended to the input embeddings.
 * (P-tuning v2 is deep prompts at every layer: PEFT's prefix tuning without projection.)
 */
export interface PTuningConfig extends PromptLearningConfig {
  peftType: 'P_TUNING';
  /** `MLP` (default, PEFT's recommendation) or `LSTM`. */
  encoderReparameterizationType?: 'MLP' | 'LSTM';
  /** Hidden size of the encoder (default `tokenDim`, as PEFT). */
  encoderHiddenSize?: number;
  /** LSTM layers (default 2); the MLP always has PEFT's 3 linear layers, so another value is an error for `MLP`. */
  encoderNumLayers?: number;
  /** Dropout between LSTM layers while training (default 0). */
  encoderDropout?: number;
}

/** Defaults (PEFT's) and validation of {@link PTuningConfig}, naming the field in errors. */
export function resolvePTuningConfig(c: PTuningConfig, model?: Module): PTuningConfig {
  const err = (m: string): never => configError('P_TUNING', m);
  const type = c.encoderReparameterizationType ?? 'MLP';
  if (type !== 'MLP' && type !== 'LSTM') err(`encoderReparameterizationType must be MLP or LSTM, got ${JSON.stringify(type)}`);
  const r = resolvePromptLearningConfig(c, model);
  const encoderHiddenSize = c.encoderHiddenSize ?? r.tokenDim;
  if (!(Number.isInteger(encoderHiddenSize) && (encoderHiddenSize as number) > 0)) err(`encoderHiddenSize must be a positive integer, got ${JSON.stringify(encoderHiddenSize)}`);
  const encoderNumLayers = c.encoderNumLayers ?? 2;
  if (!(Number.isInteger(encoderNumLayers) && encoderNumLayers > 0)) err(`encoderNumLayers must be a positive integer, got ${JSON.stringify(encoderNumLayers)}`);
  // PEFT warns and ignores it; an encoder that is built must be the one asked for.
  if (type === 'MLP' && encoderNumLayers !== 2 && !r.inferenceMode) err(`encoderNumLayers ${encoderNumLayers} has no effect on the MLP encoder (always 3 linear layers, as PEFT); leave it at 2 or use LSTM`);
  const encoderDropout = c.encoderDropout ?? 0;
  if (typeof encoderDropout !== 'number' || !(encoderDropout >= 0 && encoderDropout < 1)) err(`encoderDropout must be a number in [0, 1), got ${JSON.stringify(encoderDropout)}`);
  return { ...r, peftType: 'P_TUNING', encoderReparameterizationType: type, encoderHiddenSize, encoderNumLayers, encoderDropout };
}

/** `adapter_config.json` fields of a P-tuning config (PEFT's names). */
export function pTuningConfigToJson(c: PTuningConfig): Record<string, unknown> {
  return {
    ...promptLearningConfigToJson(c),
    encoder_reparameterization_type: c.encoderReparameterizationType,
    encoder_hidden_size: c.encoderHiddenSize,
    encoder_num_layers: c.encoderNumLayers,
    encoder_dropout: c.encoderDropout,
  };
}

/** A P-tuning config from `adapter_config.json` (values are checked by {@link resolvePTuningConfig}). */
export function pTuningConfigFromJson(j: Record<string, unknown>): PTuningConfig {
  const c: PTuningConfig = { ...promptLearningConfigFromJson(j), peftType: 'P_TUNING' };
  if (j.encoder_reparameterization_type != null) c.encoderReparameterizationType = j.encoder_reparameterization_type as 'MLP';
  if (j.encoder_hidden_size != null) c.encoderHiddenSize = j.encoder_hidden_size as number;
  if (j.encoder_num_layers != null) c.encoderNumLayers = j.encoder_num_layers as number;
  if (j.encoder_dropout != null) c.encoderDropout = j.encoder_dropout as number;
  return c;
}
