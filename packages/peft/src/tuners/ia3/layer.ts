import type { LinearLike } from '@webpeft/nn';
import { type Tensor, assign, div, mul, noGrad, ones, randn, reshape } from '@webpeft/tensor';
import { backendOf } from '../backend-of.js';
import { ParameterDict } from '../containers.js';
import { TunerLayer } from '../tuner-layer.js';
import { type ResolvedIA3Config, isFeedforward } from './config.js';

/**
 * IA3 around a {@link LinearLike}: per adapter `ia3_l.<name>`, shape `[out, 1]`
 * (`y = base(x) * l`) or, for feed-forward modules, `[1, in]` (`y = base(x * l)`),
 * as PEFT stores them. `[..., in] -> [..., out]`.
 */
export class IA3Linear extends TunerLayer<ResolvedIA3Config> {
  readonly peftType = 'IA3';
  readonly isFeedforward: boolean;
  private readonly vectors = new Map<string, Tensor>();

  constructor(base: LinearLike, isFeedforwardModule: boolean) {
    super(base);
    this.isFeedforward = isFeedforwardModule;
    this.registerModule('ia3_l', new ParameterDict());
  }

  get base(): LinearLike {
    return this.base_layer as LinearLike;
  }

  private get dict(): ParameterDict {
    return (this as unknown as { ia3_l: ParameterDict }).ia3_l;
  }

  adapterNames(): string[] {
    return [...this.vectors.keys()];
  }

  private get(name: string): Tensor {
    const v = this.vectors.get(name);
    if (!v) throw new Error(`IA3Linear: no adapter '${name}'`);
    return v;
  }

  addAdapter(name: string, config: ResolvedIA3Config): void {
    if (this.vectors.has(name)) throw new Error(`IA3Linear: adapter '${name}' already exists`);
    const backend = backendOf(this.base);
    const shape = this.isFeedforward ? [1, this.base.inFeatures] : [this.base.outFeatures, 1];
    const v = config.initIa3Weights ? ones(shape, { backend }) : randn(shape, { backend });
    this.dict.set(name, v);
    this.vectors.set(name, v);
    if (this.activeAdapters.length === 0) this.activeAdapters = [name];
  }

  deleteAdapter(name: string): void {
    const v = this.get(name);
    if (this.mergedAdapters.includes(name)) throw new Error(`IA3Linear: unmerge adapter '${name}' before deleting it`);
    this.dict.delete(name);
    v.dispose();
    this.vectors.delete(name);
    this.activeAdapters = this.activeAdapters.filter((n) => n !== name);
  }

  adapterParameters(name: string): Tensor[] {
    return [this.get(name)];
  }

  adapterStateDict(name: string): Map<string, Tensor> {
    return new Map([['ia3_l', this.get(name)]]);
  }

  /** The product of the active vectors, flattened: `[in]` or `[out]`, or null when none. */
  private scale(): Tensor | null {
    let s: Tensor | null = null;
    for (const name of this.effectiveAdapters()) {
      const flat = reshape(this.get(name), [this.get(name).size]);
      if (!s) s = flat;
      else {
        const next = mul(s, flat);
        s.dispose();
        flat.dispose();
        s = next;
      }
    }
    return s;
  }

  forward(x: Tensor): Tensor {
    this.unmergeForForward();
    if (this.merged) return this.base.forward(x);
    const s = this.scale();
    if (!s) return this.base.forward(x);
    if (this.isFeedforward) {
      const xs = mul(x, s);
      s.dispose();
      const y = this.base.forward(xs);
      xs.dispose();
      return y;
    }
    const y = this.base.forward(x);
    const out = mul(y, s);
    y.dispose();
    s.dispose();
    return out;
  }

  override merge(adapterNames: string[] = this.activeAdapters): void | Promise<void> {
    const todo = adapterNames.filter((n) => !this.mergedAdapters.includes(n));
    const from = (k: number): void | Promise<void> => {
      for (; k < todo.length; k++) {
        const name = todo[k];
        const pending = this.apply(name, mul);
        this.mergedAdapters.push(name);
        if (pending) {
          const next = k + 1;
          return pending.then(() => from(next));
        }
      }
    };
    return from(0);
  }

  override unmerge(): void | Promise<void> {
    // PEFT divides by l + 1e-8; plain division is exact for the l != 0 that training gives.
    while (this.mergedAdapters.length > 0) {
      const pending = this.apply(this.mergedAdapters.pop() as string, div);
      if (pending) return pending.then(() => this.unmerge());
    }
  }

  /** Applies `op` with adapter `name`'s vector to the base weight (and bias); a Promise when the base re-quantizes. */
  private apply(name: string, op: (a: Tensor, b: Tensor) => Tensor): Promise<void> | undefined {
    const next = noGrad(() => {
      const v = this.get(name);
      // W [out, in]: rows scale by l [out, 1]; columns by l [1, in] (feed-forward).
      const W = this.base.dequantizedWeight();
      const scaled = op(W, v);
      W.dispose();
      const bias = this.base.bias;
      if (!this.isFeedforward && bias) {
        const flat = reshape(v, [v.size]);
        const b = op(bias, flat);
        assign(bias, b);
        flat.dispose();
        b.dispose();
      }
      return scaled;
    });
    const pending = this.base.loadWeight(next);
    if (pending instanceof Promise) return pending.then(() => next.dispose());
    next.dispose();
    return undefined;
  }
}

/** Creates the layer for `path`, deciding feed-forward from the config. */
export function createIA3Layer(base: LinearLike, config: ResolvedIA3Config, path: string): IA3Linear {
  return new IA3Linear(base, isFeedforward(config, path));
}

