/**
 * A step that updates "large" parameters with their own state storage (8-bit,
 * paged) and leaves the others to the `@webpeft/optim` base class, with one
 * non-finite check over all of them first, so a skipped step changes nothing.
 */
import type { BaseHyper, Optimizer, StepReport } from '@webpeft/optim';
import { ShapeError, type Tensor } from '@webpeft/tensor';

/** A parameter to update with its gradient and position. */
export interface LargeEntry {
  group: number;
  index: number;
  name: string;
  param: Tensor;
  grad: Tensor;
}

/**
 * Runs one step: checks every gradient (`opt.screenGradients`), then `baseStep()`
 * with the large parameters' gradients hidden, then `updateLarge` with them.
 * Hyperparameters are read before the first await, as the base class does.
 */
export async function splitStep<H extends BaseHyper>(
  opt: Optimizer<H>,
  name: string,
  baseStep: () => Promise<StepReport>,
  isLarge: (p: Tensor) => boolean,
  updateLarge: (entries: LargeEntry[], hypers: H[]) => Promise<void>,
): Promise<StepReport> {
  const all: LargeEntry[] = [];
  opt.paramGroups.forEach((g, gi) =>
    g.params.forEach((param, index) => {
      if (param.grad) all.push({ group: gi, index, name: g.names[index], param, grad: param.grad });
    }),
  );
  const large = all.filter((e) => isLarge(e.param));
  if (large.length === 0) return baseStep();
  const hypers = opt.paramGroups.map((g) => ({ ...g }));
  for (const e of large) {
    if (e.grad.backend !== e.param.backend || e.grad.size !== e.param.size || e.grad.dtype !== e.param.dtype) {
      throw new ShapeError(
        `${name}: gradient of ${e.name} is ${e.grad.dtype} [${e.grad.shape}] on ${e.grad.backend.name}, parameter is ${e.param.dtype} [${e.param.shape}] on ${e.param.backend.name}`,
      );
    }
  }
  // The policy (skip, warn, throw) is the base class's; nothing has changed yet.
  const skipped = await opt.screenGradients(all);
  if (skipped) return skipped;
  const skip = opt.skipNonFinite;
  for (const e of large) e.param.grad = null;
  opt.skipNonFinite = false;
  try {
    await baseStep();
  } finally {
    opt.skipNonFinite = skip;
    for (const e of large) e.param.grad = e.grad;
  }
  await updateLarge(large, hypers);
  return { skipped: false, updated: all.length, nonFinite: [], message: `${name}: updated ${all.length} parameters` };
}
