/**
 * Learning-rate schedules with PyTorch `LambdaLR` semantics and the multipliers of
 * Hugging Face transformers' `get_constant_schedule_with_warmup`,
 * `get_linear_schedule_with_warmup` and `get_cosine_schedule_with_warmup`
 * (transformers/optimization.py): at step `t` (0 after construction, +1 per `step()`)
 * every group's lr is `baseLr * lambda(t)`.
 */

/** A learning-rate multiplier of the step count. */
export type LrLambda = (step: number) => number;

/** The part of an optimizer a scheduler drives: its groups' `lr` (and `initialLr`). */
export interface SchedulableOptimizer {
  paramGroups: { lr: number; initialLr?: number }[];
}

/** Saved scheduler state: the step count and the base learning rates. */
export interface SchedulerStateDict {
  lastStep: number;
  baseLrs: number[];
}

/**
 * Sets each group's lr to `baseLr * lambda(t)`, like `torch.optim.lr_scheduler.LambdaLR`.
 * The base lr of a group is its `initialLr`, recorded from its lr when first scheduled.
 * Construction applies `lambda(0)`; call `step()` after each optimizer step.
 * @example
 * const sched = new LambdaLr(opt, (t) => Math.min(1, t / 100));
 * for (...) { loss.backward(); await opt.step(); sched.step(); opt.zeroGrad(); }
 */
export class LambdaLr {
  /** Steps taken (`last_epoch` in PyTorch). */
  lastStep = 0;
  readonly baseLrs: number[];
  private readonly lambdas: LrLambda[];

  constructor(
    readonly optimizer: SchedulableOptimizer,
    lambda: LrLambda | readonly LrLambda[],
  ) {
    const groups = optimizer.paramGroups;
    if (Array.isArray(lambda) && lambda.length !== groups.length) {
      throw new Error(`LambdaLr: ${lambda.length} lambdas for ${groups.length} parameter groups`);
    }
    this.lambdas = groups.map((_, i) => (typeof lambda === 'function' ? lambda : lambda[i]));
    for (const g of groups) g.initialLr ??= g.lr;
    this.baseLrs = groups.map((g) => g.initialLr!);
    this.apply();
  }

  /** Advances one step and sets the groups' learning rates (a lambda giving a non-finite or negative lr throws, changing nothing). */
  step(): void {
    const lrs = this.lrsAt(this.lastStep + 1, this.baseLrs, 'step');
    this.lastStep++;
    this.set(lrs);
  }

  /** The learning rates last set, one per group. */
  getLastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  /** The step count and base learning rates (JSON-able). */
  stateDict(): SchedulerStateDict {
    return { lastStep: this.lastStep, baseLrs: [...this.baseLrs] };
  }

  /**
   * Restores the step count and base lrs, and sets the lrs of that step. Checks first:
   * `lastStep` a non-negative integer, `baseLrs` one finite number >= 0 per group, and
   * the resulting lrs finite and >= 0; throws a RangeError naming the field, and
   * changes nothing then.
   */
  loadStateDict(sd: SchedulerStateDict): void {
    const lrs = this.checkStateDict(sd);
    this.lastStep = sd.lastStep;
    this.baseLrs.splice(0, this.baseLrs.length, ...sd.baseLrs);
    this.set(lrs);
  }

  /**
   * Runs every check of {@link loadStateDict} on `sd` and changes nothing; returns the
   * lrs that step would set. Throws (naming the field) as `loadStateDict` would.
   */
  checkStateDict(sd: SchedulerStateDict): number[] {
    const where = 'LambdaLr.loadStateDict';
    if (typeof sd !== 'object' || sd === null || !Array.isArray(sd.baseLrs)) throw new TypeError(`${where}: not a scheduler state dict (needs 'lastStep' and 'baseLrs')`);
    if (sd.baseLrs.length !== this.baseLrs.length) {
      throw new Error(`${where}: baseLrs has ${sd.baseLrs.length} entries, the optimizer has ${this.baseLrs.length} groups`);
    }
    if (typeof sd.lastStep !== 'number' || !Number.isInteger(sd.lastStep) || sd.lastStep < 0) {
      throw new RangeError(`${where}: lastStep must be a non-negative integer, got ${String(sd.lastStep)}`);
    }
    sd.baseLrs.forEach((lr, i) => {
      if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0) throw new RangeError(`${where}: baseLrs[${i}] must be a finite number >= 0, got ${String(lr)}`);
    });
    return this.lrsAt(sd.lastStep, sd.baseLrs, 'loadStateDict');
  }

  private apply(): void {
    this.set(this.lrsAt(this.lastStep, this.baseLrs, 'constructor'));
  }

  /** The lrs at step `t`; throws a RangeError naming the group when one is not a finite number >= 0. */
  private lrsAt(t: number, baseLrs: readonly number[], call: string): number[] {
    return baseLrs.map((base, i) => {
      const lr = base * this.lambdas[i](t);
      if (!Number.isFinite(lr) || lr < 0) throw new RangeError(`LambdaLr.${call}: group ${i} lr at step ${t} is ${lr} (base lr ${base}); lrs must be finite and >= 0`);
      return lr;
    });
  }

  private set(lrs: readonly number[]): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      g.lr = lrs[i];
    });
  }
}

/** Warmup options shared by the schedules. */
export interface WarmupOptions {
  /** Steps of linear warmup from 0 to the base lr (default 0). */
  warmupSteps?: number;
}

/** Options of the decaying schedules. */
export interface DecayOptions extends WarmupOptions {
  /** Total training steps; the lr reaches 0 there. */
  totalSteps: number;
}

/** Options of {@link cosineWithWarmup}. */
export interface CosineOptions extends DecayOptions {
  /** Number of cosine waves over the decay (default 0.5: from max to 0 once). */
  numCycles?: number;
}

function checkSteps(name: string, warmup: number, total?: number): void {
  if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`${name}: warmupSteps must be a non-negative integer, got ${warmup}`);
  if (total !== undefined && (!Number.isInteger(total) || total < 0)) throw new RangeError(`${name}: totalSteps must be a non-negative integer, got ${total}`);
}

/** HF `_get_constant_schedule_with_warmup_lr_lambda`: `t / max(1, warmup)` during warmup, then 1. */
export function constantLambda(warmupSteps = 0): LrLambda {
  checkSteps('constantLambda', warmupSteps);
  return (t) => (t < warmupSteps ? t / Math.max(1, warmupSteps) : 1);
}

/** HF `_get_linear_schedule_with_warmup_lr_lambda`: warmup, then linear decay to 0 at `totalSteps`. */
export function linearLambda(warmupSteps: number, totalSteps: number): LrLambda {
  checkSteps('linearLambda', warmupSteps, totalSteps);
  return (t) => (t < warmupSteps ? t / Math.max(1, warmupSteps) : Math.max(0, (totalSteps - t) / Math.max(1, totalSteps - warmupSteps)));
}

/** HF `_get_cosine_schedule_with_warmup_lr_lambda`: warmup, then `0.5 (1 + cos(pi * numCycles * 2 * progress))`, floored at 0. */
export function cosineLambda(warmupSteps: number, totalSteps: number, numCycles = 0.5): LrLambda {
  checkSteps('cosineLambda', warmupSteps, totalSteps);
  return (t) => {
    if (t < warmupSteps) return t / Math.max(1, warmupSteps);
    const progress = (t - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
    return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
  };
}

/**
 * Constant lr after an optional linear warmup (HF `get_constant_schedule_with_warmup`;
 * `get_constant_schedule` when `warmupSteps` is 0).
 * @example const sched = constantSchedule(opt, { warmupSteps: 10 });
 */
export function constantSchedule(optimizer: SchedulableOptimizer, { warmupSteps = 0 }: WarmupOptions = {}): LambdaLr {
  return new LambdaLr(optimizer, constantLambda(warmupSteps));
}

/**
 * Linear warmup then linear decay to 0 at `totalSteps` (HF `get_linear_schedule_with_warmup`).
 * @example const sched = linearWithWarmup(opt, { warmupSteps: 20, totalSteps: 500 });
 */
export function linearWithWarmup(optimizer: SchedulableOptimizer, { warmupSteps = 0, totalSteps }: DecayOptions): LambdaLr {
  return new LambdaLr(optimizer, linearLambda(warmupSteps, totalSteps));
}

/**
 * Linear warmup then cosine decay (HF `get_cosine_schedule_with_warmup`).
 * @example const sched = cosineWithWarmup(opt, { warmupSteps: 20, totalSteps: 500 });
 */
export function cosineWithWarmup(optimizer: SchedulableOptimizer, { warmupSteps = 0, totalSteps, numCycles = 0.5 }: CosineOptions): LambdaLr {
  return new LambdaLr(optimizer, cosineLambda(warmupSteps, totalSteps, numCycles));
}
