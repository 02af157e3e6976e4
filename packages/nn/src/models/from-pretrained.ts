import { type AttnImplementation, checkAttnImplementation } from '../attention/scaled-dot-product.js';
import { type BackendName, getBackend, getRngState, setRngState } from '@webpeft/tensor';
import { type Checkpoint, type CheckpointTensorInfo, type ModelSource, type SourceInput, openCheckpoint, openSource } from '../io/index.js';
import { NetworkError, RemoteFileError } from '../io/remote-errors.js';
import { type RemoteOptions, isHubRepoId, openHubSource, openUrlSource } from '../io/remote-source.js';
import { FILE_SYSTEM_AVAILABLE, fileExists } from '#fs-source';
import { Tokenizer } from '../tokenizer/index.js';
import { causalLMFromConfig } from './auto.js';
import type { CausalLM } from './causal-lm.js';
import { ConfigError, inConfigFile, parseConfigJson } from './config-error.js';
import type { RawConfig } from './config-utils.js';
import { planCausalLMWeights, streamCheckpointInto } from './load-weights.js';
import { type LoadQuantizer, type LoadQuantizerPlan, isLoadQuantizer } from './load-quantizer.js';
import { loadQuantizedCausalLM } from './quantized-load.js';

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
   * Quantize linear layers while loading (`@webpeft/quant`'s `quantizeOnLoad({...})`): each
   * selected layer's weight is read, quantized and freed before the next, so the device
   * never holds the full-precision model. Also required for a checkpoint whose
   * `config.json` has a `quantization_config` (weights stored quantized, e.g. bitsandbytes 4-bit).
   */
  quantize?: LoadQuantizer;
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
 * The weights stream from the files: only the safetensors headers are read up front, then
 * each tensor's bytes with a ranged read as it is copied in (local directories, picked
 * `File`s, in-memory bytes; see `ModelSource.openFile`), so a single file of 2 GiB or more
 * loads and host memory holds one tensor at a time. The model is built without random
 * init (every parameter is overwritten).
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
  const quantizer = quantizerPlan(options.quantize, rawConfig, configFile, options.backend);
  const shapes = inConfigFile(configFile, () => causalLMFromConfig(rawConfig, { backend: 'meta', dtype }));
  // Only the headers are read here: each tensor's bytes are read when it is copied in.
  let checkpoint: Checkpoint;
  let plan: Map<string, CheckpointTensorInfo> | undefined;
  try {
    checkpoint = await openCheckpoint(source);
    if (!quantizer) plan = planCausalLMWeights(shapes, checkpoint.tensors, source.name).plan;
  } catch (e) {
    shapes.dispose();
    throw e;
  }
  // The tokenizer is read before the model exists, so its failure leaves nothing to free.
  let tokenizer: Tokenizer | null;
  try {
    tokenizer = await readTokenizer(source, options);
  } catch (e) {
    shapes.dispose();
    throw e;
  }
  if (quantizer) {
    // Checked against the shapes-only model inside, then streamed layer by layer.
    try {
      const model = await loadQuantizedCausalLM(rawConfig, shapes, checkpoint, quantizer, { backend: options.backend, dtype, file: source.name });
      model.eval();
      return { model, tokenizer, rawConfig, source };
    } finally {
      shapes.dispose();
    }
  }
  shapes.dispose();
  // Every parameter is overwritten from the checkpoint (the plan covers them all), so the
  // model starts as zeros: no random draws, no transient init tensors.
  const model = causalLMFromConfig(rawConfig, { backend: options.backend, dtype, randomInit: false });
  try {
    await streamCheckpointInto(model.stateDict(), plan!, checkpoint, { backend: options.backend, file: source.name });
  } catch (e) {
    model.dispose();
    throw e;
  }
  if (options.attnImplementation) model.setAttnImplementation?.(options.attnImplementation);
  model.eval();
  return { model, tokenizer, rawConfig, source };
}

async function readTokenizer(source: ModelSource, options: FromPretrainedOptions): Promise<Tokenizer | null> {
  const want = options.tokenizer ?? true;
  return want && (await source.has('tokenizer.json')) ? Tokenizer.fromSource(source) : null;
}

/**
 * The quantizer's plan for this checkpoint, or null for a plain load. A checkpoint whose
 * weights are stored quantized (`quantization_config` in `config.json`) needs a quantizer.
 */
function quantizerPlan(quantize: unknown, rawConfig: RawConfig, configFile: string, backend: BackendName | undefined): LoadQuantizerPlan | null {
  const stored = rawConfig.quantization_config;
  if (quantize === undefined) {
    if (stored === undefined || stored === null) return null;
    const method = (stored as { quant_method?: unknown }).quant_method;
    throw new ConfigError(
      `'quantization_config' (quant_method ${JSON.stringify(method)}) says the weights are stored quantized; load it with a quantizer, e.g. fromPretrained(dir, { quantize: quantizeOnLoad() }) with quantizeOnLoad from @webpeft/quant (bitsandbytes 4-bit)`,
      configFile,
      'quantization_config',
    );
  }
  if (!isLoadQuantizer(quantize)) {
    throw new TypeError(`fromPretrained: 'quantize' must be a quantizer such as quantizeOnLoad({ quantType: 'nf4', doubleQuant: true }) from @webpeft/quant; got ${JSON.stringify(quantize)}`);
  }
  return quantize.plan(stored ?? undefined, configFile, (backend === undefined ? getBackend() : getBackend(backend)).name);
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
