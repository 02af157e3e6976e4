import { Conv1D, isLinearLike } from '@webpeft/nn';
import { AdapterJson } from '../../config-json.js';
import type { TunerMethod } from '../../registry.js';
import { matchesTarget } from '../target-match.js';
import { TunerLayer } from '../tuner-layer.js';
import { type ResolvedIA3Config, resolveIA3Config } from './config.js';
import { IA3Linear, createIA3Layer } from './layer.js';

/** The IA3 method: wraps selected linear-like layers in {@link IA3Linear}. */
export const ia3Method: TunerMethod<ResolvedIA3Config> = {
  peftType: 'IA3',
  resolveConfig: (c, model) => resolveIA3Config(c, model),
  configToJson: (c) => ({
    target_modules: c.targetModules,
    exclude_modules: c.excludeModules,
    feedforward_modules: c.feedforwardModules,
    fan_in_fan_out: c.fanInFanOut,
    modules_to_save: c.modulesToSave,
    init_ia3_weights: c.initIa3Weights,
  }),
  configFromJson: (j) => {
    const f = new AdapterJson(j, 'IA3');
    return {
      peftType: 'IA3',
      targetModules: f.names('target_modules') ?? undefined,
      excludeModules: f.names('exclude_modules'),
      feedforwardModules: f.names('feedforward_modules') ?? [],
      fanInFanOut: f.bool('fan_in_fan_out', false),
      modulesToSave: f.nameList('modules_to_save'),
      initIa3Weights: f.bool('init_ia3_weights', true),
    } as ResolvedIA3Config;
  },
  prepare(c, model) {
    const hasConv1D = model.namedModules().some(([p, m]) => p && m instanceof Conv1D && matchesTarget(c, p));
    return hasConv1D && !c.fanInFanOut ? { ...c, fanInFanOut: true } : c;
  },
  isTarget(path, module, config) {
    if (!matchesTarget(config, path)) return false;
    if (module instanceof IA3Linear) return true;
    if (module instanceof TunerLayer) throw new Error(`IA3: '${path}' is already wrapped by ${module.peftType}`);
    if (isLinearLike(module)) return true;
    throw new Error(`IA3: target module '${path}' (${module.constructor.name}) is not supported: only linear-like layers`);
  },
  createLayer: (base, config, path) => {
    if (!isLinearLike(base)) throw new Error(`IA3: cannot wrap ${base.constructor.name}`);
    return createIA3Layer(base, config, path);
  },
  modulesToSave: (c) => c.modulesToSave,
};
