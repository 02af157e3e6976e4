import type { Module, SourceInput } from '@webpeft/nn';
import { asPromptable, isPromptLearning } from '../get-peft-model.js';
import { PeftModel } from '../peft-model.js';
import { PromptLearningModel } from '../prompt/prompt-model.js';
import { getPromptLearningMethod, getTunerMethod } from '../registry.js';
import { type LoadAdapterOptions, asSource, loadAdapterWeights, readAdapterConfig } from './adapter-files.js';
import type { AdapterSource } from './file-access.js';

/**
 * Adds adapter `adapterName` to `peft` from PEFT-format files and copies its weights
 * in (same as `peft.loadAdapter`). Throws listing every missing, unexpected or
 * mis-shaped key at once.
 */
export function loadAdapter(peft: PeftModel, input: AdapterSource | SourceInput, adapterName: string, options: LoadAdapterOptions = {}): Promise<void> {
  return peft.loadAdapter(input, adapterName, options);
}

/**
 * PEFT's `PeftModel.from_pretrained`: wraps `model` with the adapter stored in
 * `source` (named `adapterName`, default `'default'`).
 * @example const peft = await loadPeftModel(model, memoryFiles(files));
 */
export async function loadPeftModel(model: Module, input: AdapterSource | SourceInput, options: LoadAdapterOptions & { adapterName?: string } = {}): Promise<PeftModel> {
  const source = asSource(input);
  const subfolder = options.subfolder ?? '';
  const config = await readAdapterConfig(source, subfolder);
  getTunerMethod(config.peftType, 'loadPeftModel');
  const name = options.adapterName ?? 'default';
  const peft = new PeftModel(model, { ...config, inferenceMode: !(options.isTrainable ?? false) }, name);
  await peft.loadAdapterWeights(source, name, subfolder);
  return peft;
}

/**
 * Loads a PEFT prompt-learning adapter (`prompt_embeddings`) onto `model`, for any
 * registered prompt-learning method. As in PEFT, a prefix-tuning adapter saved with
 * `prefix_projection` holds the projected prefixes, so it loads for inference only.
 */
export async function loadPromptLearningModel(model: Module, input: AdapterSource | SourceInput, options: LoadAdapterOptions & { adapterName?: string } = {}): Promise<PromptLearningModel> {
  const source = asSource(input);
  const subfolder = options.subfolder ?? '';
  const read = await readAdapterConfig(source, subfolder);
  if (!isPromptLearning(read)) throw new Error(`loadPromptLearningModel: ${read.peftType} is not a prompt-learning method; use loadPeftModel`);
  const method = getPromptLearningMethod(read.peftType, 'loadPromptLearningModel');
  const trainable = options.isTrainable ?? false;
  const config = { ...read, inferenceMode: !trainable };
  const build = method.configForLoading ? { ...config, ...method.configForLoading(config, trainable) } : config;
  const name = options.adapterName ?? 'default';
  const peft = new PromptLearningModel(asPromptable(model, read.peftType), build, name);
  peft.peftConfig.set(name, config);
  await loadAdapterWeights(new Map([['prompt_embeddings', peft.encoder(name).embedding.weight]]), source, subfolder);
  peft.setAdapter(name);
  return peft;
}
