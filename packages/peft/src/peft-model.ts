import type { LoraConfig } from './tuners/lora/config.js';
import type { IA3Config } from './tuners/ia3/config.js';
import { type CausalLMInput, type CausalLMOutput, type LinearLike, type SourceInput, Linear, Module } from '@webpeft/nn';
import { type Tensor, assign, noGrad } from '@webpeft/tensor';
import type { PeftConfig } from './config.js';
import { countParameters, formatTrainableParameters } from './count.js';
import { ensureBuiltinMethods } from './builtins.js';
import { getPeftMethod } from './registry.js';
import { TunerModel } from './tuners/tuner-model.js';
import { LoraLinear } from './tuners/lora/linear.js';
import { type CombinationType, addWeightedAdapter } from './tuners/lora/weighted.js';
import { type LoadAdapterOptions, loadAdapter, saveAdapter } from './io/adapter-files.js';
import type { AdapterSource, AdapterTarget } from './io/file-access.js';
import { type PrefixTuningConfig, type PromptTuningConfig, isPromptLearning } from './prompt/config.js';
import { type PromptableModel, PromptLearningModel } from './prompt/prompt-model.js';

/** Options of {@link PeftModel.mergeAndUnload}. */
export interface MergeAndUnloadOptions {
  /** Adapters to merge (default: the active ones). */
  adapterNames?: string[];
  /**
   * Replace each wrapped linear-like layer by a plain f32 `Linear` built from the
   * merged weight (keeps full precision over a quantized base). Default false: the
   * merged weight goes back into the base through `loadWeight` (a 4-bit base re-quantizes).
   */
  dequantize?: boolean;
}

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

  constructor(model: Module, config: PeftConfig, adapterName = 'default') {
    super();
    ensureBuiltinMethods();
    this.base_model = this.registerModule('base_model', new TunerModel(model));
    this.addAdapter(adapterName, config);
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
   */
  forward(input: CausalLMInput): CausalLMOutput;
  forward(...args: unknown[]): unknown;
  forward(...args: unknown[]): unknown {
    return this.base_model.forward(...args);
  }

  /** Adds adapter `name` (not activated; see {@link setAdapter}). */
  addAdapter(name: string, config: LoraConfig | IA3Config | PeftConfig): void {
    if (this.peftConfig.has(name)) throw new Error(`addAdapter: adapter '${name}' already exists`);
    const first = [...this.peftConfig.values()][0];
    if (first && first.peftType !== config.peftType) {
      throw new Error(`addAdapter: cannot add a ${config.peftType} adapter to a model with ${first.peftType} adapters`);
    }
    const resolved = this.base_model.inject(name, config);
    this.peftConfig.set(name, resolved);
    for (const [, layer] of this.base_model.tunerLayers()) layer.activeAdapters = layer.activeAdapters.filter((a) => this.active.includes(a));
    this.refreshTrainable();
  }

  /** Makes `names` the active adapter(s); only they train. */
  setAdapter(names: string | string[]): void {
    const list = typeof names === 'string' ? [names] : names;
    for (const n of list) if (!this.peftConfig.has(n)) throw new Error(`setAdapter: no adapter '${n}' (have: ${[...this.peftConfig.keys()].join(', ')})`);
    this.active = [...list];
    for (const [, layer] of this.base_model.tunerLayers()) {
      const held = new Set(layer.adapterNames());
      layer.activeAdapters = list.filter((n) => held.has(n));
    }
    this.refreshTrainable();
  }

  /** Deletes adapter `name` (its tensors are disposed); the active set drops it. */
  deleteAdapter(name: string): void {
    if (!this.peftConfig.has(name)) throw new Error(`deleteAdapter: no adapter '${name}'`);
    for (const [, layer] of this.base_model.tunerLayers()) if (layer.adapterNames().includes(name)) layer.deleteAdapter(name);
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
    const layers = this.base_model.tunerLayers().map(([, l]) => l);
    const prev = layers.map((l) => l.disabled);
    layers.forEach((l) => (l.disabled = true));
    const restore = () => layers.forEach((l, i) => (l.disabled = prev[i]));
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

  /**
   * Folds adapters (default: active) into the base weights; forward then uses the base
   * only. Full-precision bases change before this returns; a 4-bit base re-quantizes,
   * so always `await` it.
   */
  async merge(adapterNames: string[] = this.active): Promise<void> {
    for (const [, layer] of this.base_model.tunerLayers()) {
      const names = adapterNames.filter((n) => layer.adapterNames().includes(n));
      if (names.length === 0) continue;
      const pending = layer.merge(names);
      if (pending) await pending;
    }
  }

  /** Restores the base weights of every merged layer (await it, as `merge`). */
  async unmerge(): Promise<void> {
    for (const [, layer] of this.base_model.tunerLayers()) {
      const pending = layer.unmerge();
      if (pending) await pending;
    }
  }

  /**
   * Merges adapters into the base and returns the user's model without adapter
   * layers (their tensors are disposed). See {@link MergeAndUnloadOptions} for a quantized base.
   */
  async mergeAndUnload(options: MergeAndUnloadOptions = {}): Promise<Module> {
    const names = options.adapterNames ?? this.active;
    for (const [path, layer] of this.base_model.tunerLayers()) {
      const held = names.filter((n) => layer.adapterNames().includes(n));
      let replacement: Module = layer.base_layer;
      if (options.dequantize && layer instanceof LoraLinear && !(layer.base instanceof Linear)) {
        const pending = layer.unmerge();
        if (pending) await pending;
        replacement = linearFromMerged(layer, held);
      } else if (held.length > 0) {
        const pending = layer.merge(held);
        if (pending) await pending;
      }
      this.model.replaceSubmodule(path, replacement);
      if (replacement !== layer.base_layer) layer.base_layer.dispose(); // the quantized base, now dequantized
      for (const a of layer.adapterNames()) for (const t of layer.adapterParameters(a)) t.dispose();
    }
    this.peftConfig.clear();
    return this.model;
  }

  /** Returns the user's model without adapter layers and without merging (adapters discarded). */
  async unload(): Promise<Module> {
    for (const [path, layer] of this.base_model.tunerLayers()) {
      const pending = layer.unmerge();
      if (pending) await pending;
      this.model.replaceSubmodule(path, layer.base_layer);
      for (const a of layer.adapterNames()) for (const t of layer.adapterParameters(a)) t.dispose();
    }
    this.peftConfig.clear();
    return this.model;
  }

  /**
   * Saves adapters (default: all) in PEFT's format; `default` at the root, others in subfolders.
   * @example const dir = memoryFiles(); await peft.saveAdapter(dir);
   */
  saveAdapter(target: AdapterTarget | string, options: { adapterNames?: string[] } = {}): Promise<void> {
    return saveAdapter(this, target, options);
  }

  /** Loads a PEFT-format adapter as `adapterName` (inference mode unless `isTrainable`). */
  loadAdapter(source: AdapterSource | SourceInput, adapterName: string, options: LoadAdapterOptions = {}): Promise<void> {
    return loadAdapter(this, source, adapterName, options);
  }

  /** PEFT's `add_weighted_adapter` for LoRA adapters (see {@link addWeightedAdapter}). */
  addWeightedAdapter(adapters: string[], weights: number[], name: string, options: { combinationType?: CombinationType; svdRank?: number } = {}): Promise<void> {
    return addWeightedAdapter(this, adapters, weights, name, options);
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
      if (!layer.adapterNames().includes(name)) continue;
      for (const [k, t] of layer.adapterStateDict(name)) out.set(`${prefix}${path}.${k}`, t);
    }
    const params = new Map(this.model.namedParameters());
    for (const key of this.extraTrainableNames(config, name)) {
      const t = params.get(key);
      if (t) out.set(prefix + key, t);
    }
    return out;
  }

  /** Base parameter names (relative to the user's model) that `config` trains: biases and modules to save. */
  extraTrainableNames(config: PeftConfig, adapterName?: string): string[] {
    const method = getPeftMethod(config.peftType);
    const holders = new Set(this.base_model.tunerLayers().filter(([, l]) => adapterName === undefined || l.adapterNames().includes(adapterName)).map(([p]) => p));
    // A wrapped layer's own bias belongs to the adapters that wrap it.
    const names = (method.trainableBiases ? method.trainableBiases(config, this.model) : []).filter(
      (n) => !n.endsWith('.base_layer.bias') || holders.has(n.slice(0, -'.base_layer.bias'.length)),
    );
    const modules = method.modulesToSave?.(config) ?? [];
    if (modules.length > 0) {
      for (const [path, m] of this.model.namedModules()) {
        if (!path || !modules.some((t) => path === t || path.endsWith(`.${t}`))) continue;
        for (const [n] of m.namedParameters()) names.push(`${path}.${n}`);
      }
    }
    return [...new Set(names)];
  }

  /** Freezes everything, then enables the active adapters' parameters, biases and modules to save. */
  refreshTrainable(): void {
    for (const p of this.model.parameters()) p.requiresGrad = false;
    const params = new Map(this.model.namedParameters());
    for (const name of this.active) {
      const config = this.peftConfig.get(name);
      if (!config || config.inferenceMode) continue;
      for (const [, layer] of this.base_model.tunerLayers()) {
        if (layer.adapterNames().includes(name)) for (const t of layer.adapterParameters(name)) t.requiresGrad = true;
      }
      for (const key of this.extraTrainableNames(config, name)) {
        const t = params.get(key);
        if (t) t.requiresGrad = true;
      }
    }
  }

  /** Sets an adapter's inference mode (frozen when true) and refreshes trainability. */
  setInferenceMode(name: string, inferenceMode: boolean): void {
    const c = this.peftConfig.get(name);
    if (!c) throw new Error(`setInferenceMode: no adapter '${name}'`);
    this.peftConfig.set(name, { ...c, inferenceMode });
    this.refreshTrainable();
  }
}

/** A plain f32 `Linear` holding `layer`'s base weight with `names` merged in (and its bias). */
function linearFromMerged(layer: LoraLinear, names: string[]): Linear {
  const { weight, doraNorms } = layer.mergedWeight(names);
  for (const n of doraNorms.values()) n.dispose();
  const base: LinearLike = layer.base;
  const backend = weight.backend.name;
  const lin = new Linear(base.inFeatures, base.outFeatures, { bias: base.bias !== null, backend });
  noGrad(() => {
    assign(lin.weight, weight);
    if (base.bias && lin.bias) assign(lin.bias, base.bias);
  });
  weight.dispose();
  lin.training = layer.training;
  return lin;
}

/**
 * Wraps `model` with adapter `adapterName` of `config` (PEFT's `get_peft_model`):
 * freezes the base, injects the method's layers, makes the adapter trainable.
 * Prompt-learning configs (`PROMPT_TUNING`, `PREFIX_TUNING`) give a {@link PromptLearningModel}.
 * @example const peft = getPeftModel(model, { peftType: 'LORA', r: 16, loraAlpha: 32, targetModules: 'all-linear' });
 */
export function getPeftModel(model: Module, config: PromptTuningConfig | PrefixTuningConfig, adapterName?: string): PromptLearningModel;
export function getPeftModel(model: Module, config: LoraConfig | IA3Config, adapterName?: string): PeftModel;
export function getPeftModel(model: Module, config: PeftConfig, adapterName?: string): PeftModel;
export function getPeftModel(model: Module, config: PeftConfig, adapterName = 'default'): PeftModel | PromptLearningModel {
  if (isPromptLearning(config)) return new PromptLearningModel(model as PromptableModel, config, adapterName);
  return new PeftModel(model, config, adapterName);
}

