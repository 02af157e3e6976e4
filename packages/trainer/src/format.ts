/**
 * The trainer checkpoint format, in one place: file names, the JSON manifest and its
 * checks. A checkpoint is a folder of three files:
 *
 * - `weights.safetensors`: the trainable tensors (model or adapter), keyed by name;
 * - `optimizer.safetensors`: the optimizer state, tensors `<parameter name>.<buffer>`;
 * - `trainer_state.json`: the {@link CheckpointManifest} (written last, it lists the
 *   other files' sizes and CRC-32s, so a folder whose files do not match is refused).
 *
 * The package README documents the format for readers in other languages.
 */
import { checkRngState } from '@webpeft/tensor';
import type { FlatOptimizerMeta, SchedulerStateDict } from '@webpeft/optim';
import { CheckpointError } from './errors.js';

/** The `format` field of every manifest. */
export const CHECKPOINT_FORMAT = 'webpeft-trainer-checkpoint';
/** The manifest version this code writes and reads. A newer one is refused by name. */
export const CHECKPOINT_VERSION = 1;
/** File names inside a checkpoint folder. */
export const CHECKPOINT_FILES = {
  manifest: 'trainer_state.json',
  weights: 'weights.safetensors',
  optimizer: 'optimizer.safetensors',
} as const;

/** A JSON value (what `JSON.stringify` round-trips unchanged). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Size and CRC-32 of one data file, checked before the file is parsed. */
export interface FileRecord {
  /** File size in bytes. */
  bytes: number;
  /** CRC-32 (IEEE) of the whole file. */
  crc32: number;
}

/** The JSON manifest, `trainer_state.json`. */
export interface CheckpointManifest {
  /** Always {@link CHECKPOINT_FORMAT}. */
  format: typeof CHECKPOINT_FORMAT;
  /** The format version (see {@link CHECKPOINT_VERSION}). */
  version: number;
  /** Optimizer steps completed when the checkpoint was taken. */
  step: number;
  /** Passes over the data completed (fractional while inside an epoch). */
  epoch: number;
  /** Where the data stream stands (a sampler's state, a sample index): the trainer's to interpret. */
  dataPosition: JsonValue;
  /** `@webpeft/tensor`'s global Philox state (`getRngState()`). */
  rng: { seed: number; offset: number };
  /** The optimizer's name, groups and per-parameter buffer names (tensors in `optimizer.safetensors`). */
  optimizer: FlatOptimizerMeta;
  /** The learning-rate scheduler's state, or null when the run had none. */
  scheduler: SchedulerStateDict | null;
  /** Names of the tensors in `weights.safetensors`, in the order they were given. */
  weights: string[];
  /** Size and CRC-32 per data file. */
  files: Record<string, FileRecord>;
  /** The caller's own JSON (e.g. the options of the run, so a resume can refuse other ones). */
  metadata: Record<string, JsonValue>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Parses and checks `trainer_state.json`: JSON syntax, format, version, and the type
 * and range of every field (step and file sizes non-negative integers, epoch finite
 * and >= 0, the RNG state via `checkRngState`, scheduler and optimizer shapes).
 * Throws a {@link CheckpointError} naming the checkpoint, the file and the field.
 */
export function parseManifest(text: string, where: string): CheckpointManifest {
  const file = `${where}/${CHECKPOINT_FILES.manifest}`;
  const fail: (msg: string) => never = (msg) => {
    throw new CheckpointError(`${file}: ${msg}`, where);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return fail(`not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(doc)) return fail('must be a JSON object');
  if (doc.format !== CHECKPOINT_FORMAT) fail(`'format' is ${JSON.stringify(doc.format)}, expected '${CHECKPOINT_FORMAT}'`);
  if (!isCount(doc.version) || doc.version < 1) fail(`'version' must be a positive integer, got ${JSON.stringify(doc.version)}`);
  if (doc.version > CHECKPOINT_VERSION) fail(`'version' is ${String(doc.version)}; this reader knows versions up to ${CHECKPOINT_VERSION}`);
  if (!isCount(doc.step)) fail(`'step' must be a non-negative integer, got ${JSON.stringify(doc.step)}`);
  if (typeof doc.epoch !== 'number' || !Number.isFinite(doc.epoch) || doc.epoch < 0) fail(`'epoch' must be a finite number >= 0, got ${JSON.stringify(doc.epoch)}`);
  if (!('dataPosition' in doc)) fail(`'dataPosition' is missing`);
  try {
    checkRngState(doc.rng, `'rng'`);
  } catch (e) {
    fail((e as Error).message);
  }
  const opt = doc.optimizer;
  if (!isObject(opt) || typeof opt.optimizer !== 'string' || !Array.isArray(opt.paramGroups) || !isObject(opt.params)) {
    fail(`'optimizer' must be an object with 'optimizer' (a name), 'paramGroups' and 'params'`);
  }
  const sched = doc.scheduler;
  if (sched !== null && (!isObject(sched) || !isCount(sched.lastStep) || !Array.isArray(sched.baseLrs))) {
    fail(`'scheduler' must be null or { lastStep: a non-negative integer, baseLrs: [...] }, got ${JSON.stringify(sched)}`);
  }
  if (!Array.isArray(doc.weights) || doc.weights.some((w) => typeof w !== 'string')) fail(`'weights' must be a list of tensor names`);
  if (new Set(doc.weights as string[]).size !== (doc.weights as string[]).length) fail(`'weights' names a tensor twice`);
  if (!isObject(doc.files)) return fail(`'files' must be an object of file name -> { bytes, crc32 }`);
  for (const name of [CHECKPOINT_FILES.weights, CHECKPOINT_FILES.optimizer]) {
    const rec = doc.files[name];
    if (!isObject(rec) || !isCount(rec.bytes) || !isCount(rec.crc32) || rec.crc32 > 0xffffffff) {
      fail(`'files.${name}' must be { bytes, crc32 } (non-negative integers, crc32 < 2^32), got ${JSON.stringify(rec)}`);
    }
  }
  if (!isObject(doc.metadata)) fail(`'metadata' must be a JSON object`);
  return doc as unknown as CheckpointManifest;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * CRC-32 (IEEE 802.3, the zlib/PNG polynomial) of `bytes`, as an unsigned integer.
 * @example crc32(new TextEncoder().encode('123456789')); // 0xcbf43926
 */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
