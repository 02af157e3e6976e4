/**
 * `--merge-and-export DIR`: after training, the adapter is merged into the base weights
 * and the model written as a Hugging Face checkpoint folder (`savePretrained`), which
 * transformers' `AutoModelForCausalLM.from_pretrained(DIR)` loads.
 */
import { type CausalLM, Linear, type ModelSource, type RawConfig, savePretrained } from '@webpeft/nn';
import type { PeftModel } from '@webpeft/peft';
import { add, noGrad } from '@webpeft/tensor';
import type { Method } from './options.js';

/**
 * Merges the trained adapter (QLoRA: into f32 `Linear`s, dequantizing the NF4 base) and
 * writes the folder; `full` writes the model as trained. Returns the bytes of the weights.
 */
export async function mergeAndExport(peft: PeftModel | null, model: CausalLM, method: Method, dir: string, files: { config: RawConfig; source: ModelSource }): Promise<number> {
  let merged = model;
  if (peft) {
    untieAdaptedHead(peft, model);
    merged = (await peft.mergeAndUnload({ dequantize: method === 'qlora' })) as CausalLM;
  }
  const saved = await savePretrained(merged, dir, { config: files.config, copyFrom: files.source });
  return saved.weightBytes;
}

/**
 * A LoRA-wrapped output head tied to the input embedding gets its own copy of the weight
 * first: merging into the shared tensor would move the embedding too, and the exported
 * model would differ from the trained one. `savePretrained` then writes both, untied.
 */
function untieAdaptedHead(peft: PeftModel, model: CausalLM): void {
  const embedding = model.getInputEmbeddings().weight;
  for (const [, layer] of peft.base_model.tunerLayers()) {
    const base = layer.base_layer;
    if (!(base instanceof Linear) || base.weight !== embedding) continue;
    const copy = noGrad(() => add(embedding, 0));
    layer.replaceSubmodule('base_layer', new Linear(base.inFeatures, base.outFeatures, { bias: false, weight: copy, backend: copy.backend.name }));
  }
}
