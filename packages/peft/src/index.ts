/**
 * `@webpeft/peft`: parameter-efficient fine-tuning. LoRA (rsLoRA, DoRA, rank/alpha
 * patterns, fan-in-fan-out, any `LinearLike` base, which makes QLoRA), IA3, a
 * `PeftModel` with PEFT's adapter management, and adapter files in Hugging Face
 * PEFT's format. Methods (built-in and user-defined) plug in through one registry.
 * @packageDocumentation
 */
export { type PeftConfig, resolveCommon, commonToJson, commonFromJson, configError, configJsonText } from './config.js';
export { type PeftMethod, registerPeftMethod, getPeftMethod, registeredPeftTypes } from './registry.js';
export { ensureBuiltinMethods } from './builtins.js';
export { PeftModel, getPeftModel, type MergeAndUnloadOptions } from './peft-model.js';
export { countParameters, formatTrainableParameters } from './count.js';
export { TunerLayer } from './tuners/tuner-layer.js';
export { TunerModel, walk } from './tuners/tuner-model.js';
export { AdapterWeight, ModuleDict, ParameterDict } from './tuners/containers.js';
export { backendOf } from './tuners/backend-of.js';
export {
  type TargetSpec,
  ALL_LINEAR,
  DEFAULT_LORA_TARGETS,
  matchesTarget,
  layerIndex,
  allLinearTargets,
  patternValue,
  modelTypeOf,
} from './tuners/target-match.js';
export {
  type LoraConfig,
  type ResolvedLoraConfig,
  type LoraInit,
  LORA_DEFAULTS,
  resolveLoraConfig,
  loraConfigToJson,
  loraConfigFromJson,
  loraScaling,
} from './tuners/lora/config.js';
export { LoraLinear, type LoraLayerOptions, loraLayerOptions, rowNorm } from './tuners/lora/linear.js';
export { LoraEmbedding } from './tuners/lora/embedding.js';
export { loraMethod, biasNames } from './tuners/lora/method.js';
export { addWeightedAdapter, type CombinationType } from './tuners/lora/weighted.js';
export { type IA3Config, type ResolvedIA3Config, resolveIA3Config, isFeedforward } from './tuners/ia3/config.js';
export { IA3Linear, createIA3Layer } from './tuners/ia3/layer.js';
export { ia3Method } from './tuners/ia3/method.js';
export { svd, type Svd } from './linalg/svd.js';
export {
  ADAPTER_CONFIG_NAME,
  ADAPTER_WEIGHTS_NAME,
  adapterConfigJson,
  saveAdapter,
  loadAdapter,
  loadPeftModel,
  loadPromptLearningModel,
  readAdapterConfig,
  type LoadAdapterOptions,
} from './io/adapter-files.js';
export { type AdapterSource, type AdapterTarget, memoryFiles } from './io/file-access.js';
export {
  type PromptLearningConfig,
  type PromptTuningConfig,
  type PrefixTuningConfig,
  resolvePromptTuningConfig,
  resolvePrefixTuningConfig,
  promptConfigToJson,
  promptConfigFromJson,
  isPromptLearning,
  modelDims,
} from './prompt/config.js';
export { PromptEmbedding, PrefixEncoder } from './prompt/encoders.js';
export { PromptLearningModel, type PromptableModel } from './prompt/prompt-model.js';
