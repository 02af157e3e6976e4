import { type BackendName, getBackend } from '@webpeft/tensor';
import { type ModelSource, type SourceInput, loadCheckpoint, openSource } from '../io/index.js';
import { Tokenizer } from '../tokenizer/index.js';
import { causalLMFromConfig } from './auto.js';
import type { CausalLM } from './causal-lm.js';
import type { RawConfig } from './config-utils.js';
import { loadCausalLMWeights } from './load-weights.js';

/** Options of {@link fromPretrained}. */
export interface FromPretrainedOptions {
  /** Backend for the weights (default: the current one). */
  backend?: BackendName;
  /** Load `tokenizer.json` when present (default true). */
  tokenizer?: boolean;
  /**
   * Dtype of the weights and of the compute (default `'f32'`). `'f16'`: every weight is
   * decoded to f16 (a value beyond f16's range throws, naming the tensor) and the model
   * computes in f16 with f32 accumulation. `'auto'`: f16 on a device backend whose
   * adapter has `shader-f16`, else f32 (the cpu reference emulates f16 slowly).
   */
  dtype?: 'f32' | 'f16' | 'auto';
}

/**
 * The weight dtype `dtype` resolves to on `backend`: `'auto'` is f16 where the backend
 * is a device (`capabilities.deviceMemory`) that can hold and compute f16, else f32.
 */
export function resolveModelDtype(dtype: 'f32' | 'f16' | 'auto' | undefined, backend?: BackendName): 'f32' | 'f16' {
  if (dtype === undefined || dtype === 'f32') return 'f32';
  const caps = (backend === undefined ? getBackend() : getBackend(backend)).capabilities;
  if (dtype === 'f16') {
    if (!caps.f16) throw new Error(`fromPretrained: dtype 'f16' needs a backend that can hold f16 (on WebGPU, an adapter with 'shader-f16'); use 'f32' or 'auto'`);
    return 'f16';
  }
  return caps.f16 && caps.deviceMemory ? 'f16' : 'f32';
}

/** What {@link fromPretrained} returns. */
export interface Pretrained {
  model: CausalLM;
  /** From `tokenizer.json`, when the source has one. */
  tokenizer: Tokenizer | null;
  /** The parsed `config.json`. */
  rawConfig: RawConfig;
}

/**
 * Loads a Hugging Face causal LM (GPT-2 or LLaMA family): `config.json`, the
 * safetensors weights (single file or sharded; converted to f32, or to f16 with
 * `dtype: 'f16'` / `'auto'`) and
 * `tokenizer.json` when present. The model is returned in eval mode.
 * @example
 * const { model, tokenizer } = await fromPretrained('./SmolLM-135M');          // Node directory
 * const { model } = await fromPretrained(fileInput.files!);                    // browser picker
 * const { model } = await fromPretrained({ 'config.json': cfg, 'model.safetensors': bytes });
 */
export async function fromPretrained(input: SourceInput | ModelSource, options: FromPretrainedOptions = {}): Promise<Pretrained> {
  const source = isModelSource(input) ? input : openSource(input);
  const rawConfig = JSON.parse(await source.readText('config.json')) as RawConfig;
  const dtype = resolveModelDtype(options.dtype, options.backend);
  const model = causalLMFromConfig(rawConfig, { backend: options.backend, dtype });
  try {
    const tensors = await loadCheckpoint(source);
    loadCausalLMWeights(model, tensors, { backend: options.backend });
  } catch (e) {
    model.dispose();
    throw e;
  }
  model.eval();
  const wantTokenizer = options.tokenizer ?? true;
  const tokenizer = wantTokenizer && (await source.has('tokenizer.json')) ? await Tokenizer.fromSource(source) : null;
  return { model, tokenizer, rawConfig };
}

function isModelSource(x: unknown): x is ModelSource {
  const s = x as ModelSource;
  return typeof x === 'object' && x !== null && typeof s.readBytes === 'function' && typeof s.readText === 'function' && typeof s.has === 'function';
}
