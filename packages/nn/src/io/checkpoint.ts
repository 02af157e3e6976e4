/**
 * Hugging Face checkpoints in safetensors: one `model.safetensors`, or shards listed by
 * `model.safetensors.index.json` (`{"metadata": {...}, "weight_map": {key: shard}}`).
 */
import type { Tensor } from '@webpeft/tensor';
import { tensorToRaw } from './convert.js';
import { type RawTensor, parseSafetensors, serializeSafetensors } from './safetensors.js';
import { MissingFileError, type ModelSource, type WritableTarget } from './source.js';

/** Options of {@link loadCheckpoint}. */
export interface LoadCheckpointOptions {
  /** Single-file name; the index is `${weightsName}.index.json` (default `model.safetensors`). */
  weightsName?: string;
}

/**
 * Reads every tensor of a checkpoint, undecoded (decode with `rawToTensor`).
 *
 * Sharded checkpoints are validated: the index must be a `weight_map` of strings, every
 * shard it names must exist, every key must be in the shard the index names, and no key
 * may appear in two shards. Shards are read one at a time.
 * @example
 * const raw = await loadCheckpoint(openSource('./SmolLM-135M'));
 * const wte = rawToTensor(raw.get('model.embed_tokens.weight')!);
 */
export async function loadCheckpoint(source: ModelSource, options: LoadCheckpointOptions = {}): Promise<Map<string, RawTensor>> {
  const single = options.weightsName ?? 'model.safetensors';
  const indexFile = `${single}.index.json`;
  if (await source.has(single)) return parseSafetensors(await source.readBytes(single), `${source.name}/${single}`).tensors;
  if (!(await source.has(indexFile))) {
    const pickle = single === 'model.safetensors' && (await source.has('pytorch_model.bin'));
    throw new MissingFileError(
      source.name,
      single,
      pickle
        ? "only 'pytorch_model.bin' is present: PyTorch pickle checkpoints are not supported, convert it to safetensors (e.g. `save_pretrained(dir, safe_serialization=True)`)"
        : `nor a sharded index '${indexFile}'`,
    );
  }
  const weightMap = parseIndex(await source.readText(indexFile), `${source.name}/${indexFile}`);
  const byShard = new Map<string, string[]>();
  for (const [key, shard] of Object.entries(weightMap)) {
    const keys = byShard.get(shard) ?? [];
    keys.push(key);
    byShard.set(shard, keys);
  }
  const missing: string[] = [];
  for (const shard of byShard.keys()) if (!(await source.has(shard))) missing.push(shard);
  if (missing.length > 0) {
    throw new MissingFileError(source.name, missing[0], `${indexFile} lists shard(s) ${missing.map((s) => `'${s}'`).join(', ')} that are not in the source`);
  }
  const out = new Map<string, RawTensor>();
  const origin = new Map<string, string>();
  for (const [shard, keys] of byShard) {
    const { tensors } = parseSafetensors(await source.readBytes(shard), `${source.name}/${shard}`);
    const absent = keys.filter((k) => !tensors.has(k));
    if (absent.length > 0) {
      throw new Error(`${source.name}/${indexFile}: weight_map puts ${absent.map((k) => `'${k}'`).join(', ')} in '${shard}', which does not contain ${absent.length === 1 ? 'it' : 'them'}`);
    }
    for (const [key, raw] of tensors) {
      const first = origin.get(key);
      if (first !== undefined) throw new Error(`${source.name}: tensor '${key}' is in both '${first}' and '${shard}'`);
      origin.set(key, shard);
      out.set(key, raw);
    }
  }
  return out;
}

/**
 * Writes tensors as one safetensors file (each in its own dtype, see `tensorToRaw`).
 * @param metadata HF tools expect `{ format: 'pt' }`.
 * @example
 * await saveSafetensors(openTarget('./out'), 'adapter_model.safetensors', peft.adapterStateDict(), { format: 'pt' });
 */
export async function saveSafetensors(
  target: WritableTarget,
  file: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const raw = new Map<string, RawTensor>();
  for (const [key, t] of tensors instanceof Map ? tensors : Object.entries(tensors)) raw.set(key, await tensorToRaw(t));
  await target.writeBytes(file, serializeSafetensors(raw, metadata));
}

/** The `weight_map` of a `model.safetensors.index.json` text, validated (`where` names it in errors). */
export function parseIndex(text: string, where: string): Record<string, string> {
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new Error(`${where}: has no "weight_map" object`);
  for (const [key, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard === '') throw new Error(`${where}: weight_map entry '${key}' is not a file name`);
  }
  return map as Record<string, string>;
}
