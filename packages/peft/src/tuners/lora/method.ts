import { type Module, Conv1D, Embedding, isLinearLike } from '@webpeft/nn';
import type { TunerMethod } from '../../registry.js';
import { ALL_LINEAR, allLinearTargets, matchesTarget } from '../target-match.js';
import { TunerLayer } from '../tuner-layer.js';
import { type LoraConfig, type ResolvedLoraConfig, loraConfigFromJson, loraConfigToJson, resolveLoraConfig } from './config.js';
import { LoraEmbedding } from './embedding.js';
import { LoraLinear } from './linear.js';
import { loraUnloadLayer } from './unload.js';

/**
 * The LoRA method: wraps every selected `LinearLike` (Linear, Conv1D, 4-bit linear)
 * in {@link LoraLinear} and every selected `Embedding` in {@link LoraEmbedding}; both
 * merge, and `mergeAndUnload({ dequantize })` gives full-precision `Linear`s over a
 * quantized base.
 */
export const loraMethod: TunerMethod<ResolvedLoraConfig> = {
  peftType: 'LORA',
  resolveConfig: (c, model) => resolveLoraConfig(c, model),
  configToJson: loraConfigToJson,
  configFromJson: (j) => loraConfigFromJson(j) as ResolvedLoraConfig,
  prepare(c, model) {
    let config = c;
    if (config.targetModules === ALL_LINEAR) config = { ...config, targetModules: allLinearTargets(model, (m) => m instanceof LoraLinear) };
    // PEFT switches fan_in_fan_out on when it meets a Conv1D target (and saves it so).
    const hasConv1D = model.namedModules().some(([p, m]) => p && m instanceof Conv1D && matchesTarget(config, p));
    if (hasConv1D && !config.fanInFanOut) config = { ...config, fanInFanOut: true };
    return config;
  },
  isTarget(path, module, config) {
    if (!matchesTarget(config, path)) return false;
    if (module instanceof TunerLayer && !(module instanceof LoraLinear || module instanceof LoraEmbedding)) {
      throw new Error(`LORA: '${path}' is already wrapped by ${module.peftType}; mixing methods on one module is not supported`);
    }
    if (module instanceof LoraLinear || module instanceof LoraEmbedding || isLinearLike(module) || module instanceof Embedding) return true;
    throw new Error(`LORA: target module '${path}' (${module.constructor.name}) is not supported: only linear-like layers and Embedding`);
  },
  createLayer(base) {
    if (base instanceof Embedding) return new LoraEmbedding(base);
    if (isLinearLike(base)) return new LoraLinear(base);
    throw new Error(`LORA: cannot wrap ${base.constructor.name}`);
  },
  trainableBiases(config, model) {
    return biasNames(config.bias, model);
  },
  modulesToSave: (c) => c.modulesToSave,
  unloadLayer: loraUnloadLayer,
};

/** Base parameters named `bias` to train for a LoRA-style `bias` mode (paths relative to the model). */
export function biasNames(mode: 'none' | 'all' | 'lora_only', model: Module): string[] {
  if (mode === 'none') return [];
  const names = model.namedParameters().map(([n]) => n).filter((n) => n === 'bias' || n.endsWith('.bias'));
  if (mode === 'all') return names.filter((n) => !/\.lora_/.test(n));
  return names.filter((n) => n.endsWith('.base_layer.bias'));
}

/** True when `c` is a LoRA config. */
export function isLoraConfig(c: { peftType: string }): c is LoraConfig {
  return c.peftType === 'LORA';
}
