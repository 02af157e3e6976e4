import { type Module, showValue } from '@webpeft/nn';
import { type PeftConfig, configError, resolveCommon } from '../../config.js';
import { rejectSnakeCase } from '../../config-json.js';
import { checkNames } from '../lora/config.js';
import { modelTypeOf } from '../target-match.js';

/**
 * IA3 (Liu et al. 2022, arXiv:2205.05638): learned vectors that rescale activations,
 * with PEFT's `IA3Config` defaults.
 */
export interface IA3Config extends PeftConfig {
  peftType: 'IA3';
  /** Modules to wrap (list with suffix match, or a regex). Default per model type. */
  targetModules?: string[] | string;
  /** Modules never wrapped. */
  excludeModules?: string[] | string | null;
  /** Targets whose input (not output) is scaled: `y = base(x * l)`. Default per model type. */
  feedforwardModules?: string[] | string;
  /** Base stores `[in, out]` (Conv1D); set automatically for Conv1D targets. */
  fanInFanOut?: boolean;
  /** Modules trained and saved whole. */
  modulesToSave?: string[] | null;
  /** Start the vectors at one (default true: the adapter starts as the identity). */
  initIa3Weights?: boolean;
}

/** An IA3 config with every field filled. */
export type ResolvedIA3Config = Required<Omit<IA3Config, keyof PeftConfig>> & PeftConfig & { peftType: 'IA3' };

const IA3_TARGETS: Record<string, string[]> = { gpt2: ['c_attn', 'mlp.c_proj'], llama: ['k_proj', 'v_proj', 'down_proj'], mistral: ['k_proj', 'v_proj', 'down_proj'], t5: ['k', 'v', 'wo'], bert: ['key', 'value', 'output.dense'], roberta: ['key', 'value', 'output.dense'] };
const IA3_FEEDFORWARD: Record<string, string[]> = { gpt2: ['mlp.c_proj'], llama: ['down_proj'], mistral: ['down_proj'], t5: ['wo'], bert: ['output.dense'], roberta: ['output.dense'] };

/** Fills defaults and validates (feed-forward modules must be among the targets). */
export function resolveIA3Config(c: IA3Config, model?: Module): ResolvedIA3Config {
  rejectSnakeCase(c, 'IA3');
  checkNames('IA3', 'targetModules', c.targetModules);
  checkNames('IA3', 'excludeModules', c.excludeModules);
  checkNames('IA3', 'feedforwardModules', c.feedforwardModules);
  for (const key of ['fanInFanOut', 'initIa3Weights'] as const) {
    if (c[key] !== undefined && typeof c[key] !== 'boolean') configError('IA3', `${key} must be true or false, got ${showValue(c[key])}`, key);
  }
  const type = model ? modelTypeOf(model) : undefined;
  const targetModules = c.targetModules ?? (type ? IA3_TARGETS[type] : undefined);
  if (!targetModules) configError('IA3', `targetModules is required: no default targets for model type '${type ?? 'unknown'}'`, 'targetModules');
  const feedforwardModules = c.feedforwardModules ?? (type && c.targetModules === undefined ? IA3_FEEDFORWARD[type] : undefined) ?? [];
  if (Array.isArray(targetModules) && Array.isArray(feedforwardModules)) {
    const bad = feedforwardModules.filter((f) => !targetModules.includes(f));
    if (bad.length > 0) configError('IA3', `feedforwardModules must be a subset of targetModules; not targeted: ${bad.join(', ')}`, 'feedforwardModules');
  }
  return resolveCommon({
    ...c,
    peftType: 'IA3',
    targetModules,
    excludeModules: c.excludeModules ?? null,
    feedforwardModules,
    fanInFanOut: c.fanInFanOut ?? false,
    modulesToSave: c.modulesToSave ?? null,
    initIa3Weights: c.initIa3Weights ?? true,
  });
}

/** True when the module at `path` is feed-forward for `c` (suffix match, or full regex match). */
export function isFeedforward(c: ResolvedIA3Config, path: string): boolean {
  const ff = c.feedforwardModules;
  return typeof ff === 'string' ? new RegExp(`^(?:${ff})$`).test(path) : ff.some((f) => path === f || path.endsWith(`.${f}`));
}
