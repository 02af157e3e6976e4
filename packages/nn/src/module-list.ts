import { Module } from './module.js';

/**
 * An ordered list of modules named `0`, `1`, ... (as `nn.ModuleList`), so paths like
 * `transformer.h.3.attn` address the fourth block.
 */
export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[] = [];

  constructor(modules: readonly M[] = []) {
    super();
    for (const m of modules) this.append(m);
  }

  append(m: M): this {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
    return this;
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): M {
    const m = this.items[i < 0 ? i + this.items.length : i];
    if (!m) throw new RangeError(`ModuleList: index ${i} out of range for ${this.items.length} modules`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }

  protected override onChildReplaced(name: string, replacement: Module): void {
    this.items[Number(name)] = replacement as M;
  }

  forward(): never {
    throw new Error('ModuleList has no forward; iterate over its modules');
  }
}
