import { type Tensor, abs, add, assign, div, max, maximum, minimum, mul, noGrad, pow, sqrt, square, stack, sum, tidy } from '@webpeft/tensor';
import { NonFiniteGradientError } from './errors.js';
import { nonFiniteIndices } from './non-finite.js';
import type { NonFiniteParam } from './types.js';

/** Options of {@link clipGradNorm} and {@link clipGradNormReport}. */
export interface ClipGradNormOptions {
  /** Any positive number or `Infinity` (max |g|); default 2. */
  normType?: number;
  /**
   * Throw a `NonFiniteGradientError` (gradients unchanged) when the total norm is not
   * finite, like torch's `error_if_nonfinite=True` (default false: report it).
   */
  errorIfNonFinite?: boolean;
  /** Names of `params` (same order) for reports and errors; default `param I`. */
  names?: readonly string[];
}

/** What one clip did. */
export interface ClipReport {
  /**
   * The total norm before clipping. NaN on every backend when a gradient holds a NaN or
   * infinity (the norm of such gradients is not defined, and WGSL arithmetic may not
   * propagate NaN, so the device value is not reported); Infinity when the gradients are
   * finite but the norm overflows f32.
   */
  norm: number;
  /** Whether `norm` is finite; when false the gradients were left unchanged. */
  finite: boolean;
  /** Whether the gradients were scaled (finite norm above `maxNorm`). */
  clipped: boolean;
  /** The parameters whose gradients hold a NaN or infinity (`group` is 0, `index` the position in `params`). */
  nonFinite: NonFiniteParam[];
}

/**
 * Clips gradients by their global norm, like `torch.nn.utils.clip_grad_norm_`: the norm
 * of the per-parameter gradient norms is computed on the device, every gradient is
 * multiplied in place by `min(1, maxNorm / (norm + 1e-6))`, and the norm (before
 * clipping) is returned. Parameters without a gradient are ignored. A non-finite norm
 * is never applied: the gradients stay as they are (so the optimizer's non-finite
 * check sees them), the norm is returned as documented in {@link ClipReport} (use
 * {@link clipGradNormReport} for the flag and the parameter names), or a
 * `NonFiniteGradientError` is thrown with `errorIfNonFinite`.
 * `normTypeOrOptions` is the norm type (a positive number or `Infinity`) or the options.
 * @example const norm = await clipGradNorm(opt.params, 1.0);
 */
export async function clipGradNorm(params: readonly Tensor[], maxNorm: number, normTypeOrOptions: number | ClipGradNormOptions = 2): Promise<number> {
  return (await clipGradNormReport(params, maxNorm, typeof normTypeOrOptions === 'number' ? { normType: normTypeOrOptions } : normTypeOrOptions)).norm;
}

/**
 * {@link clipGradNorm} returning a {@link ClipReport}: the norm, whether it is finite,
 * whether the gradients were scaled, and which parameters have non-finite gradients.
 * Reads back one scalar and one flag per gradient.
 * @example
 * const r = await clipGradNormReport(opt.params, 1.0, { names });
 * if (!r.finite) console.warn(`non-finite gradient norm in ${r.nonFinite.map((p) => p.name)}`);
 */
export async function clipGradNormReport(params: readonly Tensor[], maxNorm: number, options: ClipGradNormOptions = {}): Promise<ClipReport> {
  const { normType = 2, errorIfNonFinite = false, names } = options;
  if (typeof maxNorm !== 'number' || !(maxNorm >= 0)) throw new RangeError(`clipGradNorm: maxNorm must be >= 0, got ${maxNorm}`);
  if (typeof normType !== 'number' || !(normType > 0)) throw new RangeError(`clipGradNorm: normType must be > 0 or Infinity, got ${normType}`);
  if (names && names.length !== params.length) throw new RangeError(`clipGradNorm: ${names.length} names for ${params.length} params`);
  const withGrad = params.map((p, i) => ({ i, g: p.grad })).filter((x): x is { i: number; g: Tensor } => x.g !== null);
  if (withGrad.length === 0) return { norm: 0, finite: true, clipped: false, nonFinite: [] };
  const grads = withGrad.map((x) => x.g);
  const backend = grads[0].backend;
  const misplaced = grads.find((g) => g.backend !== backend);
  if (misplaced) throw new Error(`clipGradNorm: gradients live on '${backend.name}' and '${misplaced.backend.name}'; move them to one backend`);
  const [total, coef] = tidy(() =>
    noGrad(() => {
      const norms = stack(grads.map((g) => vectorNorm(g, normType)));
      const t = vectorNorm(norms, normType);
      return [t, minimum(div(maxNorm, add(t, 1e-6)), 1)];
    }),
  );
  try {
    const [deviceNorm, bad] = await Promise.all([total.item(), nonFiniteIndices(grads)]);
    const nonFinite = bad.map((j) => ({ group: 0, index: withGrad[j].i, name: names?.[withGrad[j].i] ?? `param ${withGrad[j].i}` }));
    const norm = nonFinite.length > 0 ? NaN : deviceNorm;
    const finite = Number.isFinite(norm);
    if (!finite && errorIfNonFinite) {
      if (nonFinite.length > 0) throw new NonFiniteGradientError('clipGradNorm', nonFinite);
      throw new RangeError(`clipGradNorm: the total ${normType}-norm of finite gradients overflows to ${norm}; gradients unchanged`);
    }
    const clipped = finite && norm + 1e-6 > maxNorm;
    // Applied whenever finite (a coefficient of 1 is exact), so the result is the device's f32 coefficient as torch's.
    if (finite) noGrad(() => tidy(() => grads.forEach((g) => assign(g, mul(g, coef)))));
    return { norm, finite, clipped, nonFinite };
  } finally {
    total.dispose();
    coef.dispose();
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
