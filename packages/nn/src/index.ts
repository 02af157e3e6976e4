/**
 * `@webpeft/nn`: Module, layers, GPT-2 and LLaMA-family models, safetensors and
 * Hugging Face checkpoint I/O.
 * @packageDocumentation
 */
export { Module, type LoadStateDictResult, type StateDict } from './module.js';
export { ModuleList } from './module-list.js';
export { type LinearLike, isLinearLike } from './linear-like.js';
export { type ParamOptions, uniformInit, normalInit, kaimingUniformInit } from './init.js';
export { Linear, Conv1D } from './layers/linear.js';
export { Embedding } from './layers/embedding.js';
export { LayerNorm, RMSNorm } from './layers/norms.js';
export { Dropout } from './layers/dropout.js';
export { LSTM, type LSTMOptions } from './layers/lstm.js';
export { ACTIVATIONS, getActivation } from './layers/activations.js';
export { MLP, SwiGLU, type MLPOptions, type SwiGLUOptions } from './layers/mlp.js';
export { RotaryEmbedding, ropeInverseFrequencies, type RopeScaling, type RotaryOptions } from './layers/rope.js';
export { KVCache, type LayerKeyValues } from './attention/kv-cache.js';
export { attentionBias, MASKED_SCORE } from './attention/mask.js';
export { scaledDotProductAttention, type AttentionOptions, type AttnImplementation, ATTN_IMPLEMENTATIONS } from './attention/scaled-dot-product.js';
export { packedQkvAttention, type PackedQkvAttentionOptions } from './attention/packed-qkv.js';
export { type AttentionContext, buildAttentionContext, extendKeyValues } from './attention/context.js';
export { type CausalLM, type CausalLMInput, type CausalLMOutput, type GenerationPrefix, causalLMLoss } from './models/causal-lm.js';
export { type RawConfig, type NumberRange, fieldError, showValue } from './models/config-utils.js';
export { type GPT2Config, gpt2Config } from './models/gpt2/config.js';
export { GPT2Attention } from './models/gpt2/attention.js';
export { GPT2Block, GPT2Model, GPT2LMHeadModel } from './models/gpt2/model.js';
export { type LlamaConfig, llamaConfig, LLAMA_FAMILY } from './models/llama/config.js';
export { LlamaAttention, type RopeTables } from './models/llama/attention.js';
export { LlamaDecoderLayer, LlamaModel, LlamaForCausalLM } from './models/llama/model.js';
export { causalLMFromConfig, checkpointLayout, SUPPORTED_MODEL_TYPES, type CheckpointLayout } from './models/auto.js';
export { loadCausalLMWeights, planCausalLMWeights, type LoadWeightsReport, type CausalLMWeightsPlan, type StoredQuantizedLayers } from './models/load-weights.js';
export { type LoadQuantizer, type LoadQuantizerPlan, type StreamedWeight, isLoadQuantizer } from './models/load-quantizer.js';
export { ConfigError, parseConfigJson, inConfigFile } from './models/config-error.js';
export { fromPretrained, resolveModelDtype, type FromPretrainedOptions, type Pretrained } from './models/from-pretrained.js';
export { savePretrained, SAVE_DTYPES, type SaveDType, type SavePretrainedOptions, type SavedPretrained, type QuantizedLayout } from './models/save-pretrained.js';
export { exportWeights, type ExportedWeights } from './models/export-weights.js';
export { SequenceLengthError, checkSequenceLength, checkTokenIds, positionLimit } from './models/input-limits.js';
export { generate, type GenerateOptions, type GenerateOutput } from './generation/generate.js';
export { TokenSampler, argmaxRow, samplingProbabilities, type SamplingOptions } from './generation/sampling.js';
export * from './io/index.js';
export * from './tokenizer/index.js';
export * from './data/index.js';
