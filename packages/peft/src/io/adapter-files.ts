import {
  type ExpectedTensor,
  type RawTensor,
  type SourceInput,
  ConfigError,
  WeightsMismatchError,
  dtypeKind,
  inConfigFile,
  openSource,
  openTarget,
  parseConfigJson,
  parseSafetensors,
  rawToTensor,
  serializeSafetensors,
  tensorToRaw,
  weightProblems,
} from '@webpeft/nn';
import { type Tensor, assign, noGrad } from '@webpeft/tensor';
import { commonFromJson, commonToJson, configJsonText, type PeftConfig } from '../config.js';
import { ensureBuiltinMethods } from '../builtins.js';
import { getPeftMethod, registeredPeftTypes } from '../registry.js';
import { type AdapterSource, type AdapterTarget, joinPath } from './file-access.js';

/** PEFT's config file name. */
export const ADAPTER_CONFIG_NAME = 'adapter_config.json';
/** PEFT's weights file name. */
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';

/**
 * What {@link saveAdapter} reads from a model with adapters (`PeftModel`,
 * `PromptLearningModel`): configs by adapter name, checkpoint tensors by adapter name,
 * and the model's parameters (checkpoint tensors that are not parameters were computed
 * for saving and are disposed after).
 */
export interface AdapterHolder {
  /** Resolved config per adapter. */
  readonly peftConfig: ReadonlyMap<string, PeftConfig>;
  /** Adapter `name`'s tensors under PEFT's checkpoint keys. */
  adapterStateDict(name: string): Map<string, Tensor>;
  /** The model's parameters. */
  parameters(): Tensor[];
}

/** `adapter_config.json` content for `config` (PEFT's field names, method fields from the registry). */
export function adapterConfigJson(config: PeftConfig): Record<string, unknown> {
  ensureBuiltinMethods();
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
export async function saveAdapter(peft: AdapterHolder, dir: AdapterTarget | string, options: { adapterNames?: string[] } = {}): Promise<void> {
  const target = typeof dir === 'string' ? openTarget(dir) : dir;
  const names = options.adapterNames ?? [...peft.peftConfig.keys()];
  const params = new Set(peft.parameters());
  for (const name of names) {
    const config = peft.peftConfig.get(name);
    if (!config) throw new Error(`saveAdapter: no adapter '${name}'`);
    const dir = name === 'default' ? '' : name;
    const raws = new Map<string, RawTensor>();
    const sd = noGrad(() => peft.adapterStateDict(name));
    try {
      for (const [key, t] of [...sd].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) raws.set(key, await tensorToRaw(t, 'F32'));
    } finally {
      // Prompt learning computes its saved tensor; tuners hand out live parameters.
      for (const t of sd.values()) if (!params.has(t)) t.dispose();
    }
    await target.writeBytes(joinPath(dir, ADAPTER_WEIGHTS_NAME), serializeSafetensors(raws, { format: 'pt' }));
    // PEFT's save_pretrained always writes inference_mode true (loading decides trainability).
    await target.writeText(joinPath(dir, ADAPTER_CONFIG_NAME), configJsonText({ ...adapterConfigJson(config), inference_mode: true }));
  }
}

/**
 * Reads and parses `adapter_config.json` of `subfolder` into a config (method fields via
 * the registry). Invalid JSON, a missing or unknown `peft_type` and every field of the
 * wrong type or range throw a `ConfigError` naming the file and the field; unknown keys
 * are ignored, as PEFT ignores them.
 */
export async function readAdapterConfig(input: AdapterSource | SourceInput, subfolder = ''): Promise<PeftConfig> {
  ensureBuiltinMethods();
  const source = asSource(input);
  const file = joinPath(subfolder, ADAPTER_CONFIG_NAME);
  if (!(await source.has(file))) throw new Error(`loadAdapter: ${source.name} has no ${file}`);
  const where = adapterConfigPath(source, subfolder);
  const json = parseConfigJson(await source.readText(file), where);
  return inConfigFile(where, () => {
    const common = commonFromJson(json);
    if (!registeredPeftTypes().includes(common.peftType)) {
      throw new ConfigError(`'peft_type' ${JSON.stringify(common.peftType)} is not a registered method (known: ${registeredPeftTypes().join(', ')})`, undefined, 'peft_type');
    }
    const method = getPeftMethod(common.peftType);
    return { ...method.configFromJson(json), ...common };
  });
}

/** `source/subfolder/adapter_config.json`: how errors name the config file. */
export function adapterConfigPath(source: { readonly name: string }, subfolder: string): string {
  return `${source.name}/${joinPath(subfolder, ADAPTER_CONFIG_NAME)}`;
}

/** An adapter weights file as read: its tensors (undecoded, from the header) and its name for errors. */
export interface AdapterWeightsFile {
  /** `source/subfolder/adapter_model.safetensors`. */
  file: string;
  tensors: Map<string, RawTensor>;
}

/** Reads and parses `subfolder/adapter_model.safetensors` (a malformed file throws a `SafetensorsError` naming it); allocates no tensor. */
export async function readAdapterWeights(source: AdapterSource, subfolder: string): Promise<AdapterWeightsFile> {
  const file = joinPath(subfolder, ADAPTER_WEIGHTS_NAME);
  if (!(await source.has(file))) throw new Error(`loadAdapter: ${source.name} has no ${file}`);
  const where = `${source.name}/${file}`;
  return { file: where, tensors: parseSafetensors(await source.readBytes(file), where).tensors };
}

/** What each checkpoint key of `own` must be in a weights file (its shape, a float dtype for float tensors). */
export function expectedTensors(own: ReadonlyMap<string, Tensor>): Map<string, ExpectedTensor> {
  return new Map([...own].map(([k, t]) => [k, { shape: [...t.shape], kind: dtypeKind(t.dtype) }]));
}

/** Throws a `WeightsMismatchError` listing every missing, unexpected, mis-shaped or wrongly typed key of `weights` against `expected`. */
export function checkAdapterWeights(expected: ReadonlyMap<string, ExpectedTensor>, weights: AdapterWeightsFile): void {
  const problems = weightProblems(expected, weights.tensors);
  if (problems.length > 0) throw new WeightsMismatchError('loadAdapter', weights.file, problems);
}

/**
 * Copies checked weights into `own` (checkpoint key -> live tensor). Every tensor is
 * decoded first (f16/bf16 become f32) and only then are all assigned, so a failure
 * while decoding changes nothing and frees what it made.
 */
export function copyAdapterWeights(own: ReadonlyMap<string, Tensor>, weights: AdapterWeightsFile): void {
  const decoded = new Map<Tensor, Tensor>();
  try {
    for (const [key, t] of own) decoded.set(t, rawToTensor(weights.tensors.get(key) as RawTensor, { backend: t.backend.name, key }));
    noGrad(() => {
      for (const [t, value] of decoded) assign(t, value);
    });
  } finally {
    for (const value of decoded.values()) value.dispose();
  }
}
/** Options of `loadAdapter` / `loadPeftModel` / `loadPromptLearningModel`. */
export interface LoadAdapterOptions {
  /** Folder inside the source holding the files (default: the root). */
  subfolder?: string;
  /** Train the loaded adapter (default false: inference mode, as PEFT's `from_pretrained`). */
  isTrainable?: boolean;
}

/**
 * Copies the tensors of `subfolder/adapter_model.safetensors` into `own` (checkpoint
 * key -> live tensor) in place. Throws a `WeightsMismatchError` listing every missing,
 * unexpected, mis-shaped or wrongly typed key at once, before anything is copied.
 */
export async function loadAdapterWeights(own: ReadonlyMap<string, Tensor>, source: AdapterSource, subfolder: string): Promise<void> {
  const weights = await readAdapterWeights(source, subfolder);
  checkAdapterWeights(expectedTensors(own), weights);
  copyAdapterWeights(own, weights);
}

/** A source object as is; a path, URL, `File[]` or file record through `openSource`. */
export function asSource(input: AdapterSource | SourceInput): AdapterSource {
  const s = input as Partial<AdapterSource>;
  return typeof s === 'object' && s !== null && typeof s.readBytes === 'function' && typeof s.has === 'function' ? (input as AdapterSource) : openSource(input as SourceInput);
}
