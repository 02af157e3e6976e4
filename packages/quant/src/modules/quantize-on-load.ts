/**
 * Quantize-on-load for nn's `fromPretrained` (QLoRA's main saving at load time): the
 * {@link LoadQuantizer} that stores the layers {@link quantizeModel} would quantize as
 * {@link Linear4bit}, each quantized from the checkpoint piece by piece, or read from a
 * checkpoint saved in bitsandbytes' 4-bit layout.
 */
import type { LinearLike, LoadQuantizer, LoadQuantizerPlan, Module, RawTensor, StreamedWeight } from '@webpeft/nn';
import { type BackendName, type Tensor, getBackend } from '@webpeft/tensor';
import { BLOCKSIZES_4BIT } from '../blockwise.js';
import { QuantState, type RecordArray, type RecordDType } from '../quant-state.js';
import { quantize4bitStreamed } from '../quantize-4bit-streamed.js';
import { type Bnb4bitConfig, readBnb4bitConfig } from './bnb-config.js';
import { Linear4bit, type Linear4bitOptions } from './linear-4bit.js';
import { type QuantizeModelOptions, quantizeTargets } from './quantize-model.js';

const RECORD_DTYPES: readonly string[] = ['U8', 'F32', 'F16', 'BF16', 'I32'];

/**
 * A quantizer for `fromPretrained(dir, { quantize: quantizeOnLoad({...}) })`.
 *
 * - Full-precision checkpoint (f32, f16 or bf16; one file or shards): the layers
 *   `quantizeModel` would pick (every `Linear`/`Conv1D` but `skip`, default `['lm_head']`,
 *   and a tied head) are quantized as they stream in, each weight decoded to f32 a quarter
 *   at a time, so peak device bytes stay within the final model plus one weight. The codes
 *   and constants are byte-identical to `quantizeModel` after a full f32 load.
 * - A checkpoint saved in bitsandbytes' 4-bit layout (`quantization_config` with
 *   `quant_method: "bitsandbytes"`, `load_in_4bit`; keys `<layer>.weight`,
 *   `.weight.absmax`, `.weight.quant_map`, `.weight.nested_*`, `.weight.quant_state.bitsandbytes__<type>`):
 *   its layers are read as stored. Options that disagree with the file's config are refused;
 *   `computeDtype` defaults to its `bnb_4bit_compute_dtype` (bfloat16 computes in f32).
 *
 * @example
 * const { model } = await fromPretrained('./SmolLM2-135M', { quantize: quantizeOnLoad({ quantType: 'nf4', doubleQuant: true, computeDtype: 'f16' }) });
 */
export function quantizeOnLoad(options: QuantizeModelOptions = {}): LoadQuantizer {
  if (options.quantType !== undefined && options.quantType !== 'nf4' && options.quantType !== 'fp4') {
    throw new RangeError(`quantizeOnLoad: quantType must be 'nf4' or 'fp4', got ${JSON.stringify(options.quantType)}`);
  }
  if (options.blockSize !== undefined && !BLOCKSIZES_4BIT.includes(options.blockSize)) {
    throw new RangeError(`quantizeOnLoad: blockSize ${options.blockSize} is not one of ${BLOCKSIZES_4BIT.join(', ')}`);
  }
  if (options.computeDtype !== undefined && options.computeDtype !== 'f32' && options.computeDtype !== 'f16') {
    throw new RangeError(`quantizeOnLoad: computeDtype '${String(options.computeDtype)}' is not supported (use 'f32' or 'f16')`);
  }
  return {
    plan(quantizationConfig: unknown, configFile: string, backend: BackendName): LoadQuantizerPlan {
      const stored = quantizationConfig === undefined ? null : storedConfig(readBnb4bitConfig(quantizationConfig, configFile), options, configFile);
      const computeDtype = options.computeDtype ?? (stored?.computeDtype === 'float16' ? 'f16' : 'f32');
      if (computeDtype === 'f16' && !getBackend(backend).capabilities.f16) {
        throw new Error(`quantizeOnLoad: computeDtype 'f16' needs a backend with f16; '${backend}' has none (use 'f32')`);
      }
      const skip = options.skip ?? stored?.skipModules ?? ['lm_head'];
      return stored ? storedPlan(skip, computeDtype) : streamingPlan(options, skip, computeDtype);
    },
  };
}

/** The file's config, refusing options that contradict it (the stored codes cannot change). */
function storedConfig(config: Bnb4bitConfig, options: QuantizeModelOptions, file: string): Bnb4bitConfig {
  const clash = (what: string, ours: unknown, theirs: unknown) => {
    throw new Error(`quantizeOnLoad: ${what} ${JSON.stringify(ours)} was asked for, but ${file} stores ${JSON.stringify(theirs)} weights (leave the option out to load them as stored)`);
  };
  if (options.quantType !== undefined && options.quantType !== config.quantType) clash('quantType', options.quantType, config.quantType);
  if (options.doubleQuant !== undefined && options.doubleQuant !== config.doubleQuant) clash('doubleQuant', options.doubleQuant, config.doubleQuant);
  return config;
}

function streamingPlan(options: QuantizeModelOptions, skip: readonly string[], computeDtype: 'f32' | 'f16'): LoadQuantizerPlan {
  return {
    stored: false,
    selectLayers: (model: Module) => quantizeTargets(model, skip),
    checkStored: () => [],
    async quantize(path: string, weight: StreamedWeight, bias: Tensor | null): Promise<LinearLike> {
      const layerOptions: Linear4bitOptions = { quantType: options.quantType ?? 'nf4', blockSize: options.blockSize ?? 64, doubleQuant: options.doubleQuant ?? true, computeDtype, name: weight.key };
      const quantized = await quantize4bitStreamed(weight, { quantType: layerOptions.quantType, blocksize: layerOptions.blockSize, doubleQuant: layerOptions.doubleQuant, name: weight.key });
      return frozen(Linear4bit.fromQuantized(quantized, bias, layerOptions));
    },
    fromStored: () => {
      throw new Error('quantizeOnLoad: this checkpoint stores no quantized weights');
    },
  };
}

function storedPlan(skip: readonly string[], computeDtype: 'f32' | 'f16'): LoadQuantizerPlan {
  return {
    stored: true,
    selectLayers: (model: Module) => quantizeTargets(model, skip),
    checkStored(path: string, tensors: ReadonlyMap<string, RawTensor>, shape: readonly [number, number]): string[] {
      const weight = tensors.get('weight');
      if (tensors.size === 1 && weight && weight.dtype !== 'U8') {
        return [`'weight' is stored in full precision (${weight.dtype} [${weight.shape.join(', ')}]), but quantization_config says this layer is 4-bit (list it in llm_int8_skip_modules to keep it so)`];
      }
      const bad = [...tensors].filter(([, raw]) => !RECORD_DTYPES.includes(raw.dtype)).map(([k, raw]) => `'${k}' has dtype ${raw.dtype}, which no 4-bit state entry has`);
      if (bad.length > 0) return bad;
      return QuantState.checkRecord(asRecord(tensors), 'weight', shape);
    },
    quantize: () => Promise.reject(new Error('quantizeOnLoad: this checkpoint stores its weights quantized')),
    fromStored(path: string, tensors: ReadonlyMap<string, RawTensor>, bias: Tensor | null, backend: BackendName): LinearLike {
      const { packed, state } = QuantState.fromRecord(asRecord(tensors), 'weight', backend);
      try {
        const options: Linear4bitOptions = { quantType: state.quantType, blockSize: state.blocksize, doubleQuant: state.nested !== null, computeDtype, name: `${path}.weight` };
        return frozen(Linear4bit.fromQuantized({ packed, state }, bias, options));
      } catch (e) {
        packed.dispose();
        state.dispose();
        throw e;
      }
    },
  };
}

function frozen(layer: Linear4bit): Linear4bit {
  layer.requiresGrad_(false);
  return layer;
}

/** Checkpoint tensors of one layer as a `QuantState` record (dtypes checked by the caller). */
function asRecord(tensors: ReadonlyMap<string, RawTensor>): Record<string, RecordArray> {
  const record: Record<string, RecordArray> = {};
  for (const [key, raw] of tensors) record[key] = { dtype: raw.dtype as RecordDType, shape: raw.shape, data: raw.data };
  return record;
}
