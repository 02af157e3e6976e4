/** Options shared by every optimizer, and how a constructor separates them from hyperparameters. */

/**
 * What a step does when a gradient holds a NaN or infinity (nothing is updated in
 * every case):
 * - `'skip'`: skip the step and say so in the returned `StepReport`.
 * - `'warn'`: skip it, and warn (naming the parameters) after `warnAfterSkips`
 *   consecutive skipped steps, then again every `warnAfterSkips` more.
 * - `'throw'`: throw a `NonFiniteGradientError` naming the parameters.
 */
export type NonFinitePolicy = 'skip' | 'warn' | 'throw';

/** Options shared by every optimizer. */
export interface OptimizerOptions {
  /**
   * Check gradients for NaN/infinity before updating (default true). The check reads
   * one flag per parameter back from the device. `false` turns the check off: a
   * non-finite gradient then flows into the parameters. Kept from earlier releases;
   * `nonFinite` chooses what a failed check does.
   */
  skipNonFinite?: boolean;
  /** What a step with non-finite gradients does (default `'warn'`). */
  nonFinite?: NonFinitePolicy;
  /** Consecutive skipped steps before the `'warn'` policy warns (default 10, a positive integer). */
  warnAfterSkips?: number;
  /** Receives the `'warn'` policy's warnings (default `console.warn`). */
  onWarning?: (message: string) => void;
}

const OPTION_KEYS = ['skipNonFinite', 'nonFinite', 'warnAfterSkips', 'onWarning'] as const;

/**
 * Splits a constructor's options into hyperparameters and `OptimizerOptions`
 * (for optimizers defined outside this package, e.g. the 8-bit ones).
 * @example const [hyper, options] = splitOptions({ lr: 1e-3, nonFinite: 'throw' });
 */
export function splitOptions<T extends OptimizerOptions>(options: T): [Omit<T, keyof OptimizerOptions>, OptimizerOptions] {
  const hyper: Record<string, unknown> = { ...(options as Record<string, unknown>) };
  const opts: Record<string, unknown> = {};
  for (const k of OPTION_KEYS) {
    if (k in hyper) opts[k] = hyper[k];
    delete hyper[k];
  }
  return [hyper as Omit<T, keyof OptimizerOptions>, opts];
}

/** Resolved options with validation; throws a RangeError naming the optimizer and option. */
export function resolveOptions(owner: string, o: OptimizerOptions): Required<OptimizerOptions> {
  const nonFinite = o.nonFinite ?? 'warn';
  if (nonFinite !== 'skip' && nonFinite !== 'warn' && nonFinite !== 'throw') {
    throw new RangeError(`${owner}: option nonFinite must be 'skip', 'warn' or 'throw', got ${JSON.stringify(nonFinite)}`);
  }
  const warnAfterSkips = o.warnAfterSkips ?? 10;
  if (!Number.isInteger(warnAfterSkips) || warnAfterSkips < 1) throw new RangeError(`${owner}: option warnAfterSkips must be a positive integer, got ${warnAfterSkips}`);
  if (o.skipNonFinite !== undefined && typeof o.skipNonFinite !== 'boolean') throw new RangeError(`${owner}: option skipNonFinite must be a boolean, got ${JSON.stringify(o.skipNonFinite)}`);
  if (o.onWarning !== undefined && typeof o.onWarning !== 'function') throw new RangeError(`${owner}: option onWarning must be a function`);
  return { skipNonFinite: o.skipNonFinite ?? true, nonFinite, warnAfterSkips, onWarning: o.onWarning ?? ((m) => console.warn(m)) };
}

/** Throws a RangeError unless `value` is a finite number >= 0 (names optimizer, group and field). */
export function checkNonNegative(owner: string, where: string, field: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RangeError(`${owner} ${where}: ${field} must be a finite number >= 0, got ${String(value)}`);
  }
}
