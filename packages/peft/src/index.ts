/**
 * `@webpeft/peft`: parameter-efficient fine-tuning. LoRA (rsLoRA, DoRA, rank/alpha
 * patterns, fan-in-fan-out, any `LinearLike` base, which makes QLoRA), IA3, bottleneck
 * adapters (Houlsby, Pfeiffer, parallel), prompt tuning, prefix tuning and P-tuning, a `PeftModel` with PEFT's adapter management, and adapter files
 * in Hugging Face PEFT's format. Methods (built-in and user-defined, tuners and
 * prompt learning) plug in through one registry.
 * @packageDocumentation
 */
export { type PeftConfig, TASK_TYPES, resolveCommon, commonToJson, commonFromJson, configError, configJsonText } from './config.js';
export {
  type PeftMethod,
  type PeftMethodBase,
  type TunerMethod,
  type PromptLearningMethod,
  type RegisteredPeftMethod,
  type MergeAndUnloadOptions,
  registerPeftMethod,
  getPeftMethod,
  getTunerMethod,
  getPromptLearningMethod,
  registeredPeftTypes,
  isPromptLearningType,
} from './registry.js';
export { ensureBuiltinMethods } from './builtins.js';
export { PeftModel, type MixedBatchInput } from './peft-model.js';
export { BASE_ADAPTER, type MixedBatchLayer } from './tuners/mixed-batch.js';
export { getPeftModel, asPromptable, isPromptLearning } from './get-peft-model.js';
export { countParameters, formatTrainableParameters } from './count.js';
export { TunerLayer, type AdapterSlot, type AdapterSlotKind, type AdapterSlots, type AdapterTensors, type NewAdapter } from './tuners/tuner-layer.js';
export { TunerModel, type AnyTunerLayer, walk } from './tuners/tuner-model.js';
export { AdapterWeight, ModuleDict, ParameterDict } from './tuners/containers.js';
export { backendOf, planOnMeta } from './tuners/backend-of.js';
export { AdapterJson, camelCase, rejectSnakeCase } from './config-json.js';
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
  type BaseRewritingInit,
  type LoftQConfig,
  isBaseRewritingInit,
  LORA_DEFAULTS,
  resolveLoraConfig,
  loraConfigToJson,
  loraConfigFromJson,
  loraScaling,
  checkNames,
} from './tuners/lora/config.js';
export { LoraLinear, type LoraLayerOptions, type LoraSettings, type LoraLinearSlot, loraLayerOptions, rowNorm } from './tuners/lora/linear.js';
export { LoraEmbedding, type LoraEmbeddingSlot } from './tuners/lora/embedding.js';
export { loraMethod, biasNames } from './tuners/lora/method.js';
export { loraUnloadLayer } from './tuners/lora/unload.js';
export { addWeightedAdapter, COMBINATION_TYPES, type CombinationType, type WeightedAdapterHost, type WeightedAdapterOptions } from './tuners/lora/weighted.js';
export { hotswapAdapter, HotswapError, type HotswapOptions } from './tuners/lora/hotswap.js';
export { ModulesToSaveWrapper } from './tuners/modules-to-save.js';
export { initLoraFromBase, type BaseInitHost, type BaseInitOptions, type LoftQQuantizer } from './tuners/lora/base-init.js';
export { mergeTaskTensors, type TaskMergeMethod, type TaskMergeOptions, type MajoritySignMethod } from './tuners/lora/merge-utils.js';
export { type IA3Config, type ResolvedIA3Config, resolveIA3Config, isFeedforward } from './tuners/ia3/config.js';
export { IA3Linear, createIA3Layer } from './tuners/ia3/layer.js';
export { ia3Method } from './tuners/ia3/method.js';
export {
  type BottleneckConfig,
  type ResolvedBottleneckConfig,
  type BottleneckLayerConfig,
  BOTTLENECK_NONLINEARITIES,
  resolveBottleneckConfig,
  bottleneckWidth,
  bottleneckConfigToJson,
  bottleneckConfigFromJson,
} from './tuners/bottleneck/config.js';
export { BottleneckLayer, type BottleneckSlot, type BottleneckSettings } from './tuners/bottleneck/layer.js';
export { bottleneckMethod } from './tuners/bottleneck/method.js';
export { svd, type Svd } from './linalg/svd.js';
export {
  ADAPTER_CONFIG_NAME,
  ADAPTER_WEIGHTS_NAME,
  type AdapterHolder,
  adapterConfigJson,
  saveAdapter,
  readAdapterConfig,
  readAdapterWeights,
  adapterConfigPath,
  loadAdapterWeights,
  checkAdapterWeights,
  copyAdapterWeights,
  expectedTensors,
  type AdapterWeightsFile,
  type LoadAdapterOptions,
} from './io/adapter-files.js';
export { loadAdapter, loadPeftModel, loadPromptLearningModel } from './io/load.js';
export { type AdapterSource, type AdapterTarget, memoryFiles } from './io/file-access.js';
export {
  type PromptLearningConfig,
  resolvePromptLearningConfig,
  promptLearningConfigToJson,
  promptLearningConfigFromJson,
  modelDims,
} from './prompt/config.js';
export { PromptEncoder, type PromptableModel, type PromptInjection } from './prompt/encoder.js';
export { prependVirtualTokens, injectPrefixKeyValues } from './prompt/injection.js';
export { PromptLearningModel } from './prompt/prompt-model.js';
export { type PromptTuningConfig, resolvePromptTuningConfig, promptTuningConfigToJson, promptTuningConfigFromJson } from './prompt/prompt-tuning/config.js';
export { PromptEmbedding } from './prompt/prompt-tuning/encoder.js';
export { promptTuningMethod } from './prompt/prompt-tuning/method.js';
export { type PrefixTuningConfig, resolvePrefixTuningConfig, prefixTuningConfigToJson, prefixTuningConfigFromJson } from './prompt/prefix-tuning/config.js';
export { PrefixEncoder } from './prompt/prefix-tuning/encoder.js';
export { prefixTuningMethod } from './prompt/prefix-tuning/method.js';
export { type PTuningConfig, resolvePTuningConfig, pTuningConfigToJson, pTuningConfigFromJson } from './prompt/p-tuning/config.js';
export { PTuningEncoder } from './prompt/p-tuning/encoder.js';
export { pTuningMethod } from './prompt/p-tuning/method.js';
