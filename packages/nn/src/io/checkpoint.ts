/**
 * Hugging Face checkpoints in safetensors: one `model.safetensors`, or shards listed by
 * `model.safetensors.index.json` (`{"metadata": {...}, "weight_map": {key: shard}}`).
 */
import type { Tensor } from '@webpeft/tensor';
import { tensorToRaw } from './convert.js';
import type { SafetensorsDType } from './dtypes.js';
import { bytesFile } from './random-access.js';
import { type SafetensorsFile, openSafetensorsFile } from './safetensors-file.js';
import { type RawTensor, SafetensorsError, serializeSafetensors } from './safetensors.js';
import { MissingFileError, type ModelSource, type WritableTarget } from './source.js';

/** Options of {@link loadCheckpoint} and {@link openCheckpoint}. */
export interface LoadCheckpointOptions {
  /** Single-file name; the index is `${weightsName}.index.json` (default `model.safetensors`). */
  weightsName?: string;
}

/** One tensor of an opened checkpoint, from its file's header (no data read). */
export interface CheckpointTensorInfo {
  /** Its key in the file. */
  key: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** The file holding it (`model.safetensors` or a shard). */
  file: string;
  /** Bytes of its data: `prod(shape) * itemsize`. */
  byteLength: number;
}

/** A checkpoint whose headers are read and checked; tensor data are read one at a time on demand. */
export interface Checkpoint {
  /** Every tensor by key, in file order (shards in the index's order). */
  readonly tensors: ReadonlyMap<string, CheckpointTensorInfo>;
  /**
   * Reads one tensor's bytes from its file (one ranged read where the source supports it;
   * see `ModelSource.openFile`). An unknown key, or a file that now ends before the
   * tensor's bytes do, throws naming the file and the tensor.
   */
  read(key: string): Promise<RawTensor>;
}

/**
 * Opens a checkpoint, reading only the safetensors headers (a ranged read of each file's
 * first bytes where the source has `openFile`: local directories, picked `File`s and
 * in-memory bytes; an http(s) folder without it is read whole, file by file, as before).
 * So a single file of 2 GiB or more loads, and host memory holds one tensor at a time.
 *
 * Everything {@link loadCheckpoint} checks is checked here, before any tensor is read:
 * each header against its file's size (a truncated file fails naming the file and the
 * tensor that runs past its end), and for a sharded checkpoint the index, the shards it
 * names, every key in the shard the index names, and no key in two shards.
 * @example
 * const ckpt = await openCheckpoint(openSource('./Qwen2.5-0.5B'));
 * ckpt.tensors.get('model.embed_tokens.weight'); // { dtype: 'BF16', shape: [151936, 896], file, byteLength }
 * const raw = await ckpt.read('model.norm.weight'); // only these bytes are read
 */
export async function openCheckpoint(source: ModelSource, options: LoadCheckpointOptions = {}): Promise<Checkpoint> {
  const single = options.weightsName ?? 'model.safetensors';
  const indexFile = `${single}.index.json`;
  const files = new Map<string, SafetensorsFile>();
  const tensors = new Map<string, CheckpointTensorInfo>();
  const add = (file: string, st: SafetensorsFile) => {
    files.set(file, st);
    for (const [key, e] of st.entries) tensors.set(key, { key, dtype: e.dtype, shape: e.shape, file, byteLength: e.end - e.begin });
  };
  if (await source.has(single)) {
    add(single, await openFile(source, single));
  } else {
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
    for (const [shard, keys] of byShard) {
      const st = await openFile(source, shard);
      const absent = keys.filter((k) => !st.entries.has(k));
      if (absent.length > 0) {
        throw new Error(`${source.name}/${indexFile}: weight_map puts ${absent.map((k) => `'${k}'`).join(', ')} in '${shard}', which does not contain ${absent.length === 1 ? 'it' : 'them'}`);
      }
      for (const key of st.entries.keys()) {
        const first = tensors.get(key)?.file;
        if (first !== undefined) throw new Error(`${source.name}: tensor '${key}' is in both '${first}' and '${shard}'`);
      }
      add(shard, st);
    }
  }
  return {
    tensors,
    async read(key: string): Promise<RawTensor> {
      const info = tensors.get(key);
      if (info === undefined) throw new SafetensorsError(`${source.name}: no tensor '${key}' in the checkpoint`, source.name, key);
      return files.get(info.file)!.read(key);
    },
  };
}

/**
 * Reads every tensor of a checkpoint, undecoded (decode with `rawToTensor`): the whole
 * checkpoint in host memory. A loader that needs one tensor at a time uses
 * {@link openCheckpoint} instead.
 *
 * Sharded checkpoints are validated: the index must be a `weight_map` of strings, every
 * shard it names must exist, every key must be in the shard the index names, and no key
 * may appear in two shards.
 * @example
 * const raw = await loadCheckpoint(openSource('./SmolLM-135M'));
 * const wte = rawToTensor(raw.get('model.embed_tokens.weight')!);
 */
export async function loadCheckpoint(source: ModelSource, options: LoadCheckpointOptions = {}): Promise<Map<string, RawTensor>> {
  const checkpoint = await openCheckpoint(source, options);
  const out = new Map<string, RawTensor>();
  for (const key of checkpoint.tensors.keys()) out.set(key, await checkpoint.read(key));
  return out;
}

/** `file` of `source` opened for ranged reads, or read whole where the source cannot read ranges. */
async function openFile(source: ModelSource, file: string): Promise<SafetensorsFile> {
  const ranged = source.openFile ? await source.openFile(file) : bytesFile(await source.readBytes(file));
  return openSafetensorsFile(ranged, `${source.name}/${file}`);
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
