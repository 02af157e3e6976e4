import type { LinearLike } from '@webpeft/nn';
import { type Tensor, assign, div, mul, noGrad, ones, randn, reshape, tidy } from '@webpeft/tensor';
import { backendOf } from '../backend-of.js';
import { asDtype } from '../autocast.js';
import { type NewAdapter, TunerLayer } from '../tuner-layer.js';
import { type ResolvedIA3Config, isFeedforward } from './config.js';

/**
 * IA3 around a {@link LinearLike}: per adapter `ia3_l.<name>`, shape `[out, 1]`
 * (`y = base(x) * l`) or, for feed-forward modules, `[1, in]` (`y = base(x * l)`),
 * as PEFT stores them. `[..., in] -> [..., out]`.
 */
export class IA3Linear extends TunerLayer<ResolvedIA3Config, 'ia3_l', LinearLike> {
  readonly peftType = 'IA3';
  readonly isFeedforward: boolean;

  constructor(base: LinearLike, isFeedforwardModule: boolean) {
    super(base, { ia3_l: 'parameter' });
    this.isFeedforward = isFeedforwardModule;
  }

  /** The wrapped linear layer. */
  get base(): LinearLike {
    return this.base_layer;
  }

  protected initAdapter(_name: string, config: ResolvedIA3Config): NewAdapter<'ia3_l', undefined> {
    const backend = backendOf(this.base);
    const shape = this.isFeedforward ? [1, this.base.inFeatures] : [this.base.outFeatures, 1];
    return { tensors: { ia3_l: config.initIa3Weights ? ones(shape, { backend }) : randn(shape, { backend }) } };
  }

  /** The product of the active vectors, flattened: `[in]` or `[out]`, or null when none. Inside a tidy scope. */
  private scale(): Tensor | null {
    let s: Tensor | null = null;
    for (const name of this.effectiveAdapters()) {
      const l = this.adapterTensor(name, 'ia3_l');
      const flat = reshape(l, [l.size]);
      s = s ? mul(s, flat) : flat;
    }
    return s;
  }

  forward(x: Tensor): Tensor {
    this.unmergeForForward();
    if (this.merged) return this.base.forward(x);
    return tidy(() => {
      const s = this.scale();
      if (!s) return this.base.forward(x);
      // Over an f16 base the scaling runs in the vector's f32 and is rounded once (PEFT's casts).
      if (this.isFeedforward) return this.base.forward(asDtype(mul(asDtype(x, s.dtype), s), x.dtype));
      const y = this.base.forward(x);
      return asDtype(mul(asDtype(y, s.dtype), s), y.dtype);
    });
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
    const v = this.adapterTensor(name, 'ia3_l');
    const next = noGrad(() =>
      tidy(() => {
        const bias = this.base.bias;
        if (!this.isFeedforward && bias) assign(bias, asDtype(op(asDtype(bias, v.dtype), reshape(v, [v.size])), bias.dtype));
        // W [out, in]: rows scale by l [out, 1]; columns by l [1, in] (feed-forward). An f16 base in f32, rounded once.
        const W = this.base.dequantizedWeight();
        return asDtype(op(asDtype(W, v.dtype), v), W.dtype);
      }),
    );
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
