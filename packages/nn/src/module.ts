import { type Tensor, assign, noGrad } from '@webpeft/tensor';

/** Result of {@link Module.loadStateDict}: every problem, reported at once. */
export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
  /** Keys present on both sides with different shapes or dtypes. */
  mismatched: { key: string; expected: string; got: string }[];
}

/** A checkpoint entry: a tensor by parameter or buffer name. */
export type StateDict = Map<string, Tensor> | Record<string, Tensor>;

/**
 * Base class of every layer and model, after PyTorch's `nn.Module`: named parameters,
 * buffers and children registered explicitly, dotted names that follow Hugging Face
 * paths (`transformer.h.0.attn.c_attn.weight`), train/eval mode, freezing, state
 * dicts, and submodule replacement (what tuners and quantization use).
 *
 * Children are stored both in the registry and as a property of the same name, so a
 * forward reads like the paper (`this.c_attn.forward(x)`) and `replaceSubmodule`
 * swaps both.
 */
export abstract class Module {
  /** Training mode (dropout active). */
  training = true;
  private readonly _parameters = new Map<string, Tensor>();
  private readonly _buffers = new Map<string, { tensor: Tensor; persistent: boolean }>();
  private readonly _modules = new Map<string, Module>();

  /** Registers `tensor` as a trainable parameter `name` (requires grad, tagged 'weights'). */
  protected registerParameter(name: string, tensor: Tensor): Tensor {
    checkName(this, name);
    tensor.requiresGrad = true;
    tensor.setMemoryTag('weights');
    this._parameters.set(name, tensor);
    return tensor;
  }

  /** Registers a non-trainable tensor (e.g. a causal mask or RoPE table). */
  protected registerBuffer(name: string, tensor: Tensor, persistent = true): Tensor {
    checkName(this, name);
    this._buffers.set(name, { tensor, persistent });
    return tensor;
  }

  /** Registers a child module `name` and sets the property of the same name. */
  registerModule<M extends Module>(name: string, module: M): M {
    checkName(this, name);
    this._modules.set(name, module);
    (this as unknown as Record<string, unknown>)[name] = module;
    return module;
  }

  /** Direct children by name. */
  namedChildren(): [string, Module][] {
    return [...this._modules];
  }

  /** This module's own parameters (not its children's). */
  ownParameters(): [string, Tensor][] {
    return [...this._parameters];
  }

  /** Replaces own parameter `name` (e.g. after quantization frees it). */
  protected setParameter(name: string, tensor: Tensor | null): void {
    if (tensor) this._parameters.set(name, tensor);
    else this._parameters.delete(name);
  }

  /** Every module in the tree with its dotted path (this module is `''`), depth first. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this._modules) out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  /** Every module in the tree. */
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /**
   * Parameters with dotted names, depth first. A tensor shared by two modules (tied
   * embeddings) is listed once, under its first name.
   */
  namedParameters(): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules()) {
      for (const [name, p] of m._parameters) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([path ? `${path}.${name}` : name, p]);
      }
    }
    return out;
  }

  /** Parameters (tied ones once). */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Parameters that require grad. */
  trainableParameters(): Tensor[] {
    return this.parameters().filter((p) => p.requiresGrad);
  }

  /** Buffers with dotted names. */
  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules()) {
      for (const [name, b] of m._buffers) out.push([path ? `${path}.${name}` : name, b.tensor]);
    }
    return out;
  }

  /**
   * Number of parameter elements (tied weights counted once). Frozen weights held in
   * another form (a 4-bit packed buffer) count as the elements they represent.
   */
  numParameters(options: { onlyTrainable?: boolean } = {}): number {
    const tensors = this.parameters()
      .filter((p) => !options.onlyTrainable || p.requiresGrad)
      .reduce((n, p) => n + p.size, 0);
    if (options.onlyTrainable) return tensors;
    return tensors + this.modules().reduce((n, m) => n + m.packedParameterCount(), 0);
  }

  /**
   * Elements of weights this module stores outside its parameters (e.g. a packed 4-bit
   * weight, which is a buffer), counted by `numParameters` as PEFT counts them. Default 0.
   */
  packedParameterCount(): number {
    return 0;
  }

  /** The module at dotted `path` (e.g. `transformer.h.0.attn`); throws naming the missing part. */
  getSubmodule(path: string): Module {
    if (path === '') return this;
    // Walk down from this module; `m` starts as this module's own registry owner.
    let m = this as Module;
    for (const part of path.split('.')) {
      const next = m._modules.get(part);
      if (!next) throw new Error(`getSubmodule: '${path}' has no part '${part}' (children: ${[...m._modules.keys()].join(', ') || 'none'})`);
      m = next;
    }
    return m;
  }

  /** Replaces the module at `path` with `replacement` (registry and property). Returns the old one. */
  replaceSubmodule(path: string, replacement: Module): Module {
    const dot = path.lastIndexOf('.');
    const parent = dot === -1 ? this : this.getSubmodule(path.slice(0, dot));
    const name = path.slice(dot + 1);
    const old = parent._modules.get(name);
    if (!old) throw new Error(`replaceSubmodule: no module at '${path}'`);
    parent._modules.set(name, replacement);
    parent.onChildReplaced(name, replacement);
    return old;
  }

  /** Hook for containers that keep children in other structures (ModuleList's array). */
  protected onChildReplaced(name: string, replacement: Module): void {
    (this as unknown as Record<string, unknown>)[name] = replacement;
  }

  /** Parameters and persistent buffers by dotted name (tied tensors under every name, as PyTorch). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [path, m] of this.namedModules()) {
      const pre = path ? `${path}.` : '';
      for (const [name, p] of m._parameters) out.set(pre + name, p);
      for (const [name, b] of m._buffers) if (b.persistent) out.set(pre + name, b.tensor);
    }
    return out;
  }

  /**
   * Copies tensors from `sd` into this module's parameters and buffers in place.
   * With `strict` (default) any missing, unexpected or mis-shaped key throws one error
   * listing them all; otherwise mismatched shapes still throw and the lists are returned.
   */
  loadStateDict(sd: StateDict, options: { strict?: boolean } = {}): LoadStateDictResult {
    const strict = options.strict ?? true;
    const source = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    const result: LoadStateDictResult = {
      missingKeys: [...own.keys()].filter((k) => !source.has(k)),
      unexpectedKeys: [...source.keys()].filter((k) => !own.has(k)),
      mismatched: [],
    };
    for (const [key, t] of own) {
      const src = source.get(key);
      if (!src) continue;
      if (src.shape.length !== t.shape.length || src.shape.some((d, i) => d !== t.shape[i]) || src.dtype !== t.dtype) {
        result.mismatched.push({ key, expected: `[${t.shape.join(',')}] ${t.dtype}`, got: `[${src.shape.join(',')}] ${src.dtype}` });
      }
    }
    const problems = result.mismatched.length > 0 || (strict && (result.missingKeys.length > 0 || result.unexpectedKeys.length > 0));
    if (problems) {
      const lines = [
        ...result.missingKeys.map((k) => `  missing: ${k}`),
        ...result.unexpectedKeys.map((k) => `  unexpected: ${k}`),
        ...result.mismatched.map((m) => `  shape/dtype mismatch: ${m.key}: expected ${m.expected}, got ${m.got}`),
      ];
      if (!strict) lines.splice(0, result.missingKeys.length + result.unexpectedKeys.length);
      throw new Error(`loadStateDict: ${lines.length} problem(s):\n${lines.join('\n')}`);
    }
    noGrad(() => {
      for (const [key, t] of own) {
        const src = source.get(key);
        if (src && src !== t) assign(t, src);
      }
    });
    return result;
  }

  /** Sets training mode on this module and every child. Returns `this`. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Evaluation mode (dropout off). Returns `this`. */
  eval(): this {
    return this.train(false);
  }

  /** Sets `requiresGrad` on every parameter. Returns `this`. */
  requiresGrad_(flag = true): this {
    for (const p of this.parameters()) p.requiresGrad = flag;
    return this;
  }

  /** Freezes every parameter (no gradients). Returns `this`. */
  freeze(): this {
    return this.requiresGrad_(false);
  }

  /**
   * Disposes every parameter and buffer of the tree, through each child's own `dispose()`
   * so that modules holding tensors outside the registry (e.g. quantization state) free
   * them too. Shared (tied) tensors are fine: disposal is idempotent.
   */
  dispose(): void {
    for (const [, child] of this._modules) child.dispose();
    for (const p of this.parameters()) p.dispose();
    for (const [, b] of this.namedBuffers()) b.dispose();
  }
}

function checkName(m: Module, name: string): void {
  if (!name || name.includes('.')) throw new Error(`${m.constructor.name}: invalid member name '${name}' (non-empty, no dots)`);
}
