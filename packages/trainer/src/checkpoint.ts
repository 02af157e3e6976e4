/**
 * Saving and loading a trainer checkpoint (format in `format.ts`): the trainable
 * weights, the optimizer and scheduler state, the global RNG state, the step, epoch
 * and data position. A load checks everything (manifest, file sizes and CRCs, tensor
 * names, shapes and dtypes, the optimizer's and scheduler's own checks) before it
 * changes anything, so a refused checkpoint leaves model, optimizer, scheduler and RNG
 * exactly as they were.
 */
import { type Module, type RawTensor, parseSafetensors, serializeSafetensors } from '@webpeft/nn';
import {
  type FlatOptimizerState,
  type OptimizerStateDict,
  type SavedBuffer,
  type SchedulerStateDict,
  flattenOptimizerState,
  unflattenOptimizerState,
} from '@webpeft/optim';
import { type Tensor, assign, getRngState, noGrad, setRngState, tensor } from '@webpeft/tensor';
import { CheckpointError } from './errors.js';
import { CHECKPOINT_FILES, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, type CheckpointManifest, type JsonValue, crc32, parseManifest } from './format.js';
import type { CheckpointStore } from './store.js';

/** What a checkpoint needs of an optimizer (every `@webpeft/optim` and `@webpeft/quant` optimizer has it). */
export interface CheckpointOptimizer {
  /** Hyperparameters and per-parameter state, keyed by parameter name. */
  stateDict(): Promise<OptimizerStateDict>;
  /** Throws as `loadStateDict` would, changing nothing. */
  checkStateDict(sd: OptimizerStateDict): void;
  /** Restores a state dict (after `checkStateDict` passed, it does not throw). */
  loadStateDict(sd: OptimizerStateDict): void;
}

/** What a checkpoint needs of a learning-rate scheduler (`LambdaLr` and the schedules built on it). */
export interface CheckpointScheduler {
  /** The step count and base learning rates. */
  stateDict(): SchedulerStateDict;
  /** Throws as `loadStateDict` would, changing nothing. */
  checkStateDict(sd: SchedulerStateDict): unknown;
  /** Restores the step count and base lrs and sets the lrs of that step. */
  loadStateDict(sd: SchedulerStateDict): void;
}

/** Trainable tensors by name: a map, a record, or `[name, tensor]` pairs. */
export type WeightsInput = ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>> | readonly (readonly [string, Tensor])[];

/** The live objects a checkpoint is taken from and restored into. */
export interface TrainingObjects {
  /** The trainable tensors (model or adapter parameters) by name, f32 or f64; see {@link trainableWeights}. */
  weights: WeightsInput;
  /** The run's optimizer (its state is saved keyed by the names of its groups). */
  optimizer: CheckpointOptimizer;
  /** The learning-rate scheduler, if the run has one. */
  scheduler?: CheckpointScheduler | null;
}

/** Where the run stands, saved with {@link saveCheckpoint}. */
export interface TrainingProgress {
  /** Optimizer steps completed. */
  step: number;
  /** Passes over the data completed, fractional inside an epoch (default 0). */
  epoch?: number;
  /** JSON position of the data stream, e.g. a sampler's state (default null). */
  dataPosition?: JsonValue;
  /** The caller's own JSON, e.g. the run's options (default `{}`). */
  metadata?: Record<string, JsonValue>;
}

/** What {@link loadCheckpoint} restored, besides the objects it was given. */
export interface LoadedCheckpoint {
  /** Optimizer steps completed when the checkpoint was taken. */
  step: number;
  /** Passes over the data completed then. */
  epoch: number;
  /** The data position saved with it. */
  dataPosition: JsonValue;
  /** The caller's metadata saved with it. */
  metadata: Record<string, JsonValue>;
  /** The whole manifest, as read and checked. */
  manifest: CheckpointManifest;
}

/**
 * The trainable parameters of `module` by their dotted names (those that require
 * grad): the weights a fine-tuning checkpoint holds (e.g. only the LoRA tensors).
 * @example const weights = trainableWeights(peftModel); // Map { 'base_model....lora_A.default.weight' => Tensor [r, in], ... }
 */
export function trainableWeights(module: Module): Map<string, Tensor> {
  return new Map(module.namedParameters().filter(([, p]) => p.requiresGrad));
}

function weightEntries(weights: WeightsInput): [string, Tensor][] {
  if (weights instanceof Map) return [...(weights as ReadonlyMap<string, Tensor>)];
  if (Array.isArray(weights)) return (weights as readonly (readonly [string, Tensor])[]).map(([n, t]) => [n, t]);
  return Object.entries(weights as Record<string, Tensor>);
}

const FILE_DTYPE = { f32: 'F32', f64: 'F64', u32: 'U32' } as const;
const ARRAY_OF = { F32: Float32Array, F64: Float64Array, U32: Uint32Array } as const;
type HostDType = keyof typeof FILE_DTYPE;

const bytesOf = (a: Float32Array | Float64Array | Uint32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * Saves a checkpoint as folder `dir` of `store`, atomically (the store writes all files
 * or none; an existing folder is replaced only with `overwrite`). Reads the weights and
 * optimizer state back from the device, and the current global RNG state.
 * @returns the manifest written.
 * @example
 * await saveCheckpoint(fileCheckpointStore(), 'out/checkpoint-100', {
 *   weights: trainableWeights(model), optimizer, scheduler, step: 100, dataPosition: { sampler: rng.state },
 * });
 */
export async function saveCheckpoint(
  store: CheckpointStore,
  dir: string,
  state: TrainingObjects & TrainingProgress,
  options: { overwrite?: boolean } = {},
): Promise<CheckpointManifest> {
  const fail: (msg: string) => never = (msg) => {
    throw new CheckpointError(`saveCheckpoint ${dir}: ${msg}`, dir);
  };
  const overwrite = options.overwrite ?? false;
  if (!Number.isSafeInteger(state.step) || state.step < 0) fail(`step must be a non-negative integer, got ${state.step}`);
  const epoch = state.epoch ?? 0;
  if (!Number.isFinite(epoch) || epoch < 0) fail(`epoch must be a finite number >= 0, got ${epoch}`);
  // Fail before reading anything back from the device.
  if (!overwrite && (await store.exists(dir))) fail('a checkpoint already exists there (pass overwrite to replace it)');
  const rng = getRngState();

  const entries = weightEntries(state.weights);
  const raws = new Map<string, RawTensor>();
  for (const [name, t] of entries) {
    if (raws.has(name)) fail(`weight '${name}' is given twice`);
    if (t.dtype !== 'f32' && t.dtype !== 'f64') fail(`weight '${name}' is ${t.dtype}; checkpoints hold f32 or f64 weights`);
    const host = (await t.data()) as Float32Array | Float64Array;
    raws.set(name, { dtype: FILE_DTYPE[t.dtype], shape: [...t.shape], data: bytesOf(host) });
  }
  const flat = flattenOptimizerState(await state.optimizer.stateDict());
  const optRaws = new Map<string, RawTensor>();
  for (const [key, b] of Object.entries(flat.tensors)) {
    const data = Array.isArray(b.data) ? new ARRAY_OF[FILE_DTYPE[b.dtype]](b.data as number[]) : b.data;
    optRaws.set(key, { dtype: FILE_DTYPE[b.dtype], shape: [...b.shape], data: bytesOf(data) });
  }
  const weightsBytes = serializeSafetensors(raws, { format: 'pt' });
  const optimizerBytes = serializeSafetensors(optRaws, { format: 'pt' });
  const manifest: CheckpointManifest = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    step: state.step,
    epoch,
    dataPosition: state.dataPosition ?? null,
    rng,
    optimizer: flat.meta,
    scheduler: state.scheduler ? state.scheduler.stateDict() : null,
    weights: [...raws.keys()],
    files: {
      [CHECKPOINT_FILES.weights]: { bytes: weightsBytes.length, crc32: crc32(weightsBytes) },
      [CHECKPOINT_FILES.optimizer]: { bytes: optimizerBytes.length, crc32: crc32(optimizerBytes) },
    },
    metadata: state.metadata ?? {},
  };
  const text = JSON.stringify(manifest, null, 2);
  // JSON has no NaN or infinity: a hyperparameter or position that would not survive the round trip is refused here.
  checkJsonRoundTrip(manifest, JSON.parse(text) as unknown, 'manifest', fail);
  const files = new Map<string, Uint8Array>([
    [CHECKPOINT_FILES.weights, weightsBytes],
    [CHECKPOINT_FILES.optimizer, optimizerBytes],
    [CHECKPOINT_FILES.manifest, new TextEncoder().encode(text)],
  ]);
  await store.commit(dir, files, { overwrite });
  return manifest;
}

function checkJsonRoundTrip(a: unknown, b: unknown, path: string, fail: (msg: string) => never): void {
  if (typeof a === 'number' && !Number.isFinite(a)) fail(`${path} is ${a}, which JSON cannot hold`);
  if (a === undefined || typeof a === 'function' || typeof a === 'bigint' || typeof a === 'symbol') fail(`${path} is ${typeof a}, which JSON cannot hold`);
  if (typeof a === 'object' && a !== null) {
    if (typeof b !== 'object' || b === null) fail(`${path} does not survive JSON`);
    for (const [k, v] of Object.entries(a)) if (v !== undefined) checkJsonRoundTrip(v, (b as Record<string, unknown>)[k], `${path}.${k}`, fail);
  }
}

/**
 * Reads and checks only the manifest of checkpoint `dir` (no tensors): for a caller
 * that compares `metadata` (e.g. the run's options) before it builds a model.
 * Throws a {@link CheckpointError} when the folder or manifest is missing or invalid.
 */
export async function readCheckpointManifest(store: CheckpointStore, dir: string): Promise<CheckpointManifest> {
  if (!(await store.exists(dir))) throw new CheckpointError(`${dir}: no checkpoint there (no such ${store.kind === 'directory' ? 'directory' : 'folder'})`, dir);
  const bytes = await store.read(dir, CHECKPOINT_FILES.manifest);
  if (!bytes) throw new CheckpointError(`${dir}: no '${CHECKPOINT_FILES.manifest}', so not a complete trainer checkpoint`, dir);
  return parseManifest(new TextDecoder().decode(bytes), dir);
}

async function readDataFile(store: CheckpointStore, dir: string, manifest: CheckpointManifest, file: string): Promise<Map<string, RawTensor>> {
  const bytes = await store.read(dir, file);
  if (!bytes) throw new CheckpointError(`${dir}: '${file}' is missing`, dir);
  const rec = manifest.files[file];
  if (bytes.length !== rec.bytes) throw new CheckpointError(`${dir}/${file}: ${bytes.length} bytes, the manifest records ${rec.bytes} (an incomplete or replaced file)`, dir);
  const sum = crc32(bytes);
  if (sum !== rec.crc32) throw new CheckpointError(`${dir}/${file}: CRC-32 is ${sum}, the manifest records ${rec.crc32} (a corrupted or replaced file)`, dir);
  try {
    return parseSafetensors(bytes, `${dir}/${file}`).tensors;
  } catch (e) {
    throw new CheckpointError((e as Error).message, dir);
  }
}

/** An aligned copy of raw little-endian bytes as the typed array of `dtype`. */
function hostArray(raw: RawTensor): Float32Array | Float64Array | Uint32Array {
  const Ctor = ARRAY_OF[raw.dtype as keyof typeof ARRAY_OF];
  return new Ctor(raw.data.slice().buffer);
}

function checkWeights(dir: string, manifest: CheckpointManifest, file: Map<string, RawTensor>, own: [string, Tensor][]): void {
  const fail: (msg: string) => never = (msg) => {
    throw new CheckpointError(`${dir}/${CHECKPOINT_FILES.weights}: ${msg}`, dir);
  };
  const listed = new Set(manifest.weights);
  const inFile = [...file.keys()];
  const unlisted = inFile.find((k) => !listed.has(k));
  if (unlisted !== undefined) fail(`tensor '${unlisted}' is not listed in the manifest's 'weights'`);
  const absent = manifest.weights.find((k) => !file.has(k));
  if (absent !== undefined) fail(`tensor '${absent}' listed in the manifest is missing from the file`);
  const ownNames = new Set(own.map(([n]) => n));
  const missing = own.filter(([n]) => !file.has(n)).map(([n]) => n);
  const unexpected = inFile.filter((n) => !ownNames.has(n));
  if (missing.length > 0 || unexpected.length > 0) {
    const parts = [];
    if (missing.length > 0) parts.push(`missing ${missing.length} weight(s) of this run: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`);
    if (unexpected.length > 0) parts.push(`${unexpected.length} weight(s) this run does not have: ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ', ...' : ''}`);
    fail(`the checkpoint's weights do not match this run's (${parts.join('; ')})`);
  }
  for (const [name, t] of own) {
    const raw = file.get(name)!;
    const want = t.dtype === 'f32' || t.dtype === 'f64' ? FILE_DTYPE[t.dtype] : null;
    if (want === null) fail(`weight '${name}' of this run is ${t.dtype}; checkpoints hold f32 or f64 weights`);
    if (raw.dtype !== want || raw.shape.join(',') !== t.shape.join(',')) {
      fail(`tensor '${name}' is ${raw.dtype} [${raw.shape.join(', ')}], this run's weight is ${want} [${t.shape.join(', ')}]`);
    }
  }
}

function optimizerState(dir: string, manifest: CheckpointManifest, file: Map<string, RawTensor>): OptimizerStateDict {
  const tensors: FlatOptimizerState['tensors'] = {};
  for (const [key, raw] of file) {
    const dtype = (Object.keys(FILE_DTYPE) as HostDType[]).find((d) => FILE_DTYPE[d] === raw.dtype);
    if (dtype === undefined) throw new CheckpointError(`${dir}/${CHECKPOINT_FILES.optimizer}: tensor '${key}' is ${raw.dtype}; optimizer states are F32, F64 or U32`, dir);
    tensors[key] = { dtype, shape: [...raw.shape], data: hostArray(raw) } satisfies SavedBuffer;
  }
  try {
    return unflattenOptimizerState({ tensors, meta: manifest.optimizer });
  } catch (e) {
    throw new CheckpointError(`${dir}/${CHECKPOINT_FILES.optimizer}: ${(e as Error).message}`, dir);
  }
}

/**
 * Restores checkpoint `dir` of `store` into `objects`: copies the saved weights into the
 * given tensors (same names, shapes and dtypes required, and exactly the same set),
 * loads the optimizer and scheduler state, and sets the global RNG state. Everything is
 * checked first; on any error a {@link CheckpointError} (or the optimizer's or
 * scheduler's own error) names the file and key, and nothing has changed.
 * @example
 * const { step, dataPosition } = await loadCheckpoint(fileCheckpointStore(), 'out/checkpoint-100', { weights, optimizer, scheduler });
 */
export async function loadCheckpoint(store: CheckpointStore, dir: string, objects: TrainingObjects): Promise<LoadedCheckpoint> {
  const manifest = await readCheckpointManifest(store, dir);
  const weightsFile = await readDataFile(store, dir, manifest, CHECKPOINT_FILES.weights);
  const optimizerFile = await readDataFile(store, dir, manifest, CHECKPOINT_FILES.optimizer);
  const own = weightEntries(objects.weights);
  checkWeights(dir, manifest, weightsFile, own);
  const sd = optimizerState(dir, manifest, optimizerFile);
  objects.optimizer.checkStateDict(sd);
  const scheduler = objects.scheduler ?? null;
  if (scheduler && manifest.scheduler === null) throw new CheckpointError(`${dir}: the checkpoint has no scheduler state, but this run has a scheduler`, dir);
  if (!scheduler && manifest.scheduler !== null) throw new CheckpointError(`${dir}: the checkpoint has scheduler state, but this run has no scheduler`, dir);
  if (scheduler) scheduler.checkStateDict(manifest.scheduler!);

  // Checked. Upload every weight before touching any, so a failed allocation changes nothing.
  const uploads: [Tensor, Tensor][] = [];
  try {
    for (const [name, t] of own) {
      uploads.push([t, tensor(hostArray(weightsFile.get(name)!) as Float32Array | Float64Array, t.shape, { dtype: t.dtype, backend: t.backend.name })]);
    }
  } catch (e) {
    for (const [, src] of uploads) src.dispose();
    throw e;
  }
  noGrad(() => {
    for (const [dst, src] of uploads) assign(dst, src);
  });
  for (const [, src] of uploads) src.dispose();
  objects.optimizer.loadStateDict(sd);
  if (scheduler) scheduler.loadStateDict(manifest.scheduler!);
  setRngState(manifest.rng);
  return { step: manifest.step, epoch: manifest.epoch, dataPosition: manifest.dataPosition, metadata: manifest.metadata, manifest };
}
