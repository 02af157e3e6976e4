import { backendOf } from '../../tuners/backend-of.js';
import type { PromptLearningMethod } from '../../registry.js';
import { injectPrefixKeyValues } from '../injection.js';
import { type PrefixTuningConfig, prefixTuningConfigFromJson, prefixTuningConfigToJson, resolvePrefixTuningConfig } from './config.js';
import { PrefixEncoder } from './encoder.js';

/** Prefix tuning (P-tuning v2): learned per-layer keys and values attended to before the input. */
export const prefixTuningMethod: PromptLearningMethod<PrefixTuningConfig> = {
  kind: 'prompt',
  peftType: 'PREFIX_TUNING',
  resolveConfig: resolvePrefixTuningConfig,
  configToJson: prefixTuningConfigToJson,
  configFromJson: prefixTuningConfigFromJson,
  createEncoder: (config, model) => new PrefixEncoder(config, backendOf(model)),
  injection: injectPrefixKeyValues,
  positionIds: 'offset',
  configForLoading(config, trainable) {
    // As in PEFT: the file holds the projected prefixes, not the MLP that made them.
    if (trainable && config.prefixProjection) throw new Error('loadPromptLearningModel: a prefix_projection adapter stores the projected prefixes and cannot be loaded as trainable');
    return config;
  },
};
