import { Module } from '@webpeft/nn';
import type { Tensor } from '@webpeft/tensor';

/**
 * Per-adapter containers with PyTorch's naming, so parameter paths read as in PEFT:
 * a {@link ModuleDict} of {@link AdapterWeight}s gives `lora_A.default.weight`, a
 * {@link ParameterDict} gives `lora_embedding_A.default`.
 */

/** A module holding one parameter named `weight` (PEFT's per-adapter `nn.Linear` without bias). */
export class AdapterWeight extends Module {
  readonly weight: Tensor;

  constructor(weight: Tensor) {
    super();
    this.weight = this.registerParameter('weight', weight);
  }
}

/** Children by adapter name. Removal rebuilds the dict (see {@link ModuleDict.without}). */
export class ModuleDict<M extends Module = Module> extends Module {
  private readonly entries = new Map<string, M>();

  /** Adds or replaces child `name`. */
  set(name: string, module: M): void {
    this.entries.set(name, module);
    this.registerModule(name, module);
  }

  get(name: string): M | undefined {
    return this.entries.get(name);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** A new dict with every entry but `name` (Module children cannot be unregistered in place). */
  without(name: string): ModuleDict<M> {
    const d = new ModuleDict<M>();
    for (const [k, m] of this.entries) if (k !== name) d.set(k, m);
    d.training = this.training;
    return d;
  }
}

/** Parameters by adapter name (PyTorch's `nn.ParameterDict`). */
export class ParameterDict extends Module {
  /** Adds or replaces parameter `name` (made trainable). */
  set(name: string, t: Tensor): Tensor {
    if (this.ownParameters().some(([k]) => k === name)) this.setParameter(name, null);
    return this.registerParameter(name, t);
  }

  get(name: string): Tensor | undefined {
    return this.ownParameters().find(([k]) => k === name)?.[1];
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  keys(): string[] {
    return this.ownParameters().map(([k]) => k);
  }

  /** Removes `name` without disposing it. */
  delete(name: string): void {
    this.setParameter(name, null);
  }
}
