import { type CausalLMInput, type CausalLMOutput, type ExpectedTensor, type SourceInput, Module, inConfigFile } from '@webpeft/nn';
import { type Tensor, ShapeError } from '@webpeft/tensor';
import { LoraLinear } from './tuners/lora/linear.js';
import type { PeftConfig } from './config.js';
import { countParameters, formatTrainableParameters } from './count.js';
import { checkpointable, isGradientCheckpointing } from './gradient-checkpointing.js';
import { ensureBuiltinMethods } from './builtins.js';
import { type MergeAndUnloadOptions, type TunerMethod, getTunerMethod } from './registry.js';
import { type AnyTunerLayer, TunerModel } from './tuners/tuner-model.js';
import { type LoraConfig, isBaseRewritingInit } from './tuners/lora/config.js';
import type { IA3Config } from './tuners/ia3/config.js';
import { type WeightedAdapterOptions, addWeightedAdapter } from './tuners/lora/weighted.js';
import { type BaseInitOptions, checkNoPendingInit, initLoraFromBase } from './tuners/lora/base-init.js';
import {
  type AdapterWeightsFile,
  type LoadAdapterOptions,
  adapterConfigPath,
  asSource,
  checkAdapterWeights,
  copyAdapterWeights,
  expectedTensors,
  loadAdapterWeights,
  readAdapterConfig,
  readAdapterWeights,
  saveAdapter,
} from './io/adapter-files.js';
import { planOnMeta } from './tuners/backend-of.js';
import type { ModulesToSaveWrapper } from './tuners/modules-to-save.js';
import { BASE_ADAPTER, type MixedBatchLayer, adapterNamesOf } from './tuners/mixed-batch.js';
import type { AdapterSource, AdapterTarget } from './io/file-access.js';

/** A causal LM's input with per-sample adapter names (PEFT's `adapter_names`; `'__base__'`: no adapter), `adapterNames.length === B`. */
export type MixedBatchInput = CausalLMInput & { adapterNames: readonly string[] };

/**
 * A model with PEFT adapters (PEFT's `PeftModel`). Parameters are named
 * `base_model.model.<path>`, as in PEFT's state dicts; the base is frozen and only
 * the active adapter's parameters (plus the config's biases and modules to save) train.
 *
 * @example
 * const peft = getPeftModel(model, { peftType: 'LORA', r: 8, targetModules: ['q_proj', 'v_proj'] });
 * peft.printTrainableParameters(); // trainable params: 4,194,304 || all params: ...
 */
export class PeftModel extends Module {
  readonly base_model: TunerModel;
  /** Resolved config per adapter. */
  readonly peftConfig = new Map<string, PeftConfig>();
  private active: string[] = [];

  /**
   * Wraps `model` with adapter `adapterName`. With `weights` (a PEFT weights file, as
   * `loadPeftModel` reads it) the adapter is checked against the file before anything
   * is allocated and then filled from it; on any error `model` is left as it was.
   */
  constructor(model: Module, config: PeftConfig, adapterName = 'default', weights?: AdapterWeightsFile) {
    super();
    ensureBuiltinMethods();
    this.base_model = this.registerModule('base_model', new TunerModel(model));
    if (weights) this.addAdapterFromWeights(adapterName, config, weights);
    else this.addAdapter(adapterName, config);
    this.setAdapter(adapterName);
  }

  /** The user's model (with adapter layers inside). */
  get model(): Module {
    return this.base_model.model;
  }

  /** The active adapter (the first when several are active). */
  get activeAdapter(): string {
    return this.active[0];
  }

  /** Active adapters. */
  get activeAdapters(): string[] {
    return [...this.active];
  }

  /**
   * Calls the wrapped model's `forward` with the same arguments (a causal LM takes
   * `{ inputIds, labels, ... }` and returns `{ logits, loss }`).
   *
   * `adapterNames` (PEFT's `adapter_names`), one name per sample (`'__base__'`: no
   * adapter), runs a mixed-adapter batch: see {@link withAdapterNames}.
   * @example const { logits } = peft.forward({ inputIds, adapterNames: ['a', 'b', '__base__'] }); // inputIds [3, T]
   */
  forward(input: CausalLMInput): CausalLMOutput;
  forward(input: MixedBatchInput): CausalLMOutput;
  forward(...args: unknown[]): unknown;
  forward(...args: unknown[]): unknown {
    checkNoPendingInit(this);
    const names = adapterNamesOf('PeftModel', args[0]);
    if (names === undefined) return this.base_model.forward(...args);
    const { adapterNames: _, ...input } = args[0] as CausalLMInput & { adapterNames: unknown };
    // PEFT's per-layer checks, made once before anything runs (a refused forward allocates nothing).
    const rows = (input.inputIds ?? input.inputsEmbeds)?.shape[0];
    if (rows !== undefined && rows !== names.length) {
      throw new ShapeError(`PeftModel.forward: length of adapterNames should be the same as the number of inputs, but got ${names.length} and ${rows} respectively`);
    }
    if (this.model.training) throw new Error('PeftModel.forward: cannot pass adapterNames when the model is in training mode (mixed-adapter batches are for inference, as in PEFT); call eval() first');
    return this.withAdapterNames(names, () => this.base_model.forward(input, ...args.slice(1)));
  }

  /**
   * Runs `fn` with a mixed-adapter batch (PEFT's `adapter_names`): every forward of the
   * model until `fn` returns or its promise settles takes row `i` of its batch through
   * adapter `names[i]`, or through the base model alone for `'__base__'`, whatever the
   * active adapters are. Use it around `generate(peft.model, prompt, ...)` (one name per
   * prompt row). As in PEFT 0.21: LoRA adapters only (linear and embedding layers,
   * modules to save); names must exist; each batch must have `names.length` rows; training
   * mode, merged adapters and DoRA adapters are refused. Gradients flow in eval mode (the
   * rows are gathered and scattered by differentiable ops).
   * @example
   * const { sequences } = await peft.withAdapterNames(['a', 'b', '__base__'], () => generate(peft.model as CausalLM, prompts, { maxNewTokens: 8 }));
   */
  withAdapterNames<T>(names: readonly string[], fn: () => T): T {
    const layers = this.mixedBatchLayers(names);
    const prev = layers.map((l) => l.mixedAdapterNames);
    const list = [...names];
    layers.forEach((l) => (l.mixedAdapterNames = list));
    const restore = () => layers.forEach((l, i) => (l.mixedAdapterNames = prev[i]));
    return runThenRestore(fn, restore);
  }

  /** The layers a mixed batch sets, after PEFT's model-level checks (LoRA only, names that exist). */
  private mixedBatchLayers(names: readonly string[]): MixedBatchLayer[] {
    // Checked as untyped input (Array.isArray would widen the readonly type to any[]).
    const raw: unknown = names;
    if (!Array.isArray(raw) || raw.length === 0 || raw.some((n) => typeof n !== 'string')) {
      throw new TypeError('withAdapterNames: adapterNames must be a non-empty array of adapter names, one per sample');
    }
    const peftType = this.method().peftType;
    if (peftType !== 'LORA') throw new Error(`withAdapterNames: adapterNames (mixed-adapter batches) works with LoRA adapters only, as in PEFT 0.21 (which ignores it for other methods); this model's adapters are ${peftType}`);
    const out: MixedBatchLayer[] = [];
    const expected = new Set<string>();
    for (const [path, layer] of this.base_model.tunerLayers()) {
      if (!('mixedAdapterNames' in layer)) throw new Error(`withAdapterNames: the layer at '${path}' (${layer.constructor.name}) cannot run a mixed-adapter batch`);
      for (const n of layer.adapterNames()) expected.add(n);
      out.push(layer as AnyTunerLayer & MixedBatchLayer);
    }
    const unexpected = [...new Set(names)].filter((n) => n !== BASE_ADAPTER && !expected.has(n)).sort();
    if (unexpected.length > 0) throw new Error(`withAdapterNames: trying to infer with non-existing adapter(s): ${unexpected.join(', ')} (have: ${[...expected].join(', ')}; '${BASE_ADAPTER}' means no adapter)`);
    // The layers check these again at each forward (a merge inside the scope); checked here first so a refused call runs nothing.
    for (const [path, layer] of this.base_model.tunerLayers()) {
      if (layer.merged) throw new Error(`withAdapterNames: cannot pass adapterNames when there are merged adapters (${layer.mergedAdapters.join(', ')} in '${path}'), please call unmerge() first`);
      if (!(layer instanceof LoraLinear)) continue;
      const dora = [...new Set(names)].filter((n) => n !== BASE_ADAPTER && layer.hasAdapter(n) && layer.weights(n).magnitude !== null);
      if (dora.length > 0) throw new Error(`withAdapterNames: cannot pass adapterNames when DoRA is enabled (adapter ${dora.join(', ')} uses DoRA in '${path}'; PEFT 0.21 has no mixed-batch DoRA)`);
    }
    for (const [, w] of this.base_model.savedModules()) out.push(w);
    return out;
  }

  /**
   * Gradient checkpointing on the wrapped model (as transformers' PeftModel forwards
   * `gradient_checkpointing_enable`): its decoder layers, adapters included, keep only
   * their inputs and are recomputed in backward. Throws when the wrapped model has no
   * decoder layers to checkpoint. Returns `this`.
   */
  gradientCheckpointingEnable(): this {
    checkpointable('PeftModel', this.model).gradientCheckpointingEnable();
    return this;
  }

  /** Turns the wrapped model's gradient checkpointing off. Returns `this`. */
  gradientCheckpointingDisable(): this {
    checkpointable('PeftModel', this.model).gradientCheckpointingDisable();
    return this;
  }

  /** Whether the wrapped model checkpoints its decoder layers. */
  get isGradientCheckpointing(): boolean {
    return isGradientCheckpointing(this.model);
  }

  /**
   * Adds adapter `name` (not activated; see {@link setAdapter}). All adapters of a model
   * belong to one method. On any error the model is left as it was.
   */
  addAdapter(name: string, config: LoraConfig | IA3Config | PeftConfig): void {
    this.checkNewAdapter(name, config);
    const resolved = this.base_model.inject(name, config);
    this.peftConfig.set(name, resolved);
    this.adapterAdded();
  }

  /**
   * Adds adapter `name` filled from a weights file, transactionally: the adapter is
   * first built on the `meta` backend (shapes only) to learn its checkpoint keys,
   * shapes and dtypes, which are checked against the file's header; only then is it
   * built for real and its weights copied. Any error (a config the method rejects, a
   * missing, unexpected, mis-shaped or wrongly typed tensor) leaves the model's module
   * tree, parameters, trainability and live tensors exactly as before.
   */
  addAdapterFromWeights(name: string, config: PeftConfig, weights: AdapterWeightsFile): void {
    this.checkNewAdapter(name, config);
    checkAdapterWeights(this.planAdapter(name, config), weights);
    const trainable = this.model.parameters().map((p) => [p, p.requiresGrad] as const);
    const { config: resolved, undo } = this.base_model.injectUndoable(name, config);
    try {
      this.peftConfig.set(name, resolved);
      copyAdapterWeights(this.adapterStateDict(name), weights);
    } catch (e) {
      this.peftConfig.delete(name);
      undo();
      for (const [p, g] of trainable) p.requiresGrad = g;
      throw e;
    }
    this.adapterAdded();
  }

  /**
   * The checkpoint keys of adapter `name` as `config` would make it, with their shapes
   * and dtype kinds, found by building the adapter on the `meta` backend and taking it
   * out again: nothing is allocated and the model is unchanged after.
   */
  planAdapter(name: string, config: PeftConfig): Map<string, ExpectedTensor> {
    return planOnMeta(() => {
      const { config: resolved, undo } = this.base_model.injectUndoable(name, config);
      try {
        this.peftConfig.set(name, resolved);
        return expectedTensors(this.adapterStateDict(name));
      } finally {
        this.peftConfig.delete(name);
        undo();
      }
    });
  }

  private checkNewAdapter(name: string, config: PeftConfig): void {
    if (this.peftConfig.has(name)) throw new Error(`addAdapter: adapter '${name}' already exists`);
    const first = [...this.peftConfig.values()][0];
    if (first && first.peftType !== config.peftType) {
      throw new Error(`addAdapter: cannot add a ${config.peftType} adapter to a model with ${first.peftType} adapters`);
    }
  }

  private adapterAdded(): void {
    for (const layer of this.layers()) layer.setActiveAdapters(layer.activeAdapters.filter((a) => this.active.includes(a)));
    this.refreshTrainable();
  }

  /** Makes `names` the active adapter(s); only they train. */
  setAdapter(names: string | string[]): void {
    const list = typeof names === 'string' ? [names] : names;
    for (const n of list) if (!this.peftConfig.has(n)) throw new Error(`setAdapter: no adapter '${n}' (have: ${[...this.peftConfig.keys()].join(', ')})`);
    // Checked before anything switches: two active adapters may not save the same module.
    for (const [, w] of this.base_model.savedModules()) checkOneSavedCopy(w, list);
    this.active = [...list];
    for (const layer of this.layers()) layer.setActiveAdapters(list);
    for (const [, w] of this.base_model.savedModules()) w.setActiveAdapters(list);
    this.refreshTrainable();
  }

  /** Deletes adapter `name` (its tensors are disposed); the active set drops it. */
  deleteAdapter(name: string): void {
    if (!this.peftConfig.has(name)) throw new Error(`deleteAdapter: no adapter '${name}'`);
    for (const layer of this.layers()) if (layer.hasAdapter(name)) layer.deleteAdapter(name);
    for (const [path, w] of this.base_model.savedModules()) {
      w.deleteAdapter(name);
      if (w.adapterNames().length === 0) this.model.replaceSubmodule(path, w.original_module);
    }
    this.peftConfig.delete(name);
    this.active = this.active.filter((n) => n !== name);
    if (this.active.length === 0 && this.peftConfig.size > 0) this.active = [[...this.peftConfig.keys()][0]];
    this.setAdapter(this.active);
  }

  /**
   * Runs `fn` with every adapter disabled (base model only), restoring them after,
   * also when `fn` throws or its promise settles.
   * @example const baseLogits = peft.disableAdapter(() => peft.forward(ids));
   */
  disableAdapter<T>(fn: () => T): T {
    const layers = this.layers();
    const prev = layers.map((l) => l.disabled);
    // Modules to save run their original while disabled (PEFT's ModulesToSaveWrapper).
    const saved = this.base_model.savedModules().map(([, w]) => w);
    const prevSaved = saved.map((w) => w.disabled);
    layers.forEach((l) => l.enableAdapters(false));
    saved.forEach((w) => (w.disabled = true));
    const restore = () => {
      layers.forEach((l, i) => l.enableAdapters(!prev[i]));
      saved.forEach((w, i) => (w.disabled = prevSaved[i]));
    };
    return runThenRestore(fn, restore);
  }

  /** The method of this model's adapters (from the registry). */
  method(): TunerMethod<PeftConfig> {
    const first = [...this.peftConfig.values()][0];
    if (!first) throw new Error('PeftModel: the model has no adapters left (after mergeAndUnload or unload)');
    return getTunerMethod(first.peftType, 'PeftModel');
  }

  /**
   * Folds adapters (default: active) into the base weights through the method's layers;
   * forward then uses the base only. Full-precision bases change before this returns; a
   * 4-bit base re-quantizes, so always `await` it. Methods that cannot merge throw,
   * naming the method.
   */
  async merge(adapterNames: string[] = this.active): Promise<void> {
    for (const layer of this.layers()) {
      const names = adapterNames.filter((n) => layer.hasAdapter(n));
      if (names.length > 0) await layer.merge(names);
    }
  }

  /** Restores the base weights of every merged layer (await it, as `merge`). */
  async unmerge(): Promise<void> {
    for (const layer of this.layers()) await layer.unmerge();
  }

  /**
   * Merges adapters into the base and returns the user's model without adapter
   * layers (their tensors are disposed). Each layer's replacement comes from the
   * method (`unloadLayer`, e.g. LoRA's full-precision `Linear` with `dequantize`);
   * otherwise the layer merges and its base stays.
   */
  async mergeAndUnload(options: MergeAndUnloadOptions = {}): Promise<Module> {
    const method = this.method();
    if (options.dequantize && !method.unloadLayer) throw new Error(`mergeAndUnload: ${method.peftType} does not support the dequantize option`);
    const names = options.adapterNames ?? this.active;
    for (const [path, layer] of this.base_model.tunerLayers()) {
      const held = names.filter((n) => layer.hasAdapter(n));
      let replacement: Module;
      if (method.unloadLayer) replacement = await method.unloadLayer(layer, held, options);
      else {
        if (held.length > 0) await layer.merge(held);
        replacement = layer.base_layer;
      }
      this.model.replaceSubmodule(path, replacement);
      disposeAdapters(layer);
    }
    // A saved module becomes the active adapter's copy, as PEFT's merge_and_unload.
    this.unwrapSavedModules((w) => (w.activeAdapter !== null && names.includes(w.activeAdapter) ? w.activeAdapter : null));
    this.peftConfig.clear();
    return this.model;
  }

  /** Returns the user's model without adapter layers and without merging (adapters discarded). */
  async unload(): Promise<Module> {
    for (const [path, layer] of this.base_model.tunerLayers()) {
      await layer.unmerge();
      this.model.replaceSubmodule(path, layer.base_layer);
      disposeAdapters(layer);
    }
    this.unwrapSavedModules(() => null);
    this.peftConfig.clear();
    return this.model;
  }

  /**
   * Replaces every `modules_to_save` wrapper by the copy of the adapter `keep` names
   * (or by the original for null) and disposes what no longer belongs to the model.
   */
  private unwrapSavedModules(keep: (w: ModulesToSaveWrapper) => string | null): void {
    for (const [path, w] of this.base_model.savedModules()) {
      const name = keep(w);
      const replacement = (name !== null ? w.copyOf(name) : undefined) ?? w.original_module;
      this.model.replaceSubmodule(path, replacement);
      for (const a of w.adapterNames()) if (w.copyOf(a) !== replacement) w.deleteAdapter(a);
      if (replacement !== w.original_module) {
        // The original's tensors may be shared (a tied lm_head): free only what the model no longer holds.
        const live = new Set(this.model.parameters());
        for (const t of w.original_module.parameters()) if (!live.has(t)) t.dispose();
      }
    }
  }

  /**
   * Saves adapters (default: all) in PEFT's format; `default` at the root, others in subfolders.
   * @example const dir = memoryFiles(); await peft.saveAdapter(dir);
   */
  saveAdapter(target: AdapterTarget | string, options: { adapterNames?: string[] } = {}): Promise<void> {
    return saveAdapter(this, target, options);
  }

  /**
   * Loads a PEFT-format adapter as `adapterName` (inference mode unless `isTrainable`).
   * The config and every tensor's shape and dtype are checked against the files before
   * anything is allocated; any error (listing every missing, unexpected, mis-shaped or
   * wrongly typed key at once) leaves the model as it was.
   */
  async loadAdapter(input: AdapterSource | SourceInput, adapterName: string, options: LoadAdapterOptions = {}): Promise<void> {
    const source = asSource(input);
    const subfolder = options.subfolder ?? '';
    const config = await readAdapterConfig(source, subfolder);
    const weights = await readAdapterWeights(source, subfolder);
    // The method's own checks (targets not found, option conflicts) blame the config file.
    inConfigFile(adapterConfigPath(source, subfolder), () => this.addAdapterFromWeights(adapterName, { ...config, inferenceMode: !(options.isTrainable ?? false) }, weights));
    // PiSSA / LoftQ: rebuild the residual base from the current one, as PEFT does (see loadPeftModel).
    if (isBaseRewritingInit((config as { initLoraWeights?: unknown }).initLoraWeights)) await initLoraFromBase(this, { adapterName, keepAdapterWeights: true });
  }

  /** Copies adapter `name`'s weights from PEFT-format files into the existing adapter (all checked first), then refreshes trainability. */
  async loadAdapterWeights(input: AdapterSource | SourceInput, name: string, subfolder = ''): Promise<void> {
    await loadAdapterWeights(this.adapterStateDict(name), asSource(input), subfolder);
    this.refreshTrainable();
  }

  /** PEFT's `add_weighted_adapter` for LoRA adapters (see {@link addWeightedAdapter}). */
  addWeightedAdapter(adapters: string[], weights: number[], name: string, options: WeightedAdapterOptions = {}): Promise<void> {
    return addWeightedAdapter(this, adapters, weights, name, options);
  }

  /** Runs pending PiSSA / LoftQ initialisations (see {@link initLoraFromBase}); returns the layers initialised. */
  initLoraFromBase(options: BaseInitOptions = {}): Promise<string[]> {
    return initLoraFromBase(this, options);
  }

  /** Trainable and total parameter counts (PEFT's `get_nb_trainable_parameters`). */
  getNbTrainableParameters(): { trainable: number; all: number } {
    return countParameters(this);
  }

  /**
   * Prints (with `log`, default `console.log`) and returns PEFT's report line:
   * `trainable params: 294,912 || all params: ... || trainable%: 0.2364`.
   */
  printTrainableParameters(log: (line: string) => void = console.log): string {
    const line = formatTrainableParameters(this.getNbTrainableParameters());
    log(line);
    return line;
  }

  /**
   * Adapter `name`'s tensors under PEFT's checkpoint keys
   * (`base_model.model.<path>.lora_A.weight`, ...), including trained biases and
   * modules to save. The tensors are live parameters, not copies.
   */
  adapterStateDict(name: string = this.activeAdapter): Map<string, Tensor> {
    const config = this.peftConfig.get(name);
    if (!config) throw new Error(`adapterStateDict: no adapter '${name}'`);
    const out = new Map<string, Tensor>();
    const prefix = 'base_model.model.';
    for (const [path, layer] of this.base_model.tunerLayers()) {
      if (!layer.hasAdapter(name)) continue;
      for (const [k, t] of layer.adapterStateDict(name)) out.set(`${prefix}${path}.${k}`, t);
    }
    const params = new Map(this.model.namedParameters());
    for (const key of this.extraTrainableNames(config, name)) {
      const t = params.get(key);
      if (t) out.set(prefix + key, t);
    }
    // A module to save is stored under its own keys (`lm_head.weight`), as PEFT's get_peft_model_state_dict writes it.
    for (const [path, w] of this.base_model.savedModules()) {
      const copy = w.copyOf(name);
      if (copy) for (const [n, t] of copy.namedParameters()) out.set(`${prefix}${path}.${n}`, t);
    }
    return out;
  }

  /** Base parameter names (relative to the user's model) that `config` trains: its biases (modules to save are per-adapter copies, see {@link ModulesToSaveWrapper}). */
  extraTrainableNames(config: PeftConfig, adapterName?: string): string[] {
    const method = getTunerMethod(config.peftType, 'PeftModel');
    const holders = new Set(this.base_model.tunerLayers().filter(([, l]) => adapterName === undefined || l.hasAdapter(adapterName)).map(([p]) => p));
    // A wrapped layer's own bias belongs to the adapters that wrap it.
    const names = (method.trainableBiases ? method.trainableBiases(config, this.model) : []).filter(
      (n) => !n.endsWith('.base_layer.bias') || holders.has(n.slice(0, -'.base_layer.bias'.length)),
    );
    return [...new Set(names)];
  }

  /** Freezes everything, then enables the active adapters' parameters, biases and modules to save. */
  refreshTrainable(): void {
    for (const p of this.model.parameters()) p.requiresGrad = false;
    const params = new Map(this.model.namedParameters());
    for (const name of this.active) {
      const config = this.peftConfig.get(name);
      if (!config || config.inferenceMode) continue;
      for (const layer of this.layers()) {
        if (layer.hasAdapter(name)) for (const t of layer.adapterParameters(name)) t.requiresGrad = true;
      }
      for (const key of this.extraTrainableNames(config, name)) {
        const t = params.get(key);
        if (t) t.requiresGrad = true;
      }
      for (const [, w] of this.base_model.savedModules()) for (const t of w.copyOf(name)?.parameters() ?? []) t.requiresGrad = true;
    }
  }

  /** Sets an adapter's inference mode (frozen when true) and refreshes trainability. */
  setInferenceMode(name: string, inferenceMode: boolean): void {
    const c = this.peftConfig.get(name);
    if (!c) throw new Error(`setInferenceMode: no adapter '${name}'`);
    this.peftConfig.set(name, { ...c, inferenceMode });
    this.refreshTrainable();
  }

  private layers(): AnyTunerLayer[] {
    return this.base_model.tunerLayers().map(([, l]) => l);
  }
}

/** Disposes every adapter tensor of a layer that left the model. */
function disposeAdapters(layer: AnyTunerLayer): void {
  for (const a of layer.adapterNames()) for (const t of layer.adapterParameters(a)) t.dispose();
}

/** Throws (before anything switches) when two of `active` hold a copy in `w`. */
function checkOneSavedCopy(w: ModulesToSaveWrapper, active: string[]): void {
  const held = active.filter((n) => w.copyOf(n) !== undefined);
  if (held.length > 1) throw new Error(`setAdapter: adapters ${held.join(', ')} each save their own copy of a module in modulesToSave; only one of them can be active`);
}

/**
 * `fn()`, then `restore()` once it has finished: at once for a plain value or a throw, when
 * it settles for a promise (an async `generate` runs under the scoped state to its end).
 */
function runThenRestore<T>(fn: () => T, restore: () => void): T {
  let result: T;
  try {
    result = fn();
  } catch (e) {
    restore();
    throw e;
  }
  if (result instanceof Promise) return result.finally(restore) as T;
  restore();
  return result;
}
