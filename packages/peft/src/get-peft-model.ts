import type { Module } from '@webpeft/nn';
import { ensureBuiltinMethods } from './builtins.js';
import type { PeftConfig } from './config.js';
import { PeftModel } from './peft-model.js';
import type { PromptLearningConfig } from './prompt/config.js';
import type { PromptableModel } from './prompt/encoder.js';
import { PromptLearningModel } from './prompt/prompt-model.js';
import type { PrefixTuningConfig } from './prompt/prefix-tuning/config.js';
import type { PromptTuningConfig } from './prompt/prompt-tuning/config.js';
import type { PTuningConfig } from './prompt/p-tuning/config.js';
import { isPromptLearningType } from './registry.js';
import type { IA3Config } from './tuners/ia3/config.js';
import type { LoraConfig } from './tuners/lora/config.js';
import type { BottleneckConfig } from './tuners/bottleneck/config.js';

/**
 * Wraps `model` with adapter `adapterName` of `config` (PEFT's `get_peft_model`):
 * freezes the base, injects the method's layers, makes the adapter trainable. A
 * prompt-learning method (`PROMPT_TUNING`, `PREFIX_TUNING`, `P_TUNING`, or a user's registered
 * with `kind: 'prompt'`) gives a {@link PromptLearningModel}; every other method a {@link PeftModel}.
 * @example const peft = getPeftModel(model, { peftType: 'LORA', r: 16, loraAlpha: 32, targetModules: 'all-linear' });
 */
export function getPeftModel(model: Module, config: PromptTuningConfig | PrefixTuningConfig | PTuningConfig, adapterName?: string): PromptLearningModel;
export function getPeftModel(model: Module, config: LoraConfig | IA3Config | BottleneckConfig, adapterName?: string): PeftModel;
export function getPeftModel<C extends PromptLearningConfig>(model: Module, config: C, adapterName?: string): PromptLearningModel;
export function getPeftModel<C extends PeftConfig & { numVirtualTokens?: undefined }>(model: Module, config: C, adapterName?: string): PeftModel;
export function getPeftModel(model: Module, config: PeftConfig, adapterName?: string): PeftModel | PromptLearningModel;
export function getPeftModel(model: Module, config: PeftConfig, adapterName = 'default'): PeftModel | PromptLearningModel {
  ensureBuiltinMethods();
  if (isPromptLearning(config)) return new PromptLearningModel(asPromptable(model, config.peftType), config, adapterName);
  return new PeftModel(model, config, adapterName);
}

/**
 * True when `config`'s method is registered as a prompt-learning method (its model is a
 * {@link PromptLearningModel}); the built-in methods count as registered.
 */
export function isPromptLearning(config: PeftConfig): config is PromptLearningConfig {
  ensureBuiltinMethods();
  return isPromptLearningType(config.peftType);
}

/** `model` when it has what prompt learning needs (`getInputEmbeddings`, a causal-LM forward); otherwise a clear error. */
export function asPromptable(model: Module, peftType: string): PromptableModel {
  if (!isPromptable(model)) throw new Error(`${peftType}: prompt learning needs a causal LM with getInputEmbeddings() (got ${model.constructor.name})`);
  return model;
}

function isPromptable(model: Module): model is PromptableModel {
  return typeof (model as { getInputEmbeddings?: unknown }).getInputEmbeddings === 'function';
}
