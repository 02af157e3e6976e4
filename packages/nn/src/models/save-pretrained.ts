/**
 * Writes a causal LM as a Hugging Face checkpoint folder that transformers'
 * `AutoModelForCausalLM.from_pretrained` loads: `config.json`, `model.safetensors`
 * (`{"format": "pt"}` metadata), and the tokenizer and generation files of the source.
 */
import { FILE_SYSTEM_AVAILABLE, listDirectory, removePath, renamePath, writeFileBytes } from '#fs-source';
import { type RawTensor, type ModelSource, type WritableTarget, serializeSafetensors, tensorToRaw } from '../io/index.js';
import { OPTIONAL_MODEL_FILES } from '../io/remote-source.js';
import { causalLMFromConfig } from './auto.js';
import type { CausalLM } from './causal-lm.js';
import type { LinearLike } from '../linear-like.js';
import type { RawConfig } from './config-utils.js';
import { exportWeights } from './export-weights.js';

/** Weight dtypes {@link savePretrained} writes, with the `config.json` `dtype` name of each. */
export const SAVE_DTYPES = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' } as const;
/** A weight dtype of {@link savePretrained}. */
export type SaveDType = keyof typeof SAVE_DTYPES;

/** Options of {@link savePretrained}. */
export interface SavePretrainedOptions {
  /**
   * The `config.json` the model was built from (`fromPretrained`'s `rawConfig`). Written
   * back unchanged but for `dtype` (and `tie_word_embeddings` where a merge untied the head);
   * it must describe the model (checked against every weight's shape).
   */
  config: RawConfig;
  /** Weight dtype in the file (default `f32`). */
  dtype?: SaveDType;
  /** Copy `generation_config.json` and the tokenizer files present here (`fromPretrained`'s `source`). */
  copyFrom?: ModelSource;
  /** Replace a non-empty directory (default false: refuse). Node directories only. */
  overwrite?: boolean;
  /**
   * Largest shard in bytes (default 2 GiB): larger weights are split into
   * `model-0000i-of-0000n.safetensors` plus `model.safetensors.index.json`, as
   * transformers' `max_shard_size` does (a tensor larger than the limit gets a shard of its own).
   */
  maxShardBytes?: number;
  /**
   * Write quantized layers in a stored quantized layout instead of dequantizing them
   * (`@webpeft/quant`'s `bitsandbytesLayout()`: bitsandbytes' 4-bit keys plus a
   * `quantization_config` in `config.json`, as transformers saves a 4-bit model).
   * Default: every layer is written in full precision (`dtype`).
   */
  quantized?: QuantizedLayout;
}

/** How {@link savePretrained} writes quantized layers in their stored form (implemented by a quantization package). */
export interface QuantizedLayout {
  /** Whether `layer` is written in the stored form (the others are written in full precision). */
  stores(layer: LinearLike): boolean;
  /** The stored tensors of one such layer, keyed relative to it (`weight`, `weight.absmax`, ...). */
  storedTensors(layer: LinearLike): Promise<Map<string, RawTensor>>;
  /**
   * `config.json`'s `quantization_config` for `model`; `layers` are the checkpoint paths
   * of the stored layers, `previous` the config's own `quantization_config` (if any).
   * Throws when the layers cannot be described by one config.
   */
  quantizationConfig(model: CausalLM, layers: ReadonlyMap<string, LinearLike>, previous: unknown): Record<string, unknown>;
}

/** What {@link savePretrained} wrote. */
export interface SavedPretrained {
  /** File names written: `config.json`, the weights (`model.safetensors`, or the index and shards), copied files. */
  files: string[];
  /** Bytes of the weights (all shards). */
  weightBytes: number;
}

/**
 * Saves `model` as a Hugging Face checkpoint folder: `config.json`, `model.safetensors` (or
 * shards and an index above `maxShardBytes`)
 * (`{"format": "pt"}`; GPT-2's `Conv1D` weights `[in, out]` even where a merge left
 * `Linear`s; a quantized layer dequantized; a tied `lm_head.weight` written once, under
 * the embedding, as transformers does), and the `generation_config.json` and tokenizer
 * files of `copyFrom`.
 *
 * Everything is checked and serialized before the first write. A Node directory is
 * written into a temporary sibling and renamed into place, so a failure leaves no half
 * folder; an existing non-empty directory is refused unless `overwrite`. A
 * `WritableTarget` (e.g. `memoryTarget()` in a browser) receives the files in turn.
 * @example
 * const { model, rawConfig, source } = await fromPretrained('./SmolLM-135M');
 * const merged = await peft.mergeAndUnload({ dequantize: true });
 * await savePretrained(merged as CausalLM, './merged', { config: rawConfig, copyFrom: source, dtype: 'bf16' });
 */
export async function savePretrained(model: CausalLM, target: string | WritableTarget, options: SavePretrainedOptions): Promise<SavedPretrained> {
  const dtype = options.dtype ?? 'f32';
  if (!(dtype in SAVE_DTYPES)) throw new Error(`savePretrained: dtype must be one of ${Object.keys(SAVE_DTYPES).join(', ')}; got '${String(dtype)}'`);
  if (typeof target === 'string') await checkDestination(target, options.overwrite ?? false);
  const files = await serializeCheckpoint(model, options, dtype);
  if (typeof target === 'string') await writeDirectory(target, files);
  else for (const [name, bytes] of files) await target.writeBytes(name, bytes);
  let weightBytes = 0;
  for (const [name, bytes] of files) if (name.endsWith('.safetensors')) weightBytes += bytes.byteLength;
  return { files: [...files.keys()], weightBytes };
}

/** Every file of the folder, in memory (config, weights, copied files). */
async function serializeCheckpoint(model: CausalLM, options: SavePretrainedOptions, dtype: SaveDType): Promise<Map<string, Uint8Array>> {
  const config: RawConfig = { ...options.config };
  const reference = causalLMFromConfig(config, { backend: 'meta' });
  let raw: Map<string, RawTensor>;
  let untied: boolean;
  try {
    if (reference.config.model_type !== model.config.model_type) {
      throw new Error(`savePretrained: config.json is a '${reference.config.model_type}' model, the model a '${model.config.model_type}'`);
    }
    const layout = options.quantized;
    const exported = exportWeights(model, reference, layout && ((layer) => layout.stores(layer)));
    untied = exported.untied;
    raw = new Map();
    try {
      const st = dtype === 'f32' ? 'F32' : dtype === 'f16' ? 'F16' : 'BF16';
      for (const [key, t] of exported.tensors) raw.set(key, await tensorToRaw(t, t.dtype === 'i32' || t.dtype === 'u32' ? undefined : st));
    } finally {
      for (const t of exported.owned) t.dispose();
    }
    if (layout && exported.stored.size > 0) {
      config.quantization_config = layout.quantizationConfig(model, exported.stored, config.quantization_config);
      for (const [path, layer] of exported.stored) for (const [rel, t] of await layout.storedTensors(layer)) raw.set(`${path}.${rel}`, t);
    } else if ('quantization_config' in config) {
      // Written in full precision: the file's weights are not quantized any more.
      delete config.quantization_config;
    }
  } finally {
    reference.dispose();
  }
  config.dtype = SAVE_DTYPES[dtype];
  if ('torch_dtype' in config) config.torch_dtype = SAVE_DTYPES[dtype];
  // A merge into a tied head (LoRA on lm_head) gives it its own weight: both are written, untied.
  if (untied) config.tie_word_embeddings = false;
  const enc = new TextEncoder();
  const files = new Map<string, Uint8Array>([['config.json', enc.encode(`${JSON.stringify(config, null, 2)}\n`)]]);
  for (const [name, bytes] of weightFiles(raw, options.maxShardBytes ?? 2 ** 31)) files.set(name, bytes);
  const from = options.copyFrom;
  if (from) for (const file of OPTIONAL_MODEL_FILES) if (await from.has(file)) files.set(file, await from.readBytes(file));
  return files;
}

/** One `model.safetensors`, or shards and their index when the weights exceed `maxShardBytes`. */
function weightFiles(raw: Map<string, RawTensor>, maxShardBytes: number): [string, Uint8Array][] {
  if (!(maxShardBytes > 0)) throw new Error(`savePretrained: maxShardBytes must be a positive number of bytes; got ${maxShardBytes}`);
  const groups: Map<string, RawTensor>[] = [new Map<string, RawTensor>()];
  let size = 0;
  let total = 0;
  for (const [key, t] of raw) {
    const bytes = t.data.byteLength;
    total += bytes;
    if (size > 0 && size + bytes > maxShardBytes) {
      groups.push(new Map<string, RawTensor>());
      size = 0;
    }
    groups[groups.length - 1].set(key, t);
    size += bytes;
  }
  if (groups.length === 1) return [['model.safetensors', serializeSafetensors(raw, { format: 'pt' })]];
  const pad = (i: number) => String(i).padStart(5, '0');
  const out: [string, Uint8Array][] = [];
  const weightMap: Record<string, string> = {};
  groups.forEach((group, i) => {
    const name = `model-${pad(i + 1)}-of-${pad(groups.length)}.safetensors`;
    out.push([name, serializeSafetensors(group, { format: 'pt' })]);
    for (const key of group.keys()) weightMap[key] = name;
  });
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  return [['model.safetensors.index.json', new TextEncoder().encode(`${JSON.stringify(index, null, 2)}\n`)], ...out];
}

/** Refuses a non-empty directory unless `overwrite`, before anything is computed. */
async function checkDestination(dir: string, overwrite: boolean): Promise<void> {
  if (!FILE_SYSTEM_AVAILABLE) throw new Error(`savePretrained('${dir}'): local paths need Node; in a browser pass memoryTarget() and offer its files for download`);
  const entries = await listDirectory(dir).catch((e: unknown) => {
    throw new Error(`savePretrained: '${dir}' exists and is not a directory (${(e as Error).message})`);
  });
  if (entries && entries.length > 0 && !overwrite) {
    throw new Error(`savePretrained: '${dir}' exists and is not empty (${entries.slice(0, 5).join(', ')}${entries.length > 5 ? ', ...' : ''}); pass overwrite: true to replace it`);
  }
}

/** Writes `files` into a temporary sibling of `dir`, then swaps it into place. */
async function writeDirectory(dir: string, files: Map<string, Uint8Array>): Promise<void> {
  const clean = dir.replace(/[\\/]+$/, '');
  const stamp = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const tmp = `${clean}.tmp-${stamp}`;
  try {
    for (const [name, bytes] of files) await writeFileBytes(`${tmp}/${name}`, bytes);
  } catch (e) {
    await removePath(tmp);
    throw e;
  }
  const old = (await listDirectory(clean)) === null ? null : `${clean}.old-${stamp}`;
  if (old) await renamePath(clean, old);
  try {
    await renamePath(tmp, clean);
  } catch (e) {
    if (old) await renamePath(old, clean);
    await removePath(tmp);
    throw e;
  }
  if (old) await removePath(old);
}
