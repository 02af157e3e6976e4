/**
 * bitsandbytes' 32-bit Adam (`kOptimizer32bit2State`, ADAM) as an `@webpeft/optim`
 * update rule: the fp32 states that the 8-bit optimizers keep for small parameters.
 * Decay is applied after the update (`p *= 1 - lr*wd`), and eps is added to
 * `sqrt(v)` scaled by the bias correction, as in bitsandbytes.
 */
import type { AdamHyper, UpdateRule } from '@webpeft/optim';
import { adam32bitBnbHost } from './adam-8bit-host.js';
import { bnbAdamScalars, type BnbAdamScalars } from './bnb-scalars.js';

/** The rule named `name` (the optimizer's name in state dicts). */
export function bnbAdamRule(name: string): UpdateRule<AdamHyper> {
  return {
    name,
    stateNames: () => ['state1', 'state2'],
    scalars: (h, step) => bnbAdamScalars(h, step),
    cpu(p, g, s, k) {
      adam32bitBnbHost(p, g, s.state1, s.state2, k as BnbAdamScalars);
    },
    wgsl() {
      const body = [
        '  state1 = state1 * u.beta1 + u.oneMinusBeta1 * g;',
        '  state2 = state2 * u.beta2 + u.oneMinusBeta2 * (g * g);',
        '  p = p + u.stepSize * (state1 / (sqrt(state2) + u.correctedEps));',
        '  if (u.hasDecay != 0.0) { p = p * u.decay; }',
      ].join('\n');
      return { variant: 'bnb32', body };
    },
  };
}
