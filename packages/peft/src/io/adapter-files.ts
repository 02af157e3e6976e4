import { type RawTensor, type SourceInput, openSource, openTarget, parseSafetensors, rawToTensor, serializeSafetensors, tensorToRaw } from '@webpeft/nn';
import { type Tensor, assign, noGrad } from '@webpeft/tensor';
import { commonFromJson, commonToJson, configJsonText, type PeftConfig } from '../config.js';
import { ensureBuiltinMethods } from '../builtins.js';
import { getPeftMethod } from '../registry.js';
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

/** Reads and parses `adapter_config.json` of `subfolder` into a config (method fields via the registry). */
export async function readAdapterConfig(input: AdapterSource | SourceInput, subfolder = ''): Promise<PeftConfig> {
  ensureBuiltinMethods();
  const source = asSource(input);
  const file = joinPath(subfolder, ADAPTER_CONFIG_NAME);
  if (!(await source.has(file))) throw new Error(`loadAdapter: ${source.name} has no ${file}`);
  const json = JSON.parse(await source.readText(file)) as Record<string, unknown>;
  const common = commonFromJson(json);
  const method = getPeftMethod(common.peftType);
  return { ...method.configFromJson(json), ...common };
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
 * key -> live tensor) in place. Throws listing every missing, unexpected or mis-shaped
 * key at once, before anything is copied.
 */
export async function loadAdapterWeights(own: ReadonlyMap<string, Tensor>, source: AdapterSource, subfolder: string): Promise<void> {
  const file = joinPath(subfolder, ADAPTER_WEIGHTS_NAME);
  if (!(await source.has(file))) throw new Error(`loadAdapter: ${source.name} has no ${file}`);
  const { tensors } = parseSafetensors(await source.readBytes(file), `${source.name}/${file}`);
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
    const raw = tensors.get(key) as RawTensor;
    // f16/bf16 adapters decode to f32, the dtype of our adapter weights.
    const loaded = rawToTensor(raw, { backend: t.backend.name, key });
    try {
      noGrad(() => assign(t, loaded));
    } finally {
      loaded.dispose();
    }
  }
}

/** A source object as is; a path, URL, `File[]` or file record through `openSource`. */
export function asSource(input: AdapterSource | SourceInput): AdapterSource {
  const s = input as Partial<AdapterSource>;
  return typeof s === 'object' && s !== null && typeof s.readBytes === 'function' && typeof s.has === 'function' ? (input as AdapterSource) : openSource(input as SourceInput);
}
