/**
 * What the page and the worker both know about the methods (no library imports, so the
 * page's bundle stays small): the bottleneck placements and their defaults, and which
 * methods put virtual tokens in front of the input.
 */
import type { BottleneckConfig } from '@webpeft/peft';
import type { MethodName } from './protocol.js';

/**
 * The bottleneck placements, as the finetune CLI's `--method adapter-*` (AdapterHub's
 * defaults per placement): Houlsby (after attention and feed-forward; Houlsby et al.
 * 2019), Pfeiffer (after the feed-forward block only; Pfeiffer et al. 2020), parallel
 * (beside the feed-forward block, scaling 4; He et al. 2021). Width and nonlinearity come
 * from the settings.
 */
export const BOTTLENECK_PLACEMENTS = {
  'adapter-houlsby': {},
  'adapter-pfeiffer': { mhAdapter: false },
  'adapter-parallel': { isParallel: true, mhAdapter: false },
} as const satisfies Record<string, Partial<BottleneckConfig>>;

/** The default reduction factor and nonlinearity the page offers per placement (AdapterHub's). */
export const BOTTLENECK_DEFAULTS: Record<keyof typeof BOTTLENECK_PLACEMENTS, { reductionFactor: number; nonLinearity: string }> = {
  'adapter-houlsby': { reductionFactor: 16, nonLinearity: 'swish' },
  'adapter-pfeiffer': { reductionFactor: 16, nonLinearity: 'relu' },
  'adapter-parallel': { reductionFactor: 2, nonLinearity: 'relu' },
};

/** True for the bottleneck adapter methods. */
export function isBottleneck(method: MethodName): method is keyof typeof BOTTLENECK_PLACEMENTS {
  return method in BOTTLENECK_PLACEMENTS;
}

/** True for the methods that put virtual tokens in front of every sequence (a prompt-learning model). */
export function isPromptMethod(method: MethodName): boolean {
  return method === 'prompt' || method === 'prefix' || method === 'p-tuning';
}
