import { type AttnImplementation, checkAttnImplementation } from '../attention/scaled-dot-product.js';
import { type BackendName, getBackend, getRngState, setRngState } from '@webpeft/tensor';
import { type ModelSource, type RawTensor, type SourceInput, loadCheckpoint, openSource } from '../io/index.js';
import { NetworkError, RemoteFileError } from '../io/remote-errors.js';
import { type RemoteOptions, isHubRepoId, openHubSource, openUrlSource } from '../io/remote-source.js';
import { FILE_SYSTEM_AVAILABLE, fileExists } from '#fs-source';
import { Tokenizer } from '../tokenizer/index.js';
import { causalLMFromConfig } from './auto.js';
import type { CausalLM } from './causal-lm.js';
import { inConfigFile, parseConfigJson } from './config-error.js';
import type { RawConfig } from './config-utils.js';
import { loadCausalLMWeights, planCausalLMWeights } from './load-weights.js';

/**
 * Options of {@link fromPretrained}. The remote ones (`revision`, `hubUrl`, `cacheDir`,
 * `accessToken`, `offline`, `onProgress`, `fetch`) apply to Hub repo ids and http(s) URLs.
 */
export interface FromPretrainedOptions extends RemoteOptions {
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
  /**
   * How attention is computed (transformers' `attn_implementation`; default `'eager'`):
   * `'fused'` runs the memory-efficient `fusedAttention` (see `setAttnImplementation`).
   */
  attnImplementation?: AttnImplementation;
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
  /** Where the files were read (for a Hub repo or URL: the cache), e.g. to copy tokenizer files on export. */
  source: ModelSource;
}

/**
 * Loads a Hugging Face causal LM (GPT-2 or LLaMA family): `config.json`, the
 * safetensors weights (single file or sharded; converted to f32, or to f16 with
 * `dtype: 'f16'` / `'auto'`) and
 * `tokenizer.json` when present. The model is returned in eval mode.
 *
 * A string that is neither an existing local directory nor an http(s) URL but reads as a
 * Hub repo id (`org/name`) is downloaded from the Hub; Hub repos and http(s) folders go
 * through a cache (see `openHubSource` / `openUrlSource`), so a second load makes no request.
 *
 * Nothing is allocated before the config and every tensor's shape and dtype are checked (a
 * `ConfigError` naming the file and field, a `WeightsMismatchError` listing every bad key),
 * and a failure leaves no live tensor behind. The random number stream is left as the
 * caller had it (the init of weights the checkpoint overwrites draws nothing visible).
 * @example
 * const { model, tokenizer } = await fromPretrained('./SmolLM-135M');          // Node directory
 * const { model } = await fromPretrained('HuggingFaceTB/SmolLM2-135M', { revision: 'main' }); // Hub, cached
 * const { model } = await fromPretrained('https://example.com/models/tiny/');  // URL folder, cached
 * const { model } = await fromPretrained(fileInput.files!);                    // browser picker
 * const { model } = await fromPretrained({ 'config.json': cfg, 'model.safetensors': bytes });
 */
export async function fromPretrained(input: SourceInput | ModelSource, options: FromPretrainedOptions = {}): Promise<Pretrained> {
  // Every weight is overwritten from the checkpoint, so the random init of the shapes-only
  // plan and of the real model is discarded: the RNG stream is left as the caller had it,
  // and a seed set before loading gives the same draws after it, whatever loading builds.
  const rng = getRngState();
  try {
    return await loadPretrained(input, options);
  } finally {
    setRngState(rng);
  }
}

async function loadPretrained(input: SourceInput | ModelSource, options: FromPretrainedOptions): Promise<Pretrained> {
  const source = isModelSource(input) ? input : await resolveSource(input, options);
  const dtype = resolveModelDtype(options.dtype, options.backend);
  if (options.attnImplementation !== undefined) checkAttnImplementation(options.attnImplementation, 'fromPretrained');
  const configFile = `${source.name}/config.json`;
  const rawConfig = parseConfigJson(await source.readText('config.json'), configFile) as RawConfig;
  // Config and checkpoint are checked against a shapes-only model first: a bad field, a
  // missing, mis-shaped or wrongly typed tensor fails before any weight is allocated.
  const shapes = inConfigFile(configFile, () => causalLMFromConfig(rawConfig, { backend: 'meta', dtype }));
  let tensors: Map<string, RawTensor>;
  try {
    tensors = await loadCheckpoint(source);
    planCausalLMWeights(shapes, tensors, source.name);
  } finally {
    shapes.dispose();
  }
  // The tokenizer is read before the model exists, so its failure leaves nothing to free.
  const wantTokenizer = options.tokenizer ?? true;
  const tokenizer = wantTokenizer && (await source.has('tokenizer.json')) ? await Tokenizer.fromSource(source) : null;
  const model = causalLMFromConfig(rawConfig, { backend: options.backend, dtype });
  try {
    loadCausalLMWeights(model, tensors, { backend: options.backend, file: source.name });
  } catch (e) {
    model.dispose();
    throw e;
  }
  if (options.attnImplementation) model.setAttnImplementation?.(options.attnImplementation);
  model.eval();
  return { model, tokenizer, rawConfig, source };
}

/** Hub repo ids and http(s) URLs go through the download cache; anything else is `openSource`'s. */
async function resolveSource(input: SourceInput, options: RemoteOptions): Promise<ModelSource> {
  if (input instanceof URL && /^https?:$/.test(input.protocol)) return openUrlSource(input, options);
  if (typeof input !== 'string') return openSource(input);
  if (/^https?:\/\//i.test(input)) return openUrlSource(input, options);
  // A local directory wins over a Hub id of the same spelling, as in transformers.
  if (isHubRepoId(input) && !(FILE_SYSTEM_AVAILABLE && (await fileExists(input)))) {
    try {
      return await openHubSource(input, options);
    } catch (e) {
      // 'models/tiny' may have been meant as a local path: say that it was not found there either.
      if (FILE_SYSTEM_AVAILABLE && ((e instanceof RemoteFileError && e.file === '') || e instanceof NetworkError)) e.message += `; no local directory '${input}' either`;
      throw e;
    }
  }
  return openSource(input);
}

function isModelSource(x: unknown): x is ModelSource {
  const s = x as ModelSource;
  return typeof x === 'object' && x !== null && typeof s.readBytes === 'function' && typeof s.readText === 'function' && typeof s.has === 'function';
}
