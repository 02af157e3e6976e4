import type { BottleneckConfig } from '@webpeft/peft';

/**
 * The CLI's bottleneck-adapter methods, with AdapterHub's defaults for each placement:
 * `adapter-houlsby` (after attention and feed-forward, swish, reduction 16; Houlsby et
 * al. 2019), `adapter-pfeiffer` (after the feed-forward block only, relu; Pfeiffer et
 * al. 2020), `adapter-parallel` (beside the feed-forward block, relu, reduction 2,
 * scaling 4; He et al. 2021).
 */
export const BOTTLENECK_METHODS = {
  'adapter-houlsby': { peftType: 'BOTTLENECK' },
  'adapter-pfeiffer': { peftType: 'BOTTLENECK', mhAdapter: false, nonLinearity: 'relu' },
  'adapter-parallel': { peftType: 'BOTTLENECK', isParallel: true, mhAdapter: false, nonLinearity: 'relu' },
} as const satisfies Record<string, BottleneckConfig>;

/** A CLI bottleneck method name. */
export type BottleneckMethod = keyof typeof BOTTLENECK_METHODS;

/** True when `method` is one of {@link BOTTLENECK_METHODS}. */
export function isBottleneckMethod(method: string): method is BottleneckMethod {
  return method in BOTTLENECK_METHODS;
}
