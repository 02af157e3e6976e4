/**
 * The tensors of a causal LM in its Hugging Face checkpoint layout, for `savePretrained`.
 * A model may have changed since it was built: `mergeAndUnload` puts plain `Linear`s
 * (`[out, in]`) where GPT-2 had `Conv1D`s (`[in, out]`), a quantized base is a
 * `Linear4bit`. A reference model built from the config on the meta backend (shapes only)
 * says which layout every key must have; each linear-like layer is written through
 * `dequantizedWeight()` (`[out, in]`), transposed back where the reference has a `Conv1D`.
 */
import { type Tensor, transpose } from '@webpeft/tensor';
import { Conv1D, Linear } from '../layers/linear.js';
import { type LinearLike, isLinearLike } from '../linear-like.js';
import type { Module } from '../module.js';
import { checkpointLayout } from './auto.js';
import type { CausalLM } from './causal-lm.js';

/** What {@link exportWeights} returns; dispose `owned` once written. */
export interface ExportedWeights {
  /** Checkpoint key -> tensor, in the reference's key order. */
  tensors: Map<string, Tensor>;
  /** Tensors made here (dequantized or transposed weights), to dispose after writing. */
  owned: Tensor[];
  /** True when the config ties `lm_head` to the embedding but this model's head has its own weight. */
  untied: boolean;
  /** Checkpoint key prefix (`<layer>`) -> layer, for the layers whose weight `keepStored` kept out of `tensors`. */
  stored: Map<string, LinearLike>;
}

/**
 * Collects `model`'s tensors under the keys and layouts of `reference` (the same config,
 * built fresh, e.g. on the meta backend). A tied `lm_head.weight` is left out, as
 * transformers writes it. Every missing module, adapter wrapper and shape mismatch is
 * reported in one error, before any tensor is made. The weight of a layer for which
 * `keepStored` answers true is left out of `tensors` (listed in `stored`, to be written
 * in its stored form, e.g. 4-bit codes); its bias is exported as usual.
 */
export function exportWeights(model: CausalLM, reference: CausalLM, keepStored?: (layer: LinearLike) => boolean): ExportedWeights {
  const tied = checkpointLayout(reference).tied;
  const head = model.getSubmodule('lm_head');
  const untied = tied && !(head instanceof Linear && head.weight === model.getInputEmbeddings().weight);
  const own = model.stateDict();
  const plan: [string, () => Tensor | null, boolean][] = [];
  const stored = new Map<string, LinearLike>();
  const problems: string[] = [];
  for (const [key, ref] of reference.stateDict()) {
    if (tied && !untied && key === 'lm_head.weight') continue;
    const dot = key.lastIndexOf('.');
    const path = key.slice(0, dot);
    const leaf = key.slice(dot + 1);
    const refModule = reference.getSubmodule(path);
    let ours: Module;
    try {
      ours = model.getSubmodule(path);
    } catch {
      problems.push(`  missing module: ${path}`);
      continue;
    }
    if (isLinearLike(refModule) && (leaf === 'weight' || leaf === 'bias')) {
      if (!isLinearLike(ours) || ours.namedChildren().length > 0) {
        problems.push(`  ${path}: a ${ours.constructor.name} (an adapter wrapper?), not a linear layer: merge and unload adapters first (PeftModel.mergeAndUnload)`);
        continue;
      }
      const lin = ours;
      if (leaf === 'bias') {
        if (!lin.bias) problems.push(`  missing: ${key} (the layer has no bias)`);
        else plan.push([key, () => lin.bias, false]);
      } else if (keepStored?.(lin)) {
        stored.set(path, lin);
      } else if (refModule instanceof Conv1D) {
        plan.push(lin instanceof Conv1D ? [key, () => lin.weight, false] : [key, () => transposed(lin.dequantizedWeight()), true]);
      } else {
        plan.push(lin instanceof Linear ? [key, () => lin.weight, false] : [key, () => lin.dequantizedWeight(), true]);
      }
      const [rows, cols] = refModule instanceof Conv1D ? [lin.inFeatures, lin.outFeatures] : [lin.outFeatures, lin.inFeatures];
      if (leaf === 'weight' && (ref.shape[0] !== rows || ref.shape[1] !== cols)) problems.push(`  shape mismatch: ${key}: model [${rows}, ${cols}], config [${ref.shape.join(', ')}]`);
      continue;
    }
    const t = own.get(key);
    if (!t) problems.push(`  missing: ${key}`);
    else if (t.rank !== ref.rank || t.shape.some((d, i) => d !== ref.shape[i])) problems.push(`  shape mismatch: ${key}: model [${t.shape.join(', ')}], config [${ref.shape.join(', ')}]`);
    else plan.push([key, () => t, false]);
  }
  if (problems.length > 0) throw new Error(`savePretrained: the model does not match its config.json, ${problems.length} problem(s):\n${problems.join('\n')}`);
  const tensors = new Map<string, Tensor>();
  const owned: Tensor[] = [];
  try {
    for (const [key, make, isOwned] of plan) {
      const t = make()!;
      tensors.set(key, t);
      if (isOwned) owned.push(t);
    }
  } catch (e) {
    for (const t of owned) t.dispose();
    throw e;
  }
  return { tensors, owned, untied, stored };
}

function transposed(w: Tensor): Tensor {
  const t = transpose(w);
  w.dispose();
  return t;
}
