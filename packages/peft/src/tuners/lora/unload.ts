import { Linear, type Module } from '@webpeft/nn';
import { assign, noGrad, tidy } from '@webpeft/tensor';
import type { PeftConfig } from '../../config.js';
import type { MergeAndUnloadOptions } from '../../registry.js';
import type { TunerLayer } from '../tuner-layer.js';
import { LoraLinear } from './linear.js';
import { asDtype } from '../autocast.js';

/**
 * LoRA's `mergeAndUnload` per layer: with `dequantize`, a linear-like base that is not
 * a plain `Linear` (a 4-bit one) becomes an f32 `Linear` holding the merged weight, so
 * the merge keeps full precision (the replaced base is disposed); otherwise the adapters merge into the base (a 4-bit
 * base re-quantizes) and the base stays.
 */
export async function loraUnloadLayer(layer: TunerLayer<PeftConfig, string, Module, unknown>, adapterNames: string[], options: MergeAndUnloadOptions): Promise<Module> {
  if (options.dequantize && layer instanceof LoraLinear && !(layer.base instanceof Linear)) {
    await layer.unmerge();
    const lin = linearFromMerged(layer, adapterNames);
    // The quantized base leaves the model here: nothing else can reach (and free) its storage.
    layer.base.dispose();
    return lin;
  }
  if (adapterNames.length > 0) await layer.merge(adapterNames);
  if (layer instanceof LoraLinear) layer.releaseMergeState();
  return layer.base_layer;
}

/**
 * A plain `Linear` holding `layer`'s base weight with `names` merged in (and its bias):
 * f32, or f16 for an f16 model (whose bias, or else merged weight, is f16).
 */
function linearFromMerged(layer: LoraLinear, names: string[]): Linear {
  const base = layer.base;
  const weight = layer.mergedWeight(names);
  const dtype = (base.bias ?? weight).dtype === 'f16' ? 'f16' : 'f32';
  const lin = new Linear(base.inFeatures, base.outFeatures, { bias: base.bias !== null, backend: weight.backend.name, dtype });
  noGrad(() =>
    tidy(() => {
      assign(lin.weight, asDtype(weight, dtype));
      if (base.bias && lin.bias) assign(lin.bias, asDtype(base.bias, dtype));
    }),
  );
  weight.dispose();
  lin.training = layer.training;
  return lin;
}
