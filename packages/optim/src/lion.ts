import { Optimizer } from './optimizer.js';
import { type OptimizerOptions, checkNonNegative, splitOptions } from './options.js';
import type { UpdateRule } from './update-rule.js';
import type { BaseHyper, ParamsInput } from './types.js';

/** Hyperparameters of {@link Lion}. */
export interface LionHyper extends BaseHyper {
  /** `beta1` interpolates the update direction, `beta2` the momentum. */
  betas: [number, number];
}

const f = Math.fround;

/**
 * Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2),
 * with decoupled weight decay applied first as in the paper's reference code:
 * ```
 * p = p * (1 - lr * wd)
 * c = b1 * m + (1 - b1) * g
 * p = p - lr * sign(c)
 * m = b2 * m + (1 - b2) * g
 * ```
 */
export const lionRule: UpdateRule<LionHyper> = {
  name: 'Lion',
  stateNames: () => ['expAvg'],
  scalars: (h) => ({
    decay: 1 - h.lr * h.weightDecay,
    beta1: h.betas[0],
    oneMinusBeta1: 1 - h.betas[0],
    beta2: h.betas[1],
    oneMinusBeta2: 1 - h.betas[1],
    negLr: -h.lr,
  }),
  cpu(p, g, s, k) {
    const m = s.expAvg;
    const [decay, b1, c1, b2, c2, negLr] = [k.decay, k.beta1, k.oneMinusBeta1, k.beta2, k.oneMinusBeta2, k.negLr].map(f);
    for (let i = 0; i < p.length; i++) {
      p[i] = p[i] * decay;
      const c = f(f(m[i] * b1) + c1 * g[i]);
      p[i] = p[i] + negLr * Math.sign(c);
      m[i] = f(m[i] * b2) + c2 * g[i];
    }
  },
  wgsl: () => ({
    variant: 'lion',
    body: `  p = p * u.decay;
  let c = expAvg * u.beta1 + u.oneMinusBeta1 * g;
  p = p + u.negLr * sign(c);
  expAvg = expAvg * u.beta2 + u.oneMinusBeta2 * g;`,
  }),
};

/**
 * Lion: sign updates with interpolated momentum, one state buffer per parameter.
 * Use a smaller lr (3-10x) and larger weight decay than AdamW. Defaults: lr 1e-4,
 * betas [0.9, 0.99], weightDecay 0.
 * @example const opt = new Lion(params, { lr: 3e-5, weightDecay: 0.1 });
 */
export class Lion extends Optimizer<LionHyper> {
  constructor(params: ParamsInput<LionHyper>, options: Partial<LionHyper> & OptimizerOptions = {}) {
    const [hyper, opts] = splitOptions(options);
    super(lionRule, params, { lr: 1e-4, betas: [0.9, 0.99], weightDecay: 0, ...hyper }, opts);
  }

  protected validate(h: LionHyper, where: string): void {
    checkNonNegative('Lion', where, 'lr', h.lr);
    if (!Array.isArray(h.betas) || h.betas.length !== 2 || !h.betas.every((b) => typeof b === 'number' && b >= 0 && b <= 1)) {
      throw new RangeError(`Lion ${where}: betas must be two numbers in [0, 1], got ${JSON.stringify(h.betas)}`);
    }
    checkNonNegative('Lion', where, 'weightDecay', h.weightDecay);
  }
}
