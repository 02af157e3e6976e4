import { type ExpectedTensor, type Module, type SourceInput, inConfigFile } from '@webpeft/nn';
import { asPromptable, isPromptLearning } from '../get-peft-model.js';
import { PeftModel } from '../peft-model.js';
import { PromptLearningModel } from '../prompt/prompt-model.js';
import { getPromptLearningMethod, getTunerMethod } from '../registry.js';
import { type LoadAdapterOptions, adapterConfigPath, asSource, checkAdapterWeights, copyAdapterWeights, expectedTensors, readAdapterConfig, readAdapterWeights } from './adapter-files.js';
import { planOnMeta } from '../tuners/backend-of.js';
import type { AdapterSource } from './file-access.js';
import { initLoraFromBase } from '../tuners/lora/base-init.js';
import { isBaseRewritingInit } from '../tuners/lora/config.js';

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
 * `source` (named `adapterName`, default `'default'`). The config and every tensor's
 * shape and dtype are checked against the weight file before anything is injected or
 * allocated (an adapter config with `r: 1e7` and a small file fails at once); on any
 * error `model` is exactly as before.
 * @example const peft = await loadPeftModel(model, memoryFiles(files));
 */
export async function loadPeftModel(model: Module, input: AdapterSource | SourceInput, options: LoadAdapterOptions & { adapterName?: string } = {}): Promise<PeftModel> {
  const source = asSource(input);
  const subfolder = options.subfolder ?? '';
  const config = await readAdapterConfig(source, subfolder);
  getTunerMethod(config.peftType, 'loadPeftModel');
  const weights = await readAdapterWeights(source, subfolder);
  const name = options.adapterName ?? 'default';
  // The method's own checks (targets not found, option conflicts) blame the config file.
  const peft = inConfigFile(adapterConfigPath(source, subfolder), () => new PeftModel(model, { ...config, inferenceMode: !(options.isTrainable ?? false) }, name, weights));
  // A PiSSA / LoftQ adapter's A and B belong to the rewritten base: rebuild it from the original, as PEFT does.
  if (isBaseRewritingInit((config as { initLoraWeights?: unknown }).initLoraWeights)) await initLoraFromBase(peft, { adapterName: name, keepAdapterWeights: true });
  return peft;
}

/**
 * Loads a PEFT prompt-learning adapter (`prompt_embeddings`) onto `model`, for any
 * registered prompt-learning method. As in PEFT, a prefix-tuning adapter saved with
 * `prefix_projection` holds the projected prefixes, so it loads for inference only.
 * The encoder's shape is checked against the weight file before it is allocated (it
 * is first built on the `meta` backend); on any error `model` is exactly as before
 * (its parameters' trainability included).
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
  const weights = await readAdapterWeights(source, subfolder);
  const promptable = asPromptable(model, read.peftType);
  // The wrapper freezes the model: remember its trainability to restore on failure.
  const flags = model.parameters().map((p) => [p, p.requiresGrad] as const);
  const restore = () => flags.forEach(([p, g]) => (p.requiresGrad = g));
  const plan = (): Map<string, ExpectedTensor> => {
    let planned: PromptLearningModel | undefined;
    try {
      planned = new PromptLearningModel(promptable, build, name);
      return expectedTensors(new Map([['prompt_embeddings', planned.encoder(name).embedding.weight]]));
    } finally {
      planned?.prompt_encoder.get(name)?.dispose();
      restore();
    }
  };
  const expected = inConfigFile(adapterConfigPath(source, subfolder), () => planOnMeta(plan));
  checkAdapterWeights(expected, weights);
  let peft: PromptLearningModel | undefined;
  try {
    peft = new PromptLearningModel(promptable, build, name);
    peft.peftConfig.set(name, config);
    copyAdapterWeights(new Map([['prompt_embeddings', peft.encoder(name).embedding.weight]]), weights);
    peft.setAdapter(name);
    return peft;
  } catch (e) {
    peft?.prompt_encoder.get(name)?.dispose();
    restore();
    throw e;
  }
}
