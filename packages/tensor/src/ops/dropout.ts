import { engine } from '../engine.js';
import { registerGradient } from '../registry.js';
import { takeStream } from '../random/rng.js';
import type { Tensor } from '../tensor.js';
import { checkFloat } from './float-check.js';
import { reshape } from './layout.js';

/**
 * Inverted dropout: zero each element with probability `p` and scale the rest by
 * `1/(1-p)`. The mask comes from the global Philox stream (same on every backend).
 * With `training` false or `p` 0 it returns `x` unchanged (a new handle). Shape unchanged.
 */
export function dropout(x: Tensor, p: number, training = true): Tensor {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: p must be in [0, 1), got ${p}`);
  checkFloat('dropout', x);
  if (!training || p === 0) return reshape(x, x.shape);
  const { seed, offset } = takeStream(x.size);
  return engine.runOp('Dropout', [x], { p, seed, offset });
}

/** Registers the gradient of dropout: the same Philox mask (same seed and offset) scales it. */
export function registerDropoutGradient(): void {
  registerGradient('Dropout', {
    saveInputs: false,
    saveOutput: false,
    grad: (dy, { attrs }) => [engine.runOp('Dropout', [dy], attrs)],
  });
}
