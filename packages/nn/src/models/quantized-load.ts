/**
 * Loading a causal LM with some linear layers quantized as they stream in: the model is
 * built with those layers' weights on `meta` (no device bytes), every other weight is
 * copied in from the checkpoint, then each selected layer's weight is handed to the
 * {@link LoadQuantizerPlan} (read from its file only then, and decoded piece by piece),
 * and the quantized layer replaces the shapes-only one before the next is read. So the
 * device never holds more than the final model plus one weight in flight.
 */
import { type BackendName, type Tensor, getBackend } from '@webpeft/tensor';
import { type Checkpoint, type CheckpointTensorInfo, SAFETENSORS_ITEM_SIZE, type RawTensor } from '../io/index.js';
import { Conv1D, Linear } from '../layers/linear.js';
import type { LinearLike } from '../linear-like.js';
import { causalLMFromConfig } from './auto.js';
import type { CausalLM } from './causal-lm.js';
import type { RawConfig } from './config-utils.js';
import type { LoadQuantizerPlan, StreamedWeight } from './load-quantizer.js';
import { decodeRaw, inCheckpoint, planCausalLMWeights, storedLayerKeys, streamCheckpointInto } from './load-weights.js';

/** Options of {@link loadQuantizedCausalLM}. */
export interface QuantizedLoadOptions {
  /** Backend of the model (default: the current one). */
  backend?: BackendName;
  /** Dtype of the weights that stay in full precision. */
  dtype: 'f32' | 'f16';
  /** The checkpoint's name, for errors. */
  file: string;
}

/**
 * Builds the model `rawConfig` describes from `checkpoint` (headers read, tensors read on demand),
 * with the layers `quantizer.selectLayers` picks loaded through `quantizer`. `shapes` is
 * the same config built on `meta`: everything (keys, shapes, dtypes, stored quantized
 * tensors) is checked against it before the first allocation, and any failure later
 * (a value the quantizer refuses, a range error) frees everything allocated here.
 */
export async function loadQuantizedCausalLM(
  rawConfig: RawConfig,
  shapes: CausalLM,
  checkpoint: Checkpoint,
  quantizer: LoadQuantizerPlan,
  options: QuantizedLoadOptions,
): Promise<CausalLM> {
  const layers = quantizer.selectLayers(shapes);
  for (const path of layers) {
    const m = shapes.getSubmodule(path);
    if (!(m instanceof Linear || m instanceof Conv1D)) throw new Error(`fromPretrained: the quantizer selected '${path}', a ${m.constructor.name}, not a Linear or Conv1D layer`);
  }
  // Stored 4-bit layers are checked from their data (the quant_state entries), so their
  // tensors (packed weights: a quarter of the bf16 bytes or less) are read before planning;
  // every other tensor is read when it is copied in.
  const tensors = new Map<string, CheckpointTensorInfo & { data?: Uint8Array }>(checkpoint.tensors);
  if (quantizer.stored) {
    for (const key of storedLayerKeys(shapes, checkpoint.tensors.keys(), layers)) tensors.set(key, { ...checkpoint.tensors.get(key)!, data: (await checkpoint.read(key)).data });
  }
  const asRaw = (record: ReadonlyMap<string, CheckpointTensorInfo & { data?: Uint8Array }>) => record as ReadonlyMap<string, RawTensor>;
  const stored = quantizer.stored ? { paths: layers, checkStored: (path: string, record: ReadonlyMap<string, CheckpointTensorInfo & { data?: Uint8Array }>, shape: readonly [number, number]) => quantizer.checkStored(path, asRaw(record), shape) } : undefined;
  const { plan, stored: storedTensors } = planCausalLMWeights(shapes, tensors, options.file, stored);
  const conv1d = new Set(layers.filter((p) => shapes.getSubmodule(p) instanceof Conv1D));
  const backend = options.backend ?? getBackend().name;
  const model = causalLMFromConfig(rawConfig, { backend, dtype: options.dtype, randomInit: false, linearBackend: 'meta' });
  try {
    const selected = new Set(layers);
    materializeOtherLinears(model, selected, backend, options.dtype);
    const inLayer = (key: string) => selected.has(key.slice(0, key.lastIndexOf('.')));
    await streamCheckpointInto(model.stateDict(), plan, checkpoint, { backend, file: options.file, skip: inLayer });
    for (const path of layers) {
      const old = model.getSubmodule(path) as Linear | Conv1D;
      if (old.weight.backend.name !== 'meta') throw new Error(`fromPretrained: cannot quantize '${path}': its weight is shared with another module (a tied head); leave it out`);
      const biasInfo = plan.get(`${path}.bias`);
      const biasRaw = biasInfo && (await checkpoint.read(biasInfo.key));
      const bias = biasRaw ? inCheckpoint(options.file, () => decodeRaw(biasRaw, `${path}.bias`, old.bias!.dtype, backend)) : null;
      let layer: LinearLike;
      try {
        // The layer's weight is read from the file only now, and dropped once quantized.
        const weightInfo = quantizer.stored ? undefined : plan.get(`${path}.weight`)!;
        const weightRaw = weightInfo && (await checkpoint.read(weightInfo.key));
        layer = await inCheckpoint(options.file, () =>
          quantizer.stored
            ? Promise.resolve(quantizer.fromStored(path, asRaw(storedTensors.get(path)!), bias, backend))
            : quantizer.quantize(path, streamedWeight(`${path}.weight`, weightRaw!, conv1d.has(path), backend), bias),
        );
      } catch (e) {
        bias?.dispose();
        throw e;
      }
      model.replaceSubmodule(path, layer);
      old.dispose();
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** Replaces every linear layer built on `meta` that is not selected by a real one (zeros, loaded after). */
function materializeOtherLinears(model: CausalLM, selected: ReadonlySet<string>, backend: BackendName, dtype: 'f32' | 'f16'): void {
  for (const [path, m] of model.namedModules()) {
    if (selected.has(path) || !(m instanceof Linear || m instanceof Conv1D) || m.weight.backend.name !== 'meta') continue;
    const opts = { backend, dtype, randomInit: false };
    const real = m instanceof Conv1D ? new Conv1D(m.inFeatures, m.outFeatures, opts) : new Linear(m.inFeatures, m.outFeatures, { ...opts, bias: m.bias !== null });
    model.replaceSubmodule(path, real);
    m.dispose();
  }
}

/** A layer's checkpoint weight read as `[out, in]` pieces; a `Conv1D`'s `[in, out]` is transposed on the host once. */
function streamedWeight(key: string, raw: RawTensor, transposed: boolean, backend: BackendName): StreamedWeight {
  const [rows, cols] = raw.shape;
  const shape: [number, number] = transposed ? [cols, rows] : [rows, cols];
  const item = SAFETENSORS_ITEM_SIZE[raw.dtype];
  let bytes: Uint8Array | null = transposed ? null : raw.data;
  return {
    key,
    shape,
    decode(start: number, end: number): Tensor {
      const n = shape[0] * shape[1];
      if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end <= n)) {
        throw new RangeError(`decode '${key}': [${start}, ${end}) is not a non-empty range of its ${n} elements`);
      }
      bytes ??= transposeBytes(raw.data, rows, cols, item);
      return decodeRaw({ dtype: raw.dtype, shape: [end - start], data: bytes.subarray(start * item, end * item) }, key, 'f32', backend);
    },
  };
}

/** Row-major `[rows, cols]` elements of `item` bytes -> `[cols, rows]`. */
function transposeBytes(data: Uint8Array, rows: number, cols: number, item: number): Uint8Array {
  const src = data.slice();
  const out = new Uint8Array(src.length);
  const Ctor = item === 4 ? Uint32Array : item === 2 ? Uint16Array : item === 1 ? Uint8Array : null;
  if (Ctor) {
    const s = new Ctor(src.buffer, 0, rows * cols);
    const d = new Ctor(out.buffer, 0, rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) d[c * rows + r] = s[r * cols + c];
    return out;
  }
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out.set(src.subarray((r * cols + c) * item, (r * cols + c + 1) * item), (c * rows + r) * item);
  return out;
}
