import { Optimizer } from './optimizer.js';
import { type OptimizerOptions, checkNonNegative, splitOptions } from './options.js';
import type { UpdateRule } from './update-rule.js';
import type { BaseHyper, FloatArray, ParamsInput } from './types.js';

/** Hyperparameters of {@link SGD} (PyTorch's names in camelCase). */
export interface SgdHyper extends BaseHyper {
  /** Momentum factor (0 = plain SGD, no state). */
  momentum: number;
  /** Dampening of the gradient added to the momentum buffer (not applied on the first step). */
  dampening: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0). */
  nesterov: boolean;
  /** Ascend instead of descend. */
  maximize: boolean;
}

const f = Math.fround;

/**
 * `torch.optim.SGD` single-tensor path:
 * `d = g + wd * p; buf = first ? d : momentum * buf + (1 - dampening) * d;
 *  d = nesterov ? d + momentum * buf : buf; p -= lr * d`.
 */
export const sgdRule: UpdateRule<SgdHyper> = {
  name: 'SGD',
  stateNames: (h) => (h.momentum !== 0 ? ['momentumBuffer'] : []),
  scalars: (h, step) => ({
    wd: h.weightDecay,
    momentum: h.momentum,
    oneMinusDampening: 1 - h.dampening,
    negLr: -h.lr,
    first: step === 1 ? 1 : 0,
  }),
  cpu(p, g, s, k, h) {
    const buf: FloatArray | undefined = s.momentumBuffer;
    const sign = h.maximize ? -1 : 1;
    const wd = f(k.wd);
    const mom = f(k.momentum);
    const damp = f(k.oneMinusDampening);
    const negLr = f(k.negLr);
    for (let i = 0; i < p.length; i++) {
      let d = sign * g[i];
      if (h.weightDecay !== 0) d = f(d + wd * p[i]);
      if (buf) {
        buf[i] = k.first ? d : f(f(buf[i] * mom) + damp * d);
        d = h.nesterov ? f(d + mom * buf[i]) : buf[i];
      }
      p[i] = p[i] + negLr * d;
    }
  },
  wgsl(h) {
    const lines = [`  var d = ${h.maximize ? '-g' : 'g'};`];
    if (h.weightDecay !== 0) lines.push('  d = d + u.wd * p;');
    if (h.momentum !== 0) {
      lines.push('  if (u.first != 0.0) { momentumBuffer = d; } else { momentumBuffer = momentumBuffer * u.momentum + u.oneMinusDampening * d; }');
      lines.push(h.nesterov ? '  d = d + u.momentum * momentumBuffer;' : '  d = momentumBuffer;');
    }
    lines.push('  p = p + u.negLr * d;');
    const variant = `${h.maximize ? 'max' : 'min'}-${h.weightDecay !== 0 ? 'wd' : 'nowd'}-${h.momentum !== 0 ? (h.nesterov ? 'nesterov' : 'momentum') : 'plain'}`;
    return { variant, body: lines.join('\n') };
  },
};

/**
 * Stochastic gradient descent with momentum, dampening, Nesterov momentum and (L2)
 * weight decay, matching `torch.optim.SGD` step by step.
 * @example
 * const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true });
 * loss.backward(); await opt.step(); opt.zeroGrad();
 */
export class SGD extends Optimizer<SgdHyper> {
  constructor(params: ParamsInput<SgdHyper>, options: Partial<SgdHyper> & OptimizerOptions = {}) {
    const [hyper, opts] = splitOptions(options);
    super(sgdRule, params, { lr: 1e-3, weightDecay: 0, momentum: 0, dampening: 0, nesterov: false, maximize: false, ...hyper }, opts);
  }

  protected validate(h: SgdHyper, where: string): void {
    checkNonNegative('SGD', where, 'lr', h.lr);
    checkNonNegative('SGD', where, 'momentum', h.momentum);
    checkNonNegative('SGD', where, 'dampening', h.dampening);
    checkNonNegative('SGD', where, 'weightDecay', h.weightDecay);
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
      throw new RangeError(`SGD ${where}: nesterov needs momentum > 0 and dampening 0 (got momentum ${h.momentum}, dampening ${h.dampening})`);
    }
  }
}
