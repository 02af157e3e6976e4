import { type Tensor, abs, add, assign, div, max, maximum, minimum, mul, noGrad, pow, sqrt, square, stack, sum, tidy } from '@webpeft/tensor';

/**
 * Clips gradients by their global norm, like `torch.nn.utils.clip_grad_norm_`: the norm
 * of the per-parameter gradient norms is computed on the device, every gradient is
 * multiplied in place by `min(1, maxNorm / (norm + 1e-6))`, and the norm (before
 * clipping) is read back and returned. Parameters without a gradient are ignored.
 * `normType` is any positive number or `Infinity` (max |g|).
 * @example const norm = await clipGradNorm(opt.params, 1.0);
 */
export async function clipGradNorm(params: readonly Tensor[], maxNorm: number, normType = 2): Promise<number> {
  if (!(maxNorm >= 0)) throw new RangeError(`clipGradNorm: maxNorm must be >= 0, got ${maxNorm}`);
  if (!(normType > 0)) throw new RangeError(`clipGradNorm: normType must be > 0 or Infinity, got ${normType}`);
  const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
  if (grads.length === 0) return 0;
  const backend = grads[0].backend;
  const misplaced = grads.find((g) => g.backend !== backend);
  if (misplaced) throw new Error(`clipGradNorm: gradients live on '${backend.name}' and '${misplaced.backend.name}'; move them to one backend`);
  const total = tidy(() => noGrad(() => {
    const norms = stack(grads.map((g) => vectorNorm(g, normType)));
    const t = vectorNorm(norms, normType);
    const coef = minimum(div(maxNorm, add(t, 1e-6)), 1);
    for (const g of grads) assign(g, mul(g, coef));
    return t;
  }));
  try {
    return await total.item();
  } finally {
    total.dispose();
  }
}

/** The `p`-norm of all elements of `x`, as a scalar tensor. */
function vectorNorm(x: Tensor, p: number): Tensor {
  if (p === Infinity) return max(abs(x));
  if (p === 2) return sqrt(sum(square(x)));
  if (p === 1) return sum(abs(x));
  // Clamped at 0 so that 0^p stays 0 for the pow kernel.
  return pow(sum(pow(maximum(abs(x), 0), p)), 1 / p);
}

