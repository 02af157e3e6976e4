import { Linear, type Module } from '@webpeft/nn';
import { assign, noGrad, tidy } from '@webpeft/tensor';
import type { PeftConfig } from '../../config.js';
import type { MergeAndUnloadOptions } from '../../registry.js';
import type { TunerLayer } from '../tuner-layer.js';
import { LoraLinear } from './linear.js';

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

/** A plain f32 `Linear` holding `layer`'s base weight with `names` merged in (and its bias). */
function linearFromMerged(layer: LoraLinear, names: string[]): Linear {
  const base = layer.base;
  const weight = layer.mergedWeight(names);
  const lin = new Linear(base.inFeatures, base.outFeatures, { bias: base.bias !== null, backend: weight.backend.name });
  noGrad(() =>
    tidy(() => {
      assign(lin.weight, weight);
      if (base.bias && lin.bias) assign(lin.bias, base.bias);
    }),
  );
  weight.dispose();
  lin.training = layer.training;
  return lin;
}
