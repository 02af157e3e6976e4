/**
 * `--merge-and-export DIR`: after training, the adapter is merged into the base weights
 * and the model written as a Hugging Face checkpoint folder (`savePretrained`), which
 * transformers' `AutoModelForCausalLM.from_pretrained(DIR)` loads.
 */
import { type CausalLM, Linear, type ModelSource, type RawConfig, savePretrained } from '@webpeft/nn';
import type { PeftModel } from '@webpeft/peft';
import { add, noGrad } from '@webpeft/tensor';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { type Method, OptionError } from './options.js';

/** Methods whose adapters fold into the base weights (prompt-learning methods have nothing to fold). */
export const MERGEABLE_METHODS: readonly Method[] = ['full', 'lora', 'qlora', 'dora', 'ia3'];

/**
 * Checks, before any model is loaded, that `method` can be merged and that `dir` can be
 * written (absent or empty), so a long run never ends in a refusal.
 */
export function checkMergeAndExport(method: string, dir: string): void {
  if (!(MERGEABLE_METHODS as readonly string[]).includes(method)) {
    throw new OptionError(`--merge-and-export: method '${method}' cannot be merged into the base weights (mergeable: ${MERGEABLE_METHODS.join(', ')})`);
  }
  if (existsSync(dir) && (!statSync(dir).isDirectory() || readdirSync(dir).length > 0)) {
    throw new OptionError(`--merge-and-export: '${dir}' exists and is not an empty directory; choose a new folder`);
  }
}

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
