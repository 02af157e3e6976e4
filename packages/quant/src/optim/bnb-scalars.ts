/**
 * Per-step scalars of bitsandbytes' Adam kernels (`kOptimizer32bit2State` and
 * `kOptimizerStatic8bit2StateBlockwise` in csrc/kernels.cu), computed on the host in
 * float32 as the kernels compute them from their float arguments.
 */
import type { AdamHyper } from '@webpeft/optim';

const f = Math.fround;

/** The float32 scalars of one Adam step in bitsandbytes' formula. */
export interface BnbAdamScalars {
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  /** `-lr * sqrt(1 - beta2^t) / (1 - beta1^t)`. */
  stepSize: number;
  /** `sqrt(1 - beta2^t) * eps` (the eps term outside the square root, bias corrected). */
  correctedEps: number;
  /** `1 - lr * weightDecay`, applied after the update when weightDecay > 0. */
  decay: number;
  /** 1 when weight decay is applied, else 0. */
  hasDecay: number;
  [name: string]: number;
}

/**
 * Scalars of update number `step` (1-based). `powf` is taken as the correctly rounded
 * float32 power (the CUDA kernels use `powf`/`__powf`, whose last bit is device
 * dependent); `__fdividef(-lr * c2, c1)` as a correctly rounded division.
 */
export function bnbAdamScalars(h: AdamHyper, step: number): BnbAdamScalars {
  const b1 = f(h.betas[0]);
  const b2 = f(h.betas[1]);
  const lr = f(h.lr);
  const eps = f(h.eps);
  const wd = f(h.weightDecay);
  const correction1 = f(1 - f(b1 ** step));
  const correction2 = f(Math.sqrt(f(1 - f(b2 ** step))));
  return {
    beta1: b1,
    oneMinusBeta1: f(1 - b1),
    beta2: b2,
    oneMinusBeta2: f(1 - b2),
    stepSize: f(f(-lr * correction2) / correction1),
    correctedEps: f(correction2 * eps),
    decay: f(1 - f(lr * wd)),
    hasDecay: wd > 0 ? 1 : 0,
  };
}
