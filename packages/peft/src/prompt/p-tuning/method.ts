import { backendOf } from '../../tuners/backend-of.js';
import type { PromptLearningMethod } from '../../registry.js';
import { prependVirtualTokens } from '../injection.js';
import { type PTuningConfig, pTuningConfigFromJson, pTuningConfigToJson, resolvePTuningConfig } from './config.js';
import { PTuningEncoder } from './encoder.js';

/** P-tuning: encoder-reparameterised virtual tokens prepended to the input embeddings (PEFT's `P_TUNING`). */
export const pTuningMethod: PromptLearningMethod<PTuningConfig> = {
  kind: 'prompt',
  peftType: 'P_TUNING',
  resolveConfig: resolvePTuningConfig,
  configToJson: pTuningConfigToJson,
  configFromJson: pTuningConfigFromJson,
  createEncoder: (config, model) => new PTuningEncoder(config, backendOf(model)),
  injection: prependVirtualTokens,
  configForLoading(config, trainable) {
    // The file holds the encoder's output, not the encoder: PEFT would copy it into the
    // embedding and run it through a fresh random encoder again, which changes the prompt.
    if (trainable) throw new Error('loadPromptLearningModel: a P_TUNING adapter stores the encoded virtual tokens, not its MLP/LSTM encoder, so it loads for inference only');
    return config;
  },
};
