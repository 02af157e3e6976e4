import { type Module, type RawTensor, type SourceInput, openSource, openTarget, parseSafetensors, rawToTensor, serializeSafetensors, tensorToRaw } from '@webpeft/nn';
import { assign, noGrad } from '@webpeft/tensor';
import { commonFromJson, commonToJson, configJsonText, type PeftConfig } from '../config.js';
import { ensureBuiltinMethods } from '../builtins.js';
import { type PrefixTuningConfig, type PromptTuningConfig, isPromptLearning, promptConfigFromJson, promptConfigToJson } from '../prompt/config.js';
import { type PromptableModel, PromptLearningModel } from '../prompt/prompt-model.js';
import { PeftModel } from '../peft-model.js';
import { getPeftMethod } from '../registry.js';
import { type AdapterSource, type AdapterTarget, joinPath } from './file-access.js';

/** PEFT's file names. */
export const ADAPTER_CONFIG_NAME = 'adapter_config.json';
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';

/** `adapter_config.json` content for adapter `name` of `peft` (PEFT's field names). */
export function adapterConfigJson(config: PeftConfig): Record<string, unknown> {
  if (isPromptLearning(config)) return { ...commonToJson(config), ...promptConfigToJson(config) };
  const method = getPeftMethod(config.peftType);
  return { ...commonToJson(config), ...method.configToJson(config) };
}

/**
 * Saves adapters in Hugging Face PEFT's layout: `adapter_config.json` (sorted keys,
 * indent 2, `inference_mode` true as PEFT writes it) and `adapter_model.safetensors`
 * (F32, metadata `{"format":"pt"}`, keys
 * `base_model.model.<path>.lora_A.weight`...). The adapter named `default` goes to
 * the target's root, every other one to the subfolder of its name, as PEFT does.
 */
export async function saveAdapter(peft: PeftModel | PromptLearningModel, dir: AdapterTarget | string, options: { adapterNames?: string[] } = {}): Promise<void> {
  const target = typeof dir === 'string' ? openTarget(dir) : dir;
  const names = options.adapterNames ?? [...peft.peftConfig.keys()];
  for (const name of names) {
    const config = peft.peftConfig.get(name);
    if (!config) throw new Error(`saveAdapter: no adapter '${name}'`);
    const dir = name === 'default' ? '' : name;
    const raws = new Map<string, RawTensor>();
    const sd = peft.adapterStateDict(name);
    for (const key of [...sd.keys()].sort()) raws.set(key, await tensorToRaw(sd.get(key)!, 'F32'));
    // Prompt learning computes its saved tensor; inject methods hand out live parameters.
    if (peft instanceof PromptLearningModel) for (const t of sd.values()) t.dispose();
    await target.writeBytes(joinPath(dir, ADAPTER_WEIGHTS_NAME), serializeSafetensors(raws, { format: 'pt' }));
    // PEFT's save_pretrained always writes inference_mode true (loading decides trainability).
    await target.writeText(joinPath(dir, ADAPTER_CONFIG_NAME), configJsonText({ ...adapterConfigJson(config), inference_mode: true }));
  }
}

/** Reads and parses `adapter_config.json` of `subfolder` into a config (method fields via the registry). */
export async function readAdapterConfig(input: AdapterSource | SourceInput, subfolder = ''): Promise<PeftConfig> {
  ensureBuiltinMethods();
  const source = asSource(input);
  const file = joinPath(subfolder, ADAPTER_CONFIG_NAME);
  if (!(await source.has(file))) throw new Error(`loadAdapter: ${source.name} has no ${file}`);
  const json = JSON.parse(await source.readText(file)) as Record<string, unknown>;
  const common = commonFromJson(json);
  if (isPromptLearning(common)) return { ...promptConfigFromJson(json), ...common };
  const method = getPeftMethod(common.peftType);
  return { ...method.configFromJson(json), ...common };
}

/** Options of {@link loadAdapter} / {@link loadPeftModel}. */
export interface LoadAdapterOptions {
  /** Folder inside the source holding the files (default: the root). */
  subfolder?: string;
  /** Train the loaded adapter (default false: inference mode, as PEFT's `from_pretrained`). */
  isTrainable?: boolean;
}

/**
 * Adds adapter `adapterName` to `peft` from PEFT-format files and copies its weights
 * in. Throws listing every missing, unexpected or mis-shaped key at once.
 */
export async function loadAdapter(peft: PeftModel, input: AdapterSource | SourceInput, adapterName: string, options: LoadAdapterOptions = {}): Promise<void> {
  const source = asSource(input);
  const config = await readAdapterConfig(source, options.subfolder ?? '');
  peft.addAdapter(adapterName, { ...config, inferenceMode: !(options.isTrainable ?? false) });
  await copyWeights(peft, source, adapterName, options.subfolder ?? '');
  peft.refreshTrainable();
}

/**
 * PEFT's `PeftModel.from_pretrained`: wraps `model` with the adapter stored in
 * `source` (named `adapterName`, default `'default'`).
 * @example const peft = await loadPeftModel(model, memoryFiles(files));
 */
export async function loadPeftModel(model: Module, input: AdapterSource | SourceInput, options: LoadAdapterOptions & { adapterName?: string } = {}): Promise<PeftModel> {
  const source = asSource(input);
  const config = await readAdapterConfig(source, options.subfolder ?? '');
  if (isPromptLearning(config)) throw new Error(`loadPeftModel: ${config.peftType} adapters load with loadPromptLearningModel`);
  const name = options.adapterName ?? 'default';
  const peft = new PeftModel(model, { ...config, inferenceMode: !(options.isTrainable ?? false) }, name);
  await copyWeights(peft, source, name, options.subfolder ?? '');
  peft.refreshTrainable();
  return peft;
}

/**
 * Loads a PEFT prompt-learning adapter (`prompt_embeddings`) onto `model`. As in PEFT,
 * a prefix-tuning adapter saved with `prefix_projection` holds the projected prefixes,
 * so it loads for inference only.
 */
export async function loadPromptLearningModel(model: PromptableModel, input: AdapterSource | SourceInput, options: LoadAdapterOptions & { adapterName?: string } = {}): Promise<PromptLearningModel> {
  const source = asSource(input);
  const sub = options.subfolder ?? '';
  const config = await readAdapterConfig(source, sub);
  if (!isPromptLearning(config)) throw new Error(`loadPromptLearningModel: ${config.peftType} is not a prompt-learning method; use loadPeftModel`);
  const trainable = options.isTrainable ?? false;
  if (trainable && config.peftType === 'PREFIX_TUNING' && config.prefixProjection) {
    throw new Error('loadPromptLearningModel: a prefix_projection adapter stores the projected prefixes and cannot be loaded as trainable');
  }
  const name = options.adapterName ?? 'default';
  const final = { ...config, inferenceMode: !trainable };
  // The saved rows overwrite any init: build with RANDOM (TEXT would need the tokenizer), keep the saved config.
  const build: PromptTuningConfig | PrefixTuningConfig = final.peftType === 'PROMPT_TUNING' ? { ...final, promptTuningInit: 'RANDOM' } : final;
  const peft = new PromptLearningModel(model, build, name);
  peft.peftConfig.set(name, final);
  const file = joinPath(sub, ADAPTER_WEIGHTS_NAME);
  const { tensors } = parseSafetensors(await source.readBytes(file), `${source.name}/${file}`);
  const raw = tensors.get('prompt_embeddings');
  if (!raw) throw new Error(`loadPromptLearningModel: ${source.name}/${file} has no 'prompt_embeddings' (keys: ${[...tensors.keys()].join(', ')})`);
  const weight = peft.encoder().embedding.weight;
  if (raw.shape.join(',') !== weight.shape.join(',')) {
    throw new Error(`loadPromptLearningModel: prompt_embeddings is [${raw.shape.join(',')}], the encoder expects [${weight.shape.join(',')}]`);
  }
  const loaded = rawToTensor(raw, { backend: weight.backend.name, key: 'prompt_embeddings' });
  noGrad(() => assign(weight, loaded));
  loaded.dispose();
  return peft;
}

async function copyWeights(peft: PeftModel, source: AdapterSource, name: string, subfolder: string): Promise<void> {
  const file = joinPath(subfolder, ADAPTER_WEIGHTS_NAME);
  if (!(await source.has(file))) throw new Error(`loadAdapter: ${source.name} has no ${file}`);
  const { tensors } = parseSafetensors(await source.readBytes(file), `${source.name}/${file}`);
  const own = peft.adapterStateDict(name);
  const problems: string[] = [];
  for (const key of own.keys()) if (!tensors.has(key)) problems.push(`missing: ${key}`);
  for (const key of tensors.keys()) if (!own.has(key)) problems.push(`unexpected: ${key}`);
  for (const [key, t] of own) {
    const raw = tensors.get(key);
    if (raw && (raw.shape.length !== t.shape.length || raw.shape.some((d, i) => d !== t.shape[i]))) {
      problems.push(`shape mismatch: ${key}: model [${t.shape.join(',')}], file [${raw.shape.join(',')}]`);
    }
  }
  if (problems.length > 0) throw new Error(`loadAdapter: ${problems.length} problem(s) in ${source.name}/${file}:\n  ${problems.join('\n  ')}`);
  for (const [key, t] of own) {
    const backend = t.backend.name;
    // f16/bf16 adapters decode to f32, the dtype of our adapter weights.
    const loaded = rawToTensor(tensors.get(key)!, { backend, key });
    noGrad(() => assign(t, loaded));
    loaded.dispose();
  }
}

/** A source object as is; a path, URL, `File[]` or file record through `openSource`. */
function asSource(input: AdapterSource | SourceInput): AdapterSource {
  const s = input as Partial<AdapterSource>;
  return typeof s === 'object' && s !== null && typeof s.readBytes === 'function' && typeof s.has === 'function' ? (input as AdapterSource) : openSource(input as SourceInput);
}
