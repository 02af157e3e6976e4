import { Module } from '@webpeft/nn';
import type { Tensor } from '@webpeft/tensor';

/**
 * A layer that wraps a base module (`base_layer`, frozen) with per-adapter
 * parameters, after PEFT's `BaseTunerLayer`. Built-in layers (LoRA, IA3) and user
 * layers extend it; the tuner model finds them by `instanceof` and drives them
 * through these members only.
 */
export abstract class TunerLayer<C = unknown> extends Module {
  /** The method this layer belongs to (`'LORA'`, a user method's name...). */
  abstract readonly peftType: string;
  /** The wrapped module. */
  readonly base_layer: Module;
  /** Adapters applied by `forward`, in order. */
  activeAdapters: string[] = [];
  /** When true, `forward` is the base layer's alone (merged weights are unmerged first). */
  disabled = false;
  /** Adapters merged into the base weight, in merge order. */
  readonly mergedAdapters: string[] = [];

  constructor(base: Module) {
    super();
    this.base_layer = this.registerModule('base_layer', base);
  }

  /** Names of the adapters this layer holds. */
  abstract adapterNames(): string[];

  /** Adds adapter `name` with its (resolved) config; `path` is this layer's path in the model. */
  abstract addAdapter(name: string, config: C, path: string): void;

  /** Removes adapter `name` and disposes its tensors. */
  abstract deleteAdapter(name: string): void;

  /** The trainable tensors of adapter `name`. */
  abstract adapterParameters(name: string): Tensor[];

  /**
   * Adapter `name`'s tensors keyed as in a PEFT checkpoint, relative to this layer's
   * path and without the adapter name (`lora_A.weight`, `lora_embedding_A`,
   * `lora_magnitude_vector`). The tensors are the live parameters (not copies).
   */
  abstract adapterStateDict(name: string): Map<string, Tensor>;

  /** `[..., in] -> [..., out]` through the base layer and the active adapters. */
  abstract forward(x: Tensor): Tensor;

  /**
   * Folds adapters into the base weight. Synchronous for full-precision bases; returns a
   * Promise when the base re-quantizes (a 4-bit `LinearLike`), which callers await.
   * Throws when the method has no merge.
   */
  merge(_adapterNames?: string[]): void | Promise<void> {
    throw new Error(`${this.peftType}: merging is not supported by this method`);
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
    const held = new Set(this.adapterNames());
    return this.disabled ? [] : this.activeAdapters.filter((a) => held.has(a));
  }
}
