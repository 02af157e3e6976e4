import { Optimizer } from './optimizer.js';
import { type OptimizerOptions, checkNonNegative, splitOptions } from './options.js';
import type { UpdateRule } from './update-rule.js';
import type { BaseHyper, ParamsInput } from './types.js';

/** Hyperparameters of {@link Adam} and {@link AdamW}. */
export interface AdamHyper extends BaseHyper {
  /** Decay rates of the first and second moment estimates. */
  betas: [number, number];
  /** Added to the bias-corrected `sqrt(v)` (outside the square root, as PyTorch does). */
  eps: number;
  /** Normalise by the running maximum of the second moment (Reddi et al. 2018). */
  amsgrad: boolean;
  /** Ascend instead of descend. */
  maximize: boolean;
}

const f = Math.fround;

/**
 * Adam and AdamW, in the order of `torch.optim.adam/adamw` `_single_tensor_*` (torch 1.13):
 * ```
 * g = g + wd * p                       (Adam: L2 decay)      | p = p * (1 - lr * wd)   (AdamW: decoupled)
 * m = m * b1 + (1 - b1) * g
 * v = v * b2 + (1 - b2) * g * g
 * vmax = max(vmax, v)                  (amsgrad)
 * denom = sqrt(v or vmax) / sqrt(1 - b2^t) + eps
 * p = p - lr / (1 - b1^t) * m / denom
 * ```
 */
function adamRule(decoupled: boolean): UpdateRule<AdamHyper> {
  return {
    name: decoupled ? 'AdamW' : 'Adam',
    stateNames: (h) => (h.amsgrad ? ['expAvg', 'expAvgSq', 'maxExpAvgSq'] : ['expAvg', 'expAvgSq']),
    scalars(h, step) {
      const [b1, b2] = h.betas;
      // Host scalars in float64, as PyTorch computes them in Python floats.
      const biasCorrection1 = 1 - b1 ** step;
      const biasCorrection2 = 1 - b2 ** step;
      return {
        wd: h.weightDecay,
        decay: 1 - h.lr * h.weightDecay,
        beta1: b1,
        oneMinusBeta1: 1 - b1,
        beta2: b2,
        oneMinusBeta2: 1 - b2,
        bc2Sqrt: Math.sqrt(biasCorrection2),
        eps: h.eps,
        negStepSize: -(h.lr / biasCorrection1),
      };
    },
    cpu(p, g, s, k, h) {
      const { expAvg: m, expAvgSq: v, maxExpAvgSq: vmax } = s;
      const sign = h.maximize ? -1 : 1;
      const [wd, decay, b1, c1, b2, c2, bc2, eps, negSs] = [k.wd, k.decay, k.beta1, k.oneMinusBeta1, k.beta2, k.oneMinusBeta2, k.bc2Sqrt, k.eps, k.negStepSize].map(f);
      for (let i = 0; i < p.length; i++) {
        let gi = sign * g[i];
        if (decoupled) p[i] = p[i] * decay;
        else if (h.weightDecay !== 0) gi = f(gi + wd * p[i]);
        m[i] = f(m[i] * b1) + c1 * gi;
        v[i] = f(v[i] * b2) + f(c2 * gi * gi);
        let vi = v[i];
        if (vmax) vi = vmax[i] = Math.max(vmax[i], v[i]);
        const denom = f(f(f(Math.sqrt(vi)) / bc2) + eps);
        p[i] = p[i] + f(negSs * m[i]) / denom;
      }
    },
    wgsl(h) {
      const lines = [`  var gg = ${h.maximize ? '-g' : 'g'};`];
      if (decoupled) lines.push('  p = p * u.decay;');
      else if (h.weightDecay !== 0) lines.push('  gg = gg + u.wd * p;');
      lines.push('  expAvg = expAvg * u.beta1 + u.oneMinusBeta1 * gg;');
      lines.push('  expAvgSq = expAvgSq * u.beta2 + u.oneMinusBeta2 * gg * gg;');
      if (h.amsgrad) lines.push('  maxExpAvgSq = max(maxExpAvgSq, expAvgSq);');
      lines.push(`  let denom = sqrt(${h.amsgrad ? 'maxExpAvgSq' : 'expAvgSq'}) / u.bc2Sqrt + u.eps;`);
      lines.push('  p = p + u.negStepSize * expAvg / denom;');
      const variant = `${h.maximize ? 'max' : 'min'}-${!decoupled && h.weightDecay !== 0 ? 'l2' : 'nol2'}-${h.amsgrad ? 'amsgrad' : 'adam'}`;
      return { variant, body: lines.join('\n') };
    },
  };
}

/** The Adam update rule (L2 weight decay added to the gradient). */
export const adamL2Rule = adamRule(false);
/** The AdamW update rule (decoupled weight decay). */
export const adamwRule = adamRule(true);

/**
 * Checks Adam-family hyperparameters (also used by the 8-bit and paged optimizers):
 * lr, eps and weightDecay finite and >= 0, betas two numbers in [0, 1). Throws a
 * RangeError naming the optimizer, where (`group 0`) and the field.
 */
export function validateAdamHyper(name: string, h: AdamHyper, where: string): void {
  checkNonNegative(name, where, 'lr', h.lr);
  checkNonNegative(name, where, 'eps', h.eps);
  if (!Array.isArray(h.betas) || h.betas.length !== 2 || !h.betas.every((b) => typeof b === 'number' && b >= 0 && b < 1)) {
    throw new RangeError(`${name} ${where}: betas must be two numbers in [0, 1), got ${JSON.stringify(h.betas)}`);
  }
  checkNonNegative(name, where, 'weightDecay', h.weightDecay);
}

/** Options of {@link Adam} / {@link AdamW}: hyperparameter defaults plus optimizer options. */
export type AdamOptions = Partial<AdamHyper> & OptimizerOptions;

/**
 * Adam (Kingma & Ba 2015) with L2 weight decay and optional AMSGrad, matching
 * `torch.optim.Adam`. Defaults: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 0.
 * @example const opt = new Adam(params, { lr: 1e-3 });
 */
export class Adam extends Optimizer<AdamHyper> {
  constructor(params: ParamsInput<AdamHyper>, options: AdamOptions = {}) {
    const [hyper, opts] = splitOptions(options);
    super(adamL2Rule, params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, maximize: false, ...hyper }, opts);
  }

  protected validate(h: AdamHyper, where: string): void {
    validateAdamHyper(this.optimizerName, h, where);
  }
}

/**
 * AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"): Adam with
 * the decay applied to the parameter (`p *= 1 - lr * wd`) instead of the gradient,
 * matching `torch.optim.AdamW`. Defaults: lr 1e-3, betas [0.9, 0.999], eps 1e-8,
 * weightDecay 1e-2. On WebGPU one fused kernel updates many parameters per dispatch.
 * @example
 * const opt = new AdamW(peft.trainableParameters(), { lr: 2e-4, weightDecay: 0 });
 * loss.backward(); await opt.step(); opt.zeroGrad();
 */
export class AdamW extends Optimizer<AdamHyper> {
  /** `name`: the optimizer's name in errors (subclasses such as PagedAdamW pass their own). */
  constructor(params: ParamsInput<AdamHyper>, options: AdamOptions = {}, name = 'AdamW') {
    const [hyper, opts] = splitOptions(options);
    super(adamwRule, params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false, maximize: false, ...hyper }, opts, name);
  }

  protected validate(h: AdamHyper, where: string): void {
    validateAdamHyper(this.optimizerName, h, where);
  }
}
