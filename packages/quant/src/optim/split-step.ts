/**
 * A step that updates "large" parameters with their own state storage (8-bit,
 * paged) and leaves the others to the `@webpeft/optim` base class, with one
 * non-finite check over all of them first, so a skipped step changes nothing.
 */
import { type BaseHyper, type NonFiniteParam, type Optimizer, type StepReport, nonFiniteIndices } from '@webpeft/optim';
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
 * Runs one step: checks every gradient (when `opt.skipNonFinite`), then `baseStep()`
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
  if (opt.skipNonFinite) {
    const bad = await nonFiniteIndices(all.map((e) => e.grad));
    if (bad.length > 0) {
      opt.skippedSteps++;
      const nonFinite: NonFiniteParam[] = bad.map((i) => ({ group: all[i].group, index: all[i].index, name: all[i].name }));
      const list = nonFinite.map((b) => `${b.name} (group ${b.group} param ${b.index})`).join(', ');
      return { skipped: true, updated: 0, nonFinite, message: `${name}: skipped step: non-finite gradients in ${list}` };
    }
  }
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
