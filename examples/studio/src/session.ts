/**
 * What the worker holds between requests: the model source (files read once and kept),
 * the tokenizer, and the current adapted model. Every training run and every adapter
 * load starts from a freshly loaded base, so methods never stack on each other.
 */
import { type CausalLM, type ModelSource, type Tokenizer, fromPretrained, generate, isHubRepoId, memoryTarget, openHubSource, openSource, openUrlSource, saveSafetensors } from '@webpeft/nn';
import { type AdapterSource, COMBINATION_TYPES, type CombinationType, type ResolvedLoraConfig, isPromptLearningType, loadPeftModel, loadPromptLearningModel, memoryFiles, readAdapterConfig } from '@webpeft/peft';
import { quantizeModel } from '@webpeft/quant';
import { type Tensor, getBackend, init, manualSeed, memory, narrow, noGrad, setBackend, tensor, tidy } from '@webpeft/tensor';
import { prepareData } from './data.js';
import { StudioError } from './errors.js';
import { type Adapted, QLORA_QUANT, attachMethod, checkSettings } from './methods.js';
import type { CombineOptions, ModelChoice, ModelInfo, Replies, TrainSettings, WorkerEvent } from './protocol.js';
import { EVAL_BATCHES, TrainControl, trainAdapted } from './training.js';

/** Files of a model folder besides the weights that a merged export carries over. */
const SIDE_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

/** The worker's state and the operations behind each request. */
export class StudioSession {
  private source: ModelSource | null = null;
  private tokenizer: Tokenizer | null = null;
  private info: ModelInfo | null = null;
  /** The base model without adapters (null while an adapted model holds it). */
  private base: CausalLM | null = null;
  private adapted: Adapted | null = null;
  private quantized = false;
  /** The run in progress, for pause/resume/stop. */
  control: TrainControl | null = null;

  constructor(private readonly emit: (e: WorkerEvent) => void) {}

  /** Opens `choice`, reads the model and its tokenizer, and reports what it is. */
  async load(choice: ModelChoice): Promise<ModelInfo> {
    this.refuseWhileTraining('load a model');
    await useWebGpu();
    const source = cachedSource(await this.open(choice));
    const name = choice.kind === 'default' ? '@webpeft/default-model' : choice.kind === 'url' ? choice.url : choice.kind === 'hub' ? choice.repo : choice.folder;
    const { model, tokenizer, rawConfig } = await fromPretrained(source);
    if (!tokenizer) {
      model.dispose();
      throw new StudioError('malformed-file', `${name}: no tokenizer.json in the model folder (the studio needs it to read text)`);
    }
    this.dropModels();
    this.source = source;
    this.tokenizer = tokenizer;
    this.base = model;
    const cfg = model.config as { model_type: string; vocab_size: number; max_position_embeddings?: number; n_positions?: number };
    const adapter = (getBackend() as { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    this.info = {
      name,
      modelType: String(rawConfig.model_type),
      parameters: model.numParameters(),
      vocabSize: cfg.vocab_size,
      maxPositions: cfg.max_position_embeddings ?? cfg.n_positions ?? 1024,
      adapter: adapter ? `${adapter.vendor} ${adapter.architecture} ${adapter.description}`.trim() : 'unknown',
    };
    return this.info;
  }

  /**
   * The source of `choice`: picked files as they are; the default model from the app's own
   * folder; other http(s) folders and Hub repos through nn's download cache (the Cache API
   * in a browser), reporting each file's progress.
   */
  private async open(choice: ModelChoice): Promise<ModelSource> {
    if (choice.kind === 'files') return openSource(choice.files);
    const onProgress = (p: { file: string; loaded: number; total: number | null; done: boolean }) => this.emit({ type: 'download', ...p });
    if (choice.kind === 'hub') {
      if (!isHubRepoId(choice.repo)) throw new StudioError('invalid-setting', `'${choice.repo}' is not a Hub repo id (expected org/name, e.g. HuggingFaceTB/SmolLM2-135M)`);
      return openHubSource(choice.repo, { onProgress });
    }
    const url = new URL(choice.url);
    if (choice.kind === 'default' || !/^https?:$/.test(url.protocol)) return openSource(url);
    return openUrlSource(url, { onProgress });
  }

  /** Trains a new adapter with `s` on a fresh base. */
  async train(s: TrainSettings): Promise<Replies['train']> {
    this.refuseWhileTraining('start another run');
    const info = this.need();
    checkSettings(s, info.maxPositions);
    // The data is read in full before any model is touched: a bad line fails here, naming it.
    const data = prepareData(s.dataName, s.text, this.tokenizer!, { seqLen: s.seqLen, batch: s.batch, packing: s.packing, completionOnly: s.completionOnly, evalBatches: EVAL_BATCHES });
    const model = await this.freshBase();
    let adapted: Adapted;
    try {
      // The adapter's initial weights come from the seed (Philox: the same bits in every runtime).
      manualSeed(s.seed);
      adapted = await attachMethod(model, s, (line) => this.emit({ type: 'log', line }));
    } catch (e) {
      model.dispose();
      throw e;
    }
    this.adapted = adapted;
    this.quantized = s.method === 'qlora';
    const t = adapted.peft.getNbTrainableParameters();
    this.emit({ type: 'log', line: `${s.method}: ${t.trainable.toLocaleString('en-US')} trainable of ${t.all.toLocaleString('en-US')} parameters; data ${data.summary}` });
    for (const w of data.warnings) this.emit({ type: 'log', line: `warning: ${w}` });
    this.control = new TrainControl();
    try {
      return await trainAdapted(adapted, data, s, this.control, this.emit);
    } finally {
      this.control = null;
    }
  }

  /** Greedy continuations of `prompt` from the base model and from the adapted one. */
  async generate(prompt: string, maxNewTokens: number): Promise<Replies['generate']> {
    this.refuseWhileTraining('generate');
    const adapted = this.needAdapter();
    const ids = this.promptIds(prompt);
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new StudioError('invalid-setting', `new tokens must be a whole number >= 1, got ${maxNewTokens}`);
    const decode = (seq: number[]) => this.tokenizer!.decode(seq.slice(ids.length));
    adapted.peft.eval();
    if (adapted.kind === 'tuner') {
      const model = adapted.peft.model as CausalLM;
      const options = { maxNewTokens, doSample: false };
      const withAdapter = await generate(model, [ids], options);
      const without = await adapted.peft.disableAdapter(() => generate(model, [ids], options));
      return { base: decode(without.sequences[0]), adapted: decode(withAdapter.sequences[0]) };
    }
    // Prompt learning changes the inputs, so its continuation runs the full forward per token.
    const peft = adapted.peft;
    return {
      base: decode(await greedy((x) => peft.base_model.forward({ inputIds: x }).logits, ids, maxNewTokens)),
      adapted: decode(await greedy((x) => peft.forward({ inputIds: x }).logits, ids, maxNewTokens)),
    };
  }

  /** The adapter as PEFT files (`adapter_config.json`, `adapter_model.safetensors`). */
  async exportAdapter(): Promise<Replies['exportAdapter']> {
    this.refuseWhileTraining('export the adapter');
    const dir = memoryFiles();
    await this.needAdapter().peft.saveAdapter(dir);
    return { files: Object.fromEntries(dir.files) };
  }

  /** Loads PEFT adapter files onto a fresh base (4-bit first when `quantizedBase`). */
  async loadAdapter(files: Record<string, Uint8Array>, quantizedBase: boolean): Promise<Replies['loadAdapter']> {
    this.refuseWhileTraining('load an adapter');
    this.need();
    const dir: AdapterSource = memoryFiles(files);
    if (!(await dir.has('adapter_config.json')) || !(await dir.has('adapter_model.safetensors'))) {
      throw new StudioError('malformed-file', `an adapter needs adapter_config.json and adapter_model.safetensors (got: ${Object.keys(files).join(', ') || 'no files'})`);
    }
    const config = await readAdapterConfig(dir);
    const model = await this.freshBase();
    try {
      if (quantizedBase) await quantizeModel(model, QLORA_QUANT);
      this.adapted = isPromptLearningType(config.peftType) ? { kind: 'prompt', peft: await loadPromptLearningModel(model, dir) } : { kind: 'tuner', peft: await loadPeftModel(model, dir) };
    } catch (e) {
      model.dispose();
      throw e;
    }
    this.quantized = quantizedBase;
    return { method: config.peftType, trainable: this.adapted.peft.getNbTrainableParameters().trainable };
  }

  /**
   * Merges the adapter into the base (a 4-bit base is dequantized first) and returns the
   * merged model folder; the adapter is then restored from its own saved files, so the
   * session keeps base and adapter side by side.
   */
  async mergeAndExport(): Promise<Replies['mergeAndExport']> {
    this.refuseWhileTraining('merge');
    const adapted = this.needAdapter();
    if (adapted.kind === 'prompt') throw new StudioError('invalid-setting', `${adapted.peft.peftConfig.get('default')?.peftType ?? 'prompt learning'}: virtual tokens cannot be merged into the weights (PEFT cannot either); download the adapter instead`);
    if (adapted.peft.peftConfig.get('default')?.peftType === 'BOTTLENECK') {
      throw new StudioError('invalid-setting', 'BOTTLENECK: a bottleneck adapter adds a nonlinear module (down-projection, activation, up-projection), which no base weight can express, so it cannot be merged; download the adapter instead');
    }
    const { files: adapterFiles } = await this.exportAdapter();
    const quantized = this.quantized;
    const merged = (await adapted.peft.mergeAndUnload(quantized ? { dequantize: true } : {})) as CausalLM;
    this.adapted = null;
    const out = memoryTarget();
    try {
      await saveSafetensors(out, 'model.safetensors', merged.stateDict(), { format: 'pt' });
      for (const f of SIDE_FILES) if (await this.source!.has(f)) await out.writeBytes(f, await this.source!.readBytes(f));
    } finally {
      merged.dispose();
      await this.loadAdapter(adapterFiles, quantized);
    }
    return { files: Object.fromEntries(out.files) };
  }

  /**
   * Combines the current LoRA adapter with another one's PEFT files (PEFT's
   * `add_weighted_adapter`: `weights` for the current and the other adapter, and the
   * combination type and its options). The combined adapter replaces the current one
   * (reloaded from its own files onto a fresh base, so it is the session's `default`).
   */
  async combineAdapter(files: Record<string, Uint8Array>, weights: [number, number], options: CombineOptions): Promise<Replies['combineAdapter']> {
    this.refuseWhileTraining('combine adapters');
    const adapted = this.needAdapter();
    const type = adapted.peft.peftConfig.get('default')?.peftType;
    if (adapted.kind !== 'tuner' || type !== 'LORA') throw new StudioError('invalid-setting', `combining adapters works on LoRA adapters (PEFT's add_weighted_adapter); the current adapter is ${type ?? 'prompt learning'}`);
    if (!(COMBINATION_TYPES as readonly string[]).includes(options.combinationType)) throw new StudioError('invalid-setting', `combination type must be one of ${COMBINATION_TYPES.join(', ')}, got ${JSON.stringify(options.combinationType)}`);
    const dir: AdapterSource = memoryFiles(files);
    if (!(await dir.has('adapter_config.json')) || !(await dir.has('adapter_model.safetensors'))) {
      throw new StudioError('malformed-file', `an adapter needs adapter_config.json and adapter_model.safetensors (got: ${Object.keys(files).join(', ') || 'no files'})`);
    }
    const peft = adapted.peft;
    await peft.loadAdapter(dir, 'other');
    try {
      await peft.addWeightedAdapter(['default', 'other'], weights, 'combined', { ...options, combinationType: options.combinationType as CombinationType });
    } catch (e) {
      peft.deleteAdapter('other');
      throw new StudioError('invalid-setting', (e as Error).message);
    }
    const rank = (peft.peftConfig.get('combined') as ResolvedLoraConfig).r;
    const out = memoryFiles();
    await peft.saveAdapter(out, { adapterNames: ['combined'] });
    // Saved in a subfolder (only `default` sits at the root): its files become the new default.
    const combined = Object.fromEntries([...out.files].filter(([f]) => f.startsWith('combined/')).map(([f, b]) => [f.slice('combined/'.length), b]));
    await this.loadAdapter(combined, this.quantized);
    return { combinationType: options.combinationType, rank };
  }

  /** Logits `[1, T, V]` of the adapted model for `prompt`'s token ids (eval mode, no gradients). */
  async logits(prompt: string): Promise<Replies['logits']> {
    this.refuseWhileTraining('compute logits');
    const adapted = this.needAdapter();
    const ids = this.promptIds(prompt);
    adapted.peft.eval();
    const logits = noGrad(() => tidy(() => adapted.peft.forward({ inputIds: tensor(Int32Array.from(ids), [1, ids.length], { dtype: 'i32' }) }).logits));
    try {
      return { inputIds: ids, shape: [...logits.shape], logits: Array.from(await logits.data()) };
    } finally {
      logits.dispose();
    }
  }

  /** Frees the models (the source's bytes go with the session). */
  dispose(): void {
    this.refuseWhileTraining('dispose the session');
    this.dropModels();
    this.info = null;
    this.source = null;
  }

  private promptIds(prompt: string): number[] {
    const ids = this.tokenizer!.encode(prompt, { addSpecialTokens: false });
    if (ids.length === 0) throw new StudioError('invalid-setting', 'the prompt is empty: type a few words to continue');
    return ids;
  }

  private need(): ModelInfo {
    if (!this.info || !this.source) throw new StudioError('invalid-setting', 'no model loaded: load a model first');
    return this.info;
  }

  private needAdapter(): Adapted {
    if (!this.adapted) throw new StudioError('no-adapter', 'no adapter yet: train one, or load adapter files');
    return this.adapted;
  }

  private refuseWhileTraining(what: string): void {
    if (this.control) throw new StudioError('invalid-setting', `cannot ${what} while training: stop the run first`);
  }

  /** The unadapted base: the loaded one the first time, else read again from the kept source. */
  private async freshBase(): Promise<CausalLM> {
    this.dropModels();
    const { model } = await fromPretrained(this.source!, { tokenizer: false });
    return model;
  }

  private dropModels(): void {
    // An adapted model owns its base: disposing it frees both.
    this.adapted?.peft.dispose();
    this.base?.dispose();
    this.adapted = null;
    this.base = null;
  }
}

/**
 * Makes webgpu the current backend, initialising it only when this thread has not: a
 * second `init` would replace the device and orphan what lives on the first.
 */
async function useWebGpu(): Promise<void> {
  try {
    memory('webgpu'); // throws while webgpu is not initialised
  } catch {
    await init({ backend: 'webgpu' });
  }
  setBackend('webgpu');
}

/** Greedy decoding without a KV cache: `maxNewTokens` full forwards, argmax of the last row. */
async function greedy(logitsOf: (ids: Tensor) => Tensor, prompt: number[], maxNewTokens: number): Promise<number[]> {
  const seq = [...prompt];
  for (let i = 0; i < maxNewTokens; i++) {
    const last = noGrad(() =>
      tidy(() => {
        const l = logitsOf(tensor(Int32Array.from(seq), [1, seq.length], { dtype: 'i32' }));
        return narrow(l, 1, l.shape[1] - 1, 1);
      }),
    );
    const row = await last.data();
    last.dispose();
    let best = 0;
    for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
    seq.push(best);
  }
  return seq;
}

/** Reads each file of `source` once (a URL is fetched once; every later base reload is from memory). */
function cachedSource(source: ModelSource): ModelSource {
  const bytes = new Map<string, Promise<Uint8Array>>();
  const readBytes = (file: string): Promise<Uint8Array> => {
    const kept = bytes.get(file);
    if (kept) return kept;
    const read = source.readBytes(file);
    bytes.set(file, read);
    // A failed read is not kept: the next call tries again.
    read.catch(() => bytes.delete(file));
    return read;
  };
  return {
    name: source.name,
    has: (file: string) => (bytes.has(file) ? Promise.resolve(true) : source.has(file)),
    readBytes,
    readText: async (file: string) => new TextDecoder().decode(await readBytes(file)),
  };
}
