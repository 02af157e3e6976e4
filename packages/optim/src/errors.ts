/** Typed errors of the optimizers, so callers can tell a bad step from a bad input. */
import type { NonFiniteParam } from './types.js';

/**
 * A step found NaN or infinity in gradients under the `nonFinite: 'throw'` policy.
 * Nothing was updated; `params` names the parameters whose gradients are not finite.
 */
export class NonFiniteGradientError extends Error {
  override readonly name = 'NonFiniteGradientError';
  constructor(
    /** The optimizer that refused the step. */
    readonly optimizer: string,
    /** The parameters with non-finite gradients (group, index, name). */
    readonly params: readonly NonFiniteParam[],
  ) {
    super(`${optimizer}: non-finite gradients in ${describeParams(params)}; nothing was updated`);
  }
}

/**
 * `step()`, `stateDict()` or `loadStateDict()` was called while a step of the same
 * optimizer was still in flight (its promise not yet settled). Await each step before
 * the next: overlapping steps would read and write the same state.
 */
export class StepInFlightError extends Error {
  override readonly name = 'StepInFlightError';
  constructor(
    /** The optimizer whose step is in flight. */
    readonly optimizer: string,
    /** The call that was refused, e.g. `step`. */
    readonly call: string,
  ) {
    super(`${optimizer}.${call}: a step of this optimizer is still in flight; await opt.step() before calling ${call} again (nothing was changed)`);
  }
}

/** `name (group G param I), ...` for messages. */
export function describeParams(params: readonly NonFiniteParam[]): string {
  return params.map((b) => `${b.name} (group ${b.group} param ${b.index})`).join(', ');
}
