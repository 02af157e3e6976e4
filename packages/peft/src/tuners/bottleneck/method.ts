import type { TunerMethod } from '../../registry.js';
import { layerIndex, matchesTarget } from '../target-match.js';
import { TunerLayer } from '../tuner-layer.js';
import { type ResolvedBottleneckConfig, bottleneckConfigFromJson, bottleneckConfigToJson, resolveBottleneckConfig } from './config.js';
import { BottleneckLayer } from './layer.js';

/** The sublayer names an adapter goes after, for `c`'s placement. */
function sublayerNames(c: ResolvedBottleneckConfig): string[] {
  return [...(c.mhAdapter ? c.attentionModules : []), ...(c.outputAdapter ? c.feedforwardModules : [])];
}

/**
 * Bottleneck adapters (Houlsby, Pfeiffer, parallel): wraps the attention and/or
 * feed-forward sublayer of every decoder layer not in `leaveOut` in a {@link BottleneckLayer}.
 * Any base works (f32, 4-bit `Linear4bit` linears inside the sublayer): the adapter only
 * reads the sublayer's input and output. Cannot be merged.
 */
export const bottleneckMethod: TunerMethod<ResolvedBottleneckConfig> = {
  peftType: 'BOTTLENECK',
  resolveConfig: (c, model) => resolveBottleneckConfig(c, model),
  configToJson: bottleneckConfigToJson,
  configFromJson: (j) => bottleneckConfigFromJson(j) as ResolvedBottleneckConfig,
  isTarget(path, module, c) {
    if (!matchesTarget({ targetModules: sublayerNames(c) }, path)) return false;
    const index = layerIndex(path);
    if (index !== null && c.leaveOut.includes(index)) return false;
    if (module instanceof BottleneckLayer) return true;
    if (module instanceof TunerLayer) throw new Error(`BOTTLENECK: '${path}' is already wrapped by ${module.peftType}`);
    return true;
  },
  createLayer: (base) => new BottleneckLayer(base),
};
