import { type Module, getActivation } from '@webpeft/nn';
import { type BackendName, type Tensor, abs, add, dropout, layerNorm, lessEqual, matmul, maximum, minimum, mul, ones, rand, randn, sub, tidy, where, zeros } from '@webpeft/tensor';
import { backendOf } from '../backend-of.js';
import { type NewAdapter, TunerLayer } from '../tuner-layer.js';
import { type BottleneckLayerConfig, bottleneckWidth } from './config.js';

/** The per-adapter tensors of a bottleneck adapter, saved under AdapterHub's module names. */
export type BottleneckSlot =
  | 'adapter_down_weight'
  | 'adapter_down_bias'
  | 'adapter_up_weight'
  | 'adapter_up_bias'
  | 'adapter_norm_before_weight'
  | 'adapter_norm_before_bias'
  | 'adapter_norm_after_weight'
  | 'adapter_norm_after_bias';

/** Non-tensor settings of one bottleneck adapter. */
export interface BottleneckSettings {
  /** The nonlinearity between the projections (from `nonLinearity`). */
  activation: (x: Tensor) => Tensor;
  /** Multiplies the up-projection's output. */
  scaling: number;
  /** Reads the sublayer's input (parallel) instead of its output (sequential). */
  isParallel: boolean;
  /** Dropout probability on the adapter's output while training. */
  dropout: number;
  /** With `ln_after`: the adapter's skip connection is added before that norm. */
  adapterResidualBeforeLn: boolean;
}

/** A sublayer module as the decoder block calls it (`attn(x, ctx)`, `self_attn(x, ctx, rope)`, `mlp(x)`). */
interface Sublayer extends Module {
  forward(x: Tensor, ...rest: unknown[]): Tensor;
}

const LN_EPS = 1e-5; // torch.nn.LayerNorm's default, which AdapterHub's adapter norms use

/**
 * A bottleneck adapter around a transformer sublayer (`attn` / `self_attn` / `mlp`),
 * `[B, T, d] -> [B, T, d]` with the sublayer's own extra arguments passed through.
 * With `y = sublayer(x)` and `A(z) = up(act(down(ln_before(z)))) * scaling`
 * (`down [m, d]`, `up [d, m]`, `m` the bottleneck width):
 * - sequential (Houlsby, Pfeiffer): `y + A(y)`, or with `lnAfter` `ln_after(A(y)) + y`
 *   (`ln_after(A(y) + y)` with `adapterResidualBeforeLn`);
 * - parallel (He et al.): `y + ln_after(A(x))`.
 * Several active adapters apply in order (sequential ones read the previous output).
 * The adapter adds a nonlinear module, so it cannot be merged into the base weights.
 */
export class BottleneckLayer extends TunerLayer<BottleneckLayerConfig, BottleneckSlot, Sublayer, BottleneckSettings> {
  readonly peftType = 'BOTTLENECK';

  constructor(base: Module) {
    const p = (savedKey: string) => ({ kind: 'parameter' as const, savedKey });
    super(asSublayer(base), {
      adapter_down_weight: p('adapter_down.weight'),
      adapter_down_bias: p('adapter_down.bias'),
      adapter_up_weight: p('adapter_up.weight'),
      adapter_up_bias: p('adapter_up.bias'),
      adapter_norm_before_weight: p('adapter_norm_before.weight'),
      adapter_norm_before_bias: p('adapter_norm_before.bias'),
      adapter_norm_after_weight: p('adapter_norm_after.weight'),
      adapter_norm_after_bias: p('adapter_norm_after.bias'),
    });
  }

  protected initAdapter(_name: string, c: BottleneckLayerConfig): NewAdapter<BottleneckSlot, BottleneckSettings> {
    const backend = backendOf(this.base_layer);
    const d = c.hiddenSize;
    const m = bottleneckWidth(c);
    const [down, up] = initProjections(c.initWeights, m, d, backend);
    const tensors: NewAdapter<BottleneckSlot, BottleneckSettings>['tensors'] = {
      adapter_down_weight: down,
      adapter_down_bias: zeros([m], { backend }),
      adapter_up_weight: up,
      adapter_up_bias: zeros([d], { backend }),
    };
    if (c.lnBefore) Object.assign(tensors, { adapter_norm_before_weight: ones([d], { backend }), adapter_norm_before_bias: zeros([d], { backend }) });
    if (c.lnAfter) Object.assign(tensors, { adapter_norm_after_weight: ones([d], { backend }), adapter_norm_after_bias: zeros([d], { backend }) });
    return {
      tensors,
      settings: { activation: getActivation(c.nonLinearity), scaling: c.scaling, isParallel: c.isParallel, dropout: c.dropout, adapterResidualBeforeLn: c.adapterResidualBeforeLn },
    };
  }

  forward(x: Tensor, ...rest: unknown[]): Tensor {
    return tidy(() => {
      let y = this.base_layer.forward(x, ...rest);
      for (const name of this.effectiveAdapters()) {
        const s = this.adapterSettings(name);
        if (s.isParallel) y = add(y, this.normAfter(name, this.bottleneck(name, x)));
        else y = this.sequential(name, y);
      }
      return y;
    });
  }

  /** `up(act(down(ln_before(z)))) * scaling`, with the adapter's dropout. Inside a tidy scope. */
  private bottleneck(name: string, z: Tensor): Tensor {
    const s = this.adapterSettings(name);
    const w = this.maybeAdapterTensor(name, 'adapter_norm_before_weight');
    const input = w ? layerNorm(z, w, this.adapterTensor(name, 'adapter_norm_before_bias'), LN_EPS) : z;
    const down = s.activation(linear(input, this.adapterTensor(name, 'adapter_down_weight'), this.adapterTensor(name, 'adapter_down_bias')));
    const up = linear(down, this.adapterTensor(name, 'adapter_up_weight'), this.adapterTensor(name, 'adapter_up_bias'));
    return dropout(s.scaling === 1 ? up : mul(up, s.scaling), s.dropout, this.training);
  }

  /** `ln_after(z)` when the adapter has one, else `z`. */
  private normAfter(name: string, z: Tensor): Tensor {
    const w = this.maybeAdapterTensor(name, 'adapter_norm_after_weight');
    return w ? layerNorm(z, w, this.adapterTensor(name, 'adapter_norm_after_bias'), LN_EPS) : z;
  }

  /** A sequential adapter on `y` with its skip connection (AdapterHub's `Adapter.forward` order). */
  private sequential(name: string, y: Tensor): Tensor {
    const out = this.bottleneck(name, y);
    if (this.adapterSettings(name).adapterResidualBeforeLn) return this.normAfter(name, add(out, y));
    return add(this.normAfter(name, out), y);
  }

  override merge(): never {
    throw new Error('BOTTLENECK: a bottleneck adapter cannot be merged into the base weights: it adds a nonlinear module (down-projection, activation, up-projection) to the sublayer, which no weight of the base can express');
  }
}

/** `m` as a sublayer; throws naming its class when it has no `forward`. */
function asSublayer(m: Module): Sublayer {
  if (typeof (m as unknown as Partial<Sublayer>).forward !== 'function') throw new Error(`BOTTLENECK: cannot wrap ${m.constructor.name}: it has no forward`);
  return m as Sublayer;
}

/** `z W^T + b`, `[..., in] -> [..., out]`. */
function linear(z: Tensor, weight: Tensor, bias: Tensor): Tensor {
  return add(matmul(z, weight, { transposeB: true }), bias);
}

/** Initial `down [m, d]` and `up [d, m]` for AdapterHub's `init_weights` strategies. */
function initProjections(init: BottleneckLayerConfig['initWeights'], m: number, d: number, backend?: BackendName): [Tensor, Tensor] {
  if (backend === 'meta') return [zeros([m, d], { backend }), zeros([d, m], { backend })];
  if (init === 'bert') return [mul(randn([m, d], { backend }), 0.02), mul(randn([d, m], { backend }), 0.02)];
  if (init === 'houlsby') return [truncatedNormal([m, d], 1e-2, backend), truncatedNormal([d, m], 1e-2, backend)];
  // mam_adapter: nn.init.kaiming_uniform_(a = sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)); up is zero.
  const bound = 1 / Math.sqrt(d);
  return [mul(sub(rand([m, d], { backend }), 0.5), 2 * bound), zeros([d, m], { backend })];
}

/**
 * N(0, std^2) truncated to [-2 std, 2 std] (torch's `trunc_normal_` as AdapterHub's
 * `houlsby` init calls it) by redrawing values outside: after 8 draws the chance that
 * one is still outside is 0.0455^8 (about 2e-11); those are clamped. Inside a tidy scope.
 */
function truncatedNormal(shape: number[], std: number, backend?: BackendName): Tensor {
  let z = randn(shape, { backend });
  for (let i = 0; i < 8; i++) z = where(lessEqual(abs(z), 2), z, randn(shape, { backend }));
  return mul(minimum(maximum(z, -2), 2), std);
}
