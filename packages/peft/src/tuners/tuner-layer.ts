import { Module } from '@webpeft/nn';
import { type Tensor, keep, tidy } from '@webpeft/tensor';
import type { PeftConfig } from '../config.js';
import { AdapterWeight, ModuleDict, ParameterDict } from './containers.js';

/**
 * How one declared per-adapter tensor is held (PEFT's `adapter_layer_names` entries):
 * - `'weight'`: a `ModuleDict` of bias-free linears, parameter `<slot>.<adapter>.weight`,
 *   saved as `<slot>.weight` (LoRA's `lora_A`, `lora_B`);
 * - `'parameter'`: a `ParameterDict`, parameter `<slot>.<adapter>`, saved as `<slot>`
 *   (`lora_embedding_A`, IA3's `ia3_l`).
 */
export type AdapterSlotKind = 'weight' | 'parameter';

/** A declared slot with its checkpoint key when it differs from the kind's default. */
export interface AdapterSlot {
  kind: AdapterSlotKind;
  /** Key in a PEFT checkpoint, relative to the layer and without the adapter name (e.g. DoRA's `lora_magnitude_vector`). */
  savedKey?: string;
}

/** The slots a layer declares, by name: `{ lora_A: 'weight', lora_B: 'weight' }`. */
export type AdapterSlots<S extends string> = { readonly [K in S]: AdapterSlotKind | AdapterSlot };

/** One adapter's tensors by slot; a slot an adapter does not use is left out (DoRA's magnitude without DoRA). */
export type AdapterTensors<S extends string> = { [K in S]?: Tensor };

/**
 * What {@link TunerLayer.initAdapter} returns: the adapter's tensors and its non-tensor
 * settings (PEFT's `other_param_names`: LoRA's scaling and dropout), which `settings`
 * may omit when the layer has none.
 */
export type NewAdapter<S extends string, I> = { tensors: AdapterTensors<S> } & (undefined extends I ? { settings?: I } : { settings: I });

interface SlotState {
  kind: AdapterSlotKind;
  savedKey: string;
  dict: ModuleDict<AdapterWeight> | ParameterDict;
}

/**
 * A layer that wraps a base module (`base_layer`, frozen) with per-adapter tensors,
 * after PEFT's `BaseTunerLayer`. A subclass declares its slots (PEFT's
 * `adapter_layer_names`) in the constructor, creates one adapter's tensors in
 * {@link initAdapter}, and writes `forward` (and `merge`/`unmerge` where the method can
 * merge). This base does the bookkeeping once for built-in and user layers alike:
 * adapter names, add/delete, the active set, enable/disable, parameters and state dicts
 * under PEFT's key names.
 *
 * Type parameters: `C` the resolved config, `S` the slot names, `B` the wrapped module
 * type, `I` the per-adapter settings.
 *
 * @example
 * class Scale extends TunerLayer<ScaleConfig, 'scale_d', LinearLike> {
 *   readonly peftType = 'SCALE';
 *   constructor(base: LinearLike) { super(base, { scale_d: 'parameter' }); }
 *   protected initAdapter() { return { tensors: { scale_d: zeros([this.base_layer.inFeatures]) } }; }
 *   forward(x: Tensor) { ... this.adapterTensor(name, 'scale_d') ... }
 * }
 */
export abstract class TunerLayer<C extends PeftConfig = PeftConfig, S extends string = string, B extends Module = Module, I = undefined> extends Module {
  /** The method this layer belongs to (`'LORA'`, a user method's name...). */
  abstract readonly peftType: string;
  /** The wrapped module. */
  readonly base_layer: B;
  /** Adapters applied by `forward`, in order (set through {@link setActiveAdapters}). */
  activeAdapters: string[] = [];
  /** When true, `forward` is the base layer's alone (merged weights are unmerged first). */
  disabled = false;
  /** Adapters merged into the base weight, in merge order. */
  readonly mergedAdapters: string[] = [];
  private readonly slots = new Map<S, SlotState>();
  /** Adapter names (insertion order) with their settings. */
  private readonly settingsByAdapter = new Map<string, I>();

  constructor(base: B, slots: AdapterSlots<S>) {
    super();
    this.base_layer = this.registerModule('base_layer', base);
    for (const slot of Object.keys(slots) as S[]) {
      const spec: AdapterSlotKind | AdapterSlot = slots[slot];
      const kind = typeof spec === 'string' ? spec : spec.kind;
      const savedKey = (typeof spec === 'string' ? undefined : spec.savedKey) ?? (kind === 'weight' ? `${slot}.weight` : slot);
      const dict = kind === 'weight' ? new ModuleDict<AdapterWeight>() : new ParameterDict();
      this.slots.set(slot, { kind, savedKey, dict: this.registerModule(slot, dict) });
    }
  }

  /** The declared slot names (PEFT's `adapter_layer_names`). */
  get adapterLayerNames(): S[] {
    return [...this.slots.keys()];
  }

  /** Names of the adapters this layer holds, in the order they were added. */
  adapterNames(): string[] {
    return [...this.settingsByAdapter.keys()];
  }

  /** True when this layer holds adapter `name`. */
  hasAdapter(name: string): boolean {
    return this.settingsByAdapter.has(name);
  }

  /**
   * Creates adapter `name`'s tensors for the module at `path` (the resolved `config`
   * applies to the whole model; per-module values such as rank patterns are read here).
   * Intermediates may be left to the caller's `tidy` scope: only returned tensors survive.
   */
  protected abstract initAdapter(name: string, config: C, path: string): NewAdapter<S, I>;

  /** Adds adapter `name` with its (resolved) config; `path` is this layer's path in the model. The first adapter becomes active. */
  addAdapter(name: string, config: C, path: string): void {
    this.checkNew(name);
    this.addAdapterTensors(name, tidy(() => this.initAdapter(name, config, path)));
  }

  /** Registers tensors made outside {@link initAdapter} (e.g. a layer's own `addAdapterWith`). The layer owns them from here on. */
  protected addAdapterTensors(name: string, adapter: NewAdapter<S, I>): void {
    this.checkNew(name);
    const tensors: AdapterTensors<S> = adapter.tensors;
    for (const slot of Object.keys(tensors) as S[]) {
      if (!this.slots.has(slot)) throw new Error(`${this.constructor.name}: adapter '${name}' has a tensor for undeclared slot '${slot}' (declared: ${this.adapterLayerNames.join(', ')})`);
    }
    for (const [slot, state] of this.slots) {
      const t = tensors[slot];
      if (!t) continue;
      // Adapter tensors live as long as the layer, whatever tidy scope is open.
      keep(t);
      if (state.dict instanceof ParameterDict) state.dict.set(name, t);
      else state.dict.set(name, new AdapterWeight(t));
    }
    // `settings` is absent only when `I` admits undefined (see NewAdapter).
    this.settingsByAdapter.set(name, (adapter as { settings?: I }).settings as I);
    if (this.activeAdapters.length === 0) this.activeAdapters = [name];
  }

  /** Removes adapter `name` and disposes its tensors. Throws while it is merged. */
  deleteAdapter(name: string): void {
    this.checkHeld(name);
    if (this.mergedAdapters.includes(name)) throw new Error(`${this.constructor.name}: unmerge adapter '${name}' before deleting it`);
    for (const [slot, state] of this.slots) {
      const t = this.slotTensor(state, name);
      if (!t) continue;
      if (state.dict instanceof ParameterDict) state.dict.delete(name);
      else {
        // Module children cannot be unregistered in place: swap in a dict without the entry.
        state.dict = state.dict.without(name);
        this.replaceSubmodule(slot, state.dict);
      }
      t.dispose();
    }
    this.settingsByAdapter.delete(name);
    this.activeAdapters = this.activeAdapters.filter((n) => n !== name);
  }

  /** Makes the held ones of `names` the active adapters (others are ignored: a layer may hold only some adapters). */
  setActiveAdapters(names: readonly string[]): void {
    this.activeAdapters = names.filter((n) => this.settingsByAdapter.has(n));
  }

  /** Turns every adapter of this layer on or off (PEFT's `enable_adapters`). */
  enableAdapters(enabled: boolean): void {
    this.disabled = !enabled;
  }

  /** Adapter `name`'s tensor in `slot`; throws naming the layer, adapter and slot when absent. */
  adapterTensor(name: string, slot: S): Tensor {
    const t = this.maybeAdapterTensor(name, slot);
    if (!t) throw new Error(`${this.constructor.name}: adapter '${name}' has no '${slot}'`);
    return t;
  }

  /** Adapter `name`'s tensor in `slot`, or undefined when the adapter does not use that slot. */
  maybeAdapterTensor(name: string, slot: S): Tensor | undefined {
    this.checkHeld(name);
    const state = this.slots.get(slot);
    if (!state) throw new Error(`${this.constructor.name}: no slot '${slot}' (declared: ${this.adapterLayerNames.join(', ')})`);
    return this.slotTensor(state, name);
  }

  /** Adapter `name`'s settings as {@link initAdapter} returned them. */
  adapterSettings(name: string): I {
    this.checkHeld(name);
    return this.settingsByAdapter.get(name) as I;
  }

  /** Replaces adapter `name`'s settings (a hot-swap takes over the new adapter's scaling). */
  replaceAdapterSettings(name: string, settings: I): void {
    this.checkHeld(name);
    this.settingsByAdapter.set(name, settings);
  }

  /** The trainable tensors of adapter `name`, in slot order. */
  adapterParameters(name: string): Tensor[] {
    this.checkHeld(name);
    return [...this.slots.values()].map((s) => this.slotTensor(s, name)).filter((t): t is Tensor => t !== undefined);
  }

  /**
   * Adapter `name`'s tensors keyed as in a PEFT checkpoint, relative to this layer's
   * path and without the adapter name (`lora_A.weight`, `lora_embedding_A`,
   * `lora_magnitude_vector`). The tensors are the live parameters (not copies).
   */
  adapterStateDict(name: string): Map<string, Tensor> {
    this.checkHeld(name);
    const out = new Map<string, Tensor>();
    for (const state of this.slots.values()) {
      const t = this.slotTensor(state, name);
      if (t) out.set(state.savedKey, t);
    }
    return out;
  }

  /** `[..., in] -> [..., out]` (or the base's own signature) through the base layer and the active adapters. */
  abstract forward(x: Tensor): Tensor;

  /**
   * Folds adapters into the base weight. Synchronous for full-precision bases; returns a
   * Promise when the base re-quantizes (a 4-bit `LinearLike`), which callers await.
   * The default throws: a method merges only where its layer overrides this.
   */
  merge(_adapterNames?: string[]): void | Promise<void> {
    throw new Error(`${this.peftType}: merging adapters into the base weights is not supported by this method`);
  }

  /** Undoes every merge, last first (a Promise when the base re-quantizes, as `merge`). */
  unmerge(): void | Promise<void> {
    if (this.mergedAdapters.length > 0) throw new Error(`${this.peftType}: unmerging is not supported by this method`);
  }

  /** True when some adapter is merged into the base weight. */
  get merged(): boolean {
    return this.mergedAdapters.length > 0;
  }

  /**
   * Unmerges before a forward with adapters disabled (PEFT's behaviour); a base that
   * re-quantizes cannot be restored inside a synchronous forward, so that case throws.
   */
  protected unmergeForForward(): void {
    if (!(this.disabled && this.merged)) return;
    if (this.unmerge() instanceof Promise) {
      throw new Error(`${this.peftType}: adapters are merged into a quantized base; await peft.unmerge() before running with adapters disabled`);
    }
  }

  /** Adapters that `forward` applies now (none when disabled). */
  protected effectiveAdapters(): string[] {
    return this.disabled ? [] : this.activeAdapters.filter((a) => this.settingsByAdapter.has(a));
  }

  private slotTensor(state: SlotState, name: string): Tensor | undefined {
    return state.dict instanceof ParameterDict ? state.dict.get(name) : state.dict.get(name)?.weight;
  }

  private checkNew(name: string): void {
    if (this.settingsByAdapter.has(name)) throw new Error(`${this.constructor.name}: adapter '${name}' already exists`);
  }

  private checkHeld(name: string): void {
    if (!this.settingsByAdapter.has(name)) throw new Error(`${this.constructor.name}: no adapter '${name}' (have: ${this.adapterNames().join(', ') || 'none'})`);
  }
}
