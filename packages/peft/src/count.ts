import { type Module, isLinearLike } from '@webpeft/nn';
import { isFloat } from '@webpeft/tensor';

/**
 * Trainable and total parameter counts as PEFT's `get_nb_trainable_parameters`:
 * tied tensors once; a packed linear weight (a non-float parameter, or a buffer reported
 * by `Module.packedParameterCount`) counts as its logical `out * in` elements, as PEFT
 * does for 4-bit weights. Works on meta-backend models.
 */
export function countParameters(model: Module): { trainable: number; all: number } {
  const logical = new Map<unknown, number>();
  for (const [, m] of model.namedModules()) {
    if (!isLinearLike(m)) continue;
    const packed = m.ownParameters().filter(([, t]) => !isFloat(t.dtype));
    if (packed.length === 0) continue;
    // All packed storage of the layer together stands for the [out, in] weight.
    packed.forEach(([, t], i) => logical.set(t, i === 0 ? m.inFeatures * m.outFeatures : 0));
  }
  let trainable = 0;
  let all = 0;
  for (const p of model.parameters()) {
    const n = logical.get(p) ?? p.size;
    all += n;
    if (p.requiresGrad) trainable += n;
  }
  // Weights a module keeps outside its parameters (a 4-bit buffer) count as their elements.
  for (const m of model.modules()) all += m.packedParameterCount();
  return { trainable, all };
}

/** PEFT's line: `trainable params: 4,194,304 || all params: 6,742,609,920 || trainable%: 0.0622`. */
export function formatTrainableParameters({ trainable, all }: { trainable: number; all: number }): string {
  const pct = all === 0 ? 0 : (100 * trainable) / all;
  return `trainable params: ${group(trainable)} || all params: ${group(all)} || trainable%: ${pct.toFixed(4)}`;
}

function group(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
