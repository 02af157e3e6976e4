import type { Module } from '@webpeft/nn';
import { configError } from '../../config.js';
import { AdapterJson } from '../../config-json.js';
import { type PromptLearningConfig, promptLearningConfigFromJson, promptLearningConfigToJson, resolvePromptLearningConfig } from '../config.js';

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

/** Defaults and validation of {@link PromptTuningConfig}. */
export function resolvePromptTuningConfig(c: PromptTuningConfig, model?: Module): PromptTuningConfig {
  const init = c.promptTuningInit ?? 'RANDOM';
  if (!['RANDOM', 'SAMPLE_VOCAB', 'TEXT'].includes(init)) configError('PROMPT_TUNING', `promptTuningInit must be RANDOM, SAMPLE_VOCAB or TEXT, got ${init}`, 'promptTuningInit');
  if (init === 'TEXT' && !c.promptTuningInitText) configError('PROMPT_TUNING', 'promptTuningInit TEXT needs promptTuningInitText', 'promptTuningInitText');
  return { ...resolvePromptLearningConfig(c, model), promptTuningInit: init, promptTuningInitText: c.promptTuningInitText ?? null, tokenizerNameOrPath: c.tokenizerNameOrPath ?? null };
}

/** `adapter_config.json` fields of a prompt-tuning config (PEFT's names; the tokenizer object is not saved). */
export function promptTuningConfigToJson(c: PromptTuningConfig): Record<string, unknown> {
  return {
    ...promptLearningConfigToJson(c),
    prompt_tuning_init: c.promptTuningInit,
    prompt_tuning_init_text: c.promptTuningInitText ?? null,
    tokenizer_name_or_path: c.tokenizerNameOrPath ?? null,
    tokenizer_kwargs: null,
  };
}

/** A prompt-tuning config from `adapter_config.json`. */
export function promptTuningConfigFromJson(j: Record<string, unknown>): PromptTuningConfig {
  const f = new AdapterJson(j, 'PROMPT_TUNING');
  return {
    ...promptLearningConfigFromJson(j),
    peftType: 'PROMPT_TUNING',
    promptTuningInit: f.oneOf('prompt_tuning_init', ['RANDOM', 'SAMPLE_VOCAB', 'TEXT'] as const, 'RANDOM'),
    promptTuningInitText: f.stringOrNull('prompt_tuning_init_text'),
    tokenizerNameOrPath: f.stringOrNull('tokenizer_name_or_path'),
  };
}
