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
export { ACTIVATIONS, getActivation } from './layers/activations.js';
