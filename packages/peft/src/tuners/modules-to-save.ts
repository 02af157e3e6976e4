import { type LinearLike, Linear, Module } from '@webpeft/nn';
import { type BackendName, type Tensor, add, assign, getRngState, keep, noGrad, setRngState, tidy, zeros } from '@webpeft/tensor';
import { backendOf } from './backend-of.js';
import { ModuleDict } from './containers.js';
import { BASE_ADAPTER, type MixedBatchLayer, checkMixedBatch, placeRows, rowIndex, rowsByAdapter, takeRows } from './mixed-batch.js';

/**
 * PEFT's `ModulesToSaveWrapper`: a module named in an adapter's `modules_to_save`
 * (`lm_head`, a classifier's `score`) kept as `original_module` next to one trainable
 * copy per adapter in `modules_to_save.<adapter>`. `forward` runs the active adapter's
 * copy, or the original when no adapter of this wrapper is active or adapters are
 * disabled, so switching or disabling adapters restores the original exactly. Saved
 * files hold the copy under the module's own keys (`lm_head.weight`), as PEFT writes them.
 *
 * Copies are made of full-precision `Linear` modules (what `lm_head` and `score` are);
 * other module kinds are refused by name.
 */
export class ModulesToSaveWrapper extends Module implements LinearLike, MixedBatchLayer {
  readonly original_module: Linear;
  modules_to_save: ModuleDict<Linear>;
  /** The adapter whose copy `forward` runs, or null for the original. */
  activeAdapter: string | null = null;
  /** When true, `forward` is the original's (as `disableAdapter`). */
  disabled = false;
  /** Per-sample adapter names of a mixed-adapter batch (set by `PeftModel`), or null. */
  mixedAdapterNames: readonly string[] | null = null;

  constructor(original: Module, path: string) {
    super();
    if (!(original instanceof Linear)) {
      throw new Error(`modulesToSave: '${path}' is a ${original.constructor.name}; only full-precision Linear modules (lm_head, score) can be saved per adapter here`);
    }
    this.original_module = this.registerModule('original_module', original);
    this.modules_to_save = this.registerModule('modules_to_save', new ModuleDict<Linear>());
    this.training = original.training;
  }

  get inFeatures(): number {
    return this.original_module.inFeatures;
  }

  get outFeatures(): number {
    return this.original_module.outFeatures;
  }

  /** The module `forward` runs now: the active copy, or the original. */
  get current(): Linear {
    const copy = this.disabled || this.activeAdapter === null ? undefined : this.modules_to_save.get(this.activeAdapter);
    return copy ?? this.original_module;
  }

  /** The current module's weight `[out, in]`. */
  get weight(): Tensor {
    return this.current.weight;
  }

  /** The current module's bias `[out]`, or null. */
  get bias(): Tensor | null {
    return this.current.bias;
  }

  /** Adapter names holding a copy here. */
  adapterNames(): string[] {
    return this.modules_to_save.keys();
  }

  /** Adapter `name`'s copy. */
  copyOf(name: string): Linear | undefined {
    return this.modules_to_save.get(name);
  }

  /** Adds adapter `name`'s copy of the original (its values, a trainable module of its own). */
  addAdapter(name: string): void {
    if (this.modules_to_save.has(name)) throw new Error(`modulesToSave: adapter '${name}' already has a copy of this module`);
    const o = this.original_module;
    const backend = backendOf(o) ?? o.weight.backend.name;
    // Building the Linear draws a bias init we overwrite: keep the random stream as it was.
    const rng = getRngState();
    const copy = noGrad(() => {
      const weight = keep(duplicate(o.weight, backend));
      const linear = new Linear(o.inFeatures, o.outFeatures, { backend, dtype: o.weight.dtype === 'f16' ? 'f16' : 'f32', bias: o.bias !== null, weight });
      if (o.bias && linear.bias && backend !== 'meta') {
        const b = duplicate(o.bias, backend);
        assign(linear.bias, b);
        b.dispose();
      }
      return linear;
    });
    setRngState(rng);
    copy.training = this.training;
    this.modules_to_save.set(name, copy);
  }

  /** Removes adapter `name`'s copy and disposes its tensors. */
  deleteAdapter(name: string): void {
    const copy = this.modules_to_save.get(name);
    if (!copy) return;
    this.modules_to_save = this.registerModule('modules_to_save', this.modules_to_save.without(name));
    if (this.activeAdapter === name) this.activeAdapter = null;
    for (const t of copy.parameters()) t.dispose();
  }

  /**
   * Activates the copy of the one adapter in `names` that has one here (PEFT allows only
   * one: two active adapters with copies of the same module are an error); none: the original.
   */
  setActiveAdapters(names: string[]): void {
    const held = names.filter((n) => this.modules_to_save.has(n));
    if (held.length > 1) throw new Error(`modulesToSave: adapters ${held.join(', ')} each save their own copy of this module; only one of them can be active`);
    this.activeAdapter = held[0] ?? null;
  }

  /**
   * `[..., in] -> [..., out]` through the current module. In a mixed-adapter batch (PEFT's
   * `AuxiliaryTrainingWrapper._mixed_batch_forward`) each row runs through its adapter's
   * copy (`__base__`: the original); as in PEFT, disabled adapters or an active adapter
   * without a copy here run the original for every row.
   */
  forward(x: Tensor): Tensor {
    const names = this.mixedAdapterNames;
    if (!names) return this.current.forward(x);
    checkMixedBatch('ModulesToSaveWrapper', x, names, { merged: false, training: this.training });
    if (this.disabled || this.activeAdapter === null) return this.original_module.forward(x);
    const groups = rowsByAdapter(names);
    for (const name of groups.keys()) {
      if (name !== BASE_ADAPTER && !this.modules_to_save.has(name)) {
        throw new Error(`ModulesToSaveWrapper: adapterNames names '${name}', which has no copy of this module to save (have: ${this.adapterNames().join(', ')}); in a mixed batch every named adapter needs one`);
      }
    }
    return tidy(() => {
      let y: Tensor | null = null;
      for (const [name, rows] of groups) {
        const idx = rowIndex(rows, x);
        const m = name === BASE_ADAPTER ? this.original_module : (this.modules_to_save.get(name) as Linear);
        const part = placeRows(m.forward(takeRows(x, idx)), idx, x.shape[0]);
        y = y ? add(y, part) : part;
      }
      return y as Tensor;
    });
  }

  dequantizedWeight(): Tensor {
    return this.current.dequantizedWeight();
  }

  loadWeight(weight: Tensor): void {
    this.current.loadWeight(weight);
  }
}

/** A copy of `t` with its values (shape only on `meta`). */
function duplicate(t: Tensor, backend: BackendName): Tensor {
  if (backend === 'meta' || t.backend.name === 'meta') return zeros(t.shape, { backend: 'meta', dtype: t.dtype });
  const c = add(t, 0);
  if (c.dtype !== t.dtype) {
    c.dispose();
    throw new Error(`modulesToSave: copying a ${t.dtype} tensor gave ${c.dtype}`);
  }
  return c;
}
