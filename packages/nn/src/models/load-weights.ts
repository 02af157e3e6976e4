import { type BackendName, type DType, type Tensor, assign, cast, noGrad } from '@webpeft/tensor';
import { type Checkpoint, type CheckpointTensorInfo, type RawTensor, type SafetensorsDType, rawToTensor } from '../io/index.js';
import { type ExpectedTensor, WeightsMismatchError, dtypeKind, weightProblems } from '../io/weights-mismatch.js';
import { checkpointLayout } from './auto.js';
import type { CausalLM } from './causal-lm.js';

/** What {@link loadCausalLMWeights} did besides loading every parameter. */
export interface LoadWeightsReport {
  /** Checkpoint keys skipped on purpose (old causal-mask / RoPE buffers, a tied `lm_head.weight`). */
  ignoredKeys: string[];
}

/** What {@link planCausalLMWeights} needs of a checkpoint tensor: its header entry (a `RawTensor` has it). */
export interface TensorHeader {
  dtype: SafetensorsDType;
  shape: number[];
}

/** Which checkpoint tensor goes into which parameter: what {@link planCausalLMWeights} returns. */
export interface CausalLMWeightsPlan<T extends TensorHeader = RawTensor> extends LoadWeightsReport {
  /** Parameter key -> the checkpoint tensor to copy into it. */
  plan: Map<string, T>;
  /**
   * Layers stored quantized in the checkpoint (`quantized.checkStored` given): layer path ->
   * its weight's tensors, keyed relative to the layer (`weight`, `weight.absmax`, ...).
   */
  stored: Map<string, Map<string, T>>;
}

/** Layers of a checkpoint whose weights are already stored quantized (see {@link planCausalLMWeights}). */
export interface StoredQuantizedLayers<T extends TensorHeader = RawTensor> {
  /** Paths of the layers (linear layers of the model). */
  paths: readonly string[];
  /**
   * Problems (one line each, empty when fine) of one layer's stored weight tensors, keyed
   * relative to the layer (`weight`, `weight.absmax`, ...); `shape` is the layer's `[out, in]`.
   */
  checkStored(path: string, tensors: ReadonlyMap<string, T>, shape: readonly [number, number]): string[];
}

/** Safetensors dtypes a model cannot hold as weights (f64 would be rounded to f32 silently). */
const UNHELD_FLOAT_DTYPES = new Set(['F64']);

/**
 * Matches a Hugging Face checkpoint's tensors to `model`'s parameters without touching
 * either (so it works on a `meta` model, to check a checkpoint before allocating the
 * real one). Keys of the bare decoder stack (`h.0...`, `layers.0...`) gain the model's
 * prefix; GPT-2's `attn.bias` / `attn.masked_bias` and LLaMA's `rotary_emb.inv_freq`
 * buffers are ignored; a tied `lm_head.weight` may be absent. Any other missing,
 * unexpected, mis-shaped or wrongly typed key (an integer tensor for a float weight)
 * throws one {@link WeightsMismatchError} listing them all. F64 weights are refused
 * (the model holds f32 or f16).
 *
 * With `quantized`, the weights of those layers are read as stored quantized: every key
 * `<layer>.weight` and `<layer>.weight.*` goes to `stored` and is checked by
 * `quantized.checkStored` instead of against the float parameter.
 * @param file the checkpoint's name for the error (default `checkpoint`).
 */
export function planCausalLMWeights<T extends TensorHeader = RawTensor>(
  model: CausalLM,
  tensors: ReadonlyMap<string, T>,
  file = 'checkpoint',
  quantized?: StoredQuantizedLayers<T>,
): CausalLMWeightsPlan<T> {
  const layout = checkpointLayout(model);
  const own = model.stateDict();
  const ignoredKeys: string[] = [];
  const plan = new Map<string, T>();
  const renamed = new Map<string, T>();
  const duplicates: string[] = [];
  const storedPaths = new Set(quantized?.paths ?? []);
  const stored = new Map<string, Map<string, T>>([...storedPaths].map((p) => [p, new Map<string, T>()]));
  for (const [fileKey, raw] of tensors) {
    if (layout.ignore.test(fileKey)) {
      ignoredKeys.push(fileKey);
      continue;
    }
    const key = own.has(fileKey) || fileKey.startsWith('lm_head.') || storedLayerOf(fileKey, storedPaths) ? fileKey : `${layout.basePrefix}.${fileKey}`;
    const layer = storedLayerOf(key, storedPaths);
    if (layer !== undefined) {
      const rel = key.slice(layer.length + 1);
      if (stored.get(layer)!.has(rel)) duplicates.push(`duplicate: ${fileKey} and another key both load into ${key}`);
      stored.get(layer)!.set(rel, raw);
      continue;
    }
    // Unknown keys are reported under their name in the file.
    const target = own.has(key) ? key : fileKey;
    if (renamed.has(target)) duplicates.push(`duplicate: ${fileKey} and another key both load into ${target}`);
    renamed.set(target, raw);
    if (own.has(key)) plan.set(key, raw);
  }
  const storedWeights = new Set([...storedPaths].map((p) => `${p}.weight`));
  const expected = new Map<string, ExpectedTensor>([...own].filter(([k]) => !storedWeights.has(k)).map(([k, t]) => [k, { shape: t.shape, kind: dtypeKind(t.dtype) }]));
  const optional = new Set(layout.tied ? ['lm_head.weight'] : []);
  const problems = [...duplicates, ...weightProblems(expected, renamed, optional)];
  for (const [key, raw] of renamed) {
    if (expected.get(key)?.kind === 'float' && UNHELD_FLOAT_DTYPES.has(raw.dtype)) {
      problems.push(`dtype: ${key}: ${raw.dtype} weights cannot be held (the model holds f32 or f16; they would be rounded): convert the checkpoint to F32, F16 or BF16`);
    }
  }
  for (const [path, record] of stored) {
    const weight = own.get(`${path}.weight`);
    if (!weight) continue;
    const layer = model.getSubmodule(path) as unknown as { inFeatures: number; outFeatures: number };
    for (const line of quantized!.checkStored(path, record, [layer.outFeatures, layer.inFeatures])) problems.push(`${path}: ${line}`);
  }
  if (problems.length > 0) throw new WeightsMismatchError('loadCausalLMWeights', file, problems);
  if (layout.tied && plan.has('lm_head.weight')) {
    // The same tensor as the input embedding, which is loaded under its own key.
    plan.delete('lm_head.weight');
    ignoredKeys.push('lm_head.weight');
  }
  return { plan, ignoredKeys, stored };
}

/**
 * The checkpoint keys {@link planCausalLMWeights} would file under the stored-quantized
 * layers `paths` (so a loader reads just those before planning).
 */
export function storedLayerKeys(model: CausalLM, keys: Iterable<string>, paths: readonly string[]): string[] {
  const layout = checkpointLayout(model);
  const own = model.stateDict();
  const storedPaths = new Set(paths);
  const out: string[] = [];
  for (const fileKey of keys) {
    if (layout.ignore.test(fileKey)) continue;
    const key = own.has(fileKey) || fileKey.startsWith('lm_head.') || storedLayerOf(fileKey, storedPaths) ? fileKey : `${layout.basePrefix}.${fileKey}`;
    if (storedLayerOf(key, storedPaths) !== undefined) out.push(fileKey);
  }
  return out;
}

/** The stored-quantized layer a key belongs to (`<layer>.weight` or `<layer>.weight.*`), if any. */
function storedLayerOf(key: string, paths: ReadonlySet<string>): string | undefined {
  if (paths.size === 0) return undefined;
  for (let i = key.indexOf('.weight'); i !== -1; i = key.indexOf('.weight', i + 1)) {
    const after = key.charAt(i + '.weight'.length);
    if ((after === '' || after === '.') && paths.has(key.slice(0, i))) return key.slice(0, i);
  }
  return undefined;
}

/**
 * Copies a Hugging Face checkpoint's tensors into `model`'s parameters, one at a time
 * (decoded to the parameter's dtype: f16/bf16 become f32 for an f32 model; every float
 * dtype becomes f16 for an f16 model, a value beyond f16's range an error naming the
 * key), after checking all of them
 * with {@link planCausalLMWeights}: on a mismatch nothing is copied.
 */
export function loadCausalLMWeights(model: CausalLM, tensors: Map<string, RawTensor>, options: { backend?: BackendName; file?: string } = {}): LoadWeightsReport {
  const { plan, ignoredKeys } = planCausalLMWeights(model, tensors, options.file);
  const own = model.stateDict();
  inCheckpoint(options.file, () => {
    for (const [key, raw] of plan) copyRawInto(own.get(key)!, raw, key, options.backend);
  });
  return { ignoredKeys };
}

/**
 * Reads each planned tensor from `checkpoint` and decodes it into its parameter of
 * `own`, one tensor at a time: the host holds one tensor's bytes (and its decoded copy)
 * at once, the device one transient decoded tensor. Keys `skip` accepts are left alone.
 */
export async function streamCheckpointInto(
  own: ReadonlyMap<string, Tensor>,
  plan: ReadonlyMap<string, CheckpointTensorInfo>,
  checkpoint: Checkpoint,
  options: { backend?: BackendName; file?: string; skip?: (key: string) => boolean } = {},
): Promise<void> {
  for (const [key, info] of plan) {
    if (options.skip?.(key)) continue;
    const raw = await checkpoint.read(info.key);
    inCheckpoint(options.file, () => copyRawInto(own.get(key)!, raw, key, options.backend));
  }
}

/**
 * Runs `fn`, naming checkpoint `file` in the message of any error it throws (a value
 * beyond f16's range, one a quantizer refuses), whose type is kept.
 */
export function inCheckpoint<T>(file: string | undefined, fn: () => T): T {
  try {
    const out = fn();
    if (out instanceof Promise) {
      return out.catch((e: unknown) => {
        throw named(e, file);
      }) as T;
    }
    return out;
  } catch (e) {
    throw named(e, file);
  }
}

function named(e: unknown, file: string | undefined): unknown {
  if (file !== undefined && e instanceof Error && !e.message.includes(file)) e.message = `${file}: ${e.message}`;
  return e;
}

/**
 * Decodes `raw` into `param` in place (`param`'s dtype; f16 decodes straight to f16,
 * range-checked on the host, naming `key`). One transient copy of the tensor exists.
 */
export function copyRawInto(param: Tensor, raw: RawTensor, key: string, backend?: BackendName): void {
  const decoded = decodeRaw(raw, key, param.dtype, backend ?? param.backend.name);
  try {
    noGrad(() => assign(param, decoded));
  } finally {
    decoded.dispose();
  }
}

/** `raw` as a new tensor of `dtype` on `backend` (float data decoded straight to f16 for an f16 `dtype`). */
export function decodeRaw(raw: RawTensor, key: string, dtype: DType, backend: BackendName | undefined): Tensor {
  const decoded = rawToTensor(raw, { key, backend, floatDtype: dtype === 'f16' ? 'f16' : 'f32' });
  if (decoded.dtype === dtype) return decoded;
  try {
    return cast(decoded, dtype);
  } finally {
    decoded.dispose();
  }
}
