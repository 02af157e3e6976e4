import { backendOf } from '../../tuners/backend-of.js';
import type { PromptLearningMethod } from '../../registry.js';
import { prependVirtualTokens } from '../injection.js';
import { type PromptTuningConfig, promptTuningConfigFromJson, promptTuningConfigToJson, resolvePromptTuningConfig } from './config.js';
import { PromptEmbedding } from './encoder.js';

/** Prompt tuning: learned rows prepended to the input embeddings. */
export const promptTuningMethod: PromptLearningMethod<PromptTuningConfig> = {
  kind: 'prompt',
  peftType: 'PROMPT_TUNING',
  resolveConfig: resolvePromptTuningConfig,
  configToJson: promptTuningConfigToJson,
  configFromJson: promptTuningConfigFromJson,
  createEncoder: (config, model) => new PromptEmbedding(config, model.getInputEmbeddings(), backendOf(model)),
  injection: prependVirtualTokens,
  // The saved rows overwrite any init: build with RANDOM (TEXT would need the tokenizer).
  configForLoading: (config) => ({ ...config, promptTuningInit: 'RANDOM' }),
};
