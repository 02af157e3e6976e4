/**
 * Layer norm and RMS norm over the last axis as fused ops (one row kernel each for
 * forward and input gradient), with composite definitions in primitives below.
 */
import { ShapeError, fmtShape } from '../errors.js';
import { engine } from '../engine.js';
import { registerComposite } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { ones, zeros } from './creation.js';
import { add, mul, rsqrt, square, sub } from './elementwise.js';
import { checkSameFloat } from './float-check.js';
import { mean } from './reduce.js';
import { sumRows } from '../autograd/sum-to-shape.js';

/**
 * Layer norm over the last axis: `(x - mean) / sqrt(var + eps) * weight + bias`,
 * `x [..., D]`, `weight`, `bias [D]` (omitted: 1 and 0). Fused forward and backward.
 */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  x.liveStorage('layerNorm');
  const d = x.shape[x.rank - 1];
  const w = weight ?? ones([d], { dtype: x.dtype, backend: x.backend.name });
  const b = bias ?? zeros([d], { dtype: x.dtype, backend: x.backend.name });
  try {
    checkSameFloat('layerNorm', x, w, b);
    if (w.size !== d || b.size !== d || w.rank !== 1 || b.rank !== 1) {
      throw new ShapeError(`layerNorm: weight ${fmtShape(w.shape)} and bias ${fmtShape(b.shape)} must be [${d}] for x ${fmtShape(x.shape)}`);
    }
    return engine.runOp('LayerNorm', [x, w, b], { eps });
  } finally {
    if (!weight) w.dispose();
    if (!bias) b.dispose();
  }
}

/** RMS norm over the last axis: `x / sqrt(mean(x^2) + eps) * weight`, `x [..., D]`, `weight [D]`. */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  x.liveStorage('rmsNorm');
  const d = x.shape[x.rank - 1];
  const w = weight ?? ones([d], { dtype: x.dtype, backend: x.backend.name });
  try {
    checkSameFloat('rmsNorm', x, w);
    if (w.rank !== 1 || w.size !== d) throw new ShapeError(`rmsNorm: weight ${fmtShape(w.shape)} must be [${d}] for x ${fmtShape(x.shape)}`);
    return engine.runOp('RmsNorm', [x, w], { eps });
  } finally {
    if (!weight) w.dispose();
  }
}

// ---- composite definitions (primitives only) -------------------------------------

/** `x - mean(x)` and `1 / sqrt(var + eps)` over the last axis. */
function layerNormStats(x: Tensor, eps: number): { centred: Tensor; rstd: Tensor } {
  const centred = sub(x, mean(x, -1, true));
  return { centred, rstd: rsqrt(add(mean(square(centred), -1, true), eps)) };
}

/** Registers the composite definitions of the norms. */
export function registerNormComposites(): void {
  // inputs [x, w, b]
  registerComposite('LayerNorm', ([x, w, b], { eps }) => {
    const { centred, rstd } = layerNormStats(x, eps);
    return add(mul(mul(centred, rstd), w), b);
  });
  // inputs [dy, x, w]: dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w
  registerComposite('LayerNormGrad', ([dy, x, w], { eps }) => {
    const { centred, rstd } = layerNormStats(x, eps);
    const xhat = mul(centred, rstd);
    const g = mul(dy, w);
    return mul(rstd, sub(sub(g, mean(g, -1, true)), mul(xhat, mean(mul(g, xhat), -1, true))));
  });
  // inputs [x, w]
  registerComposite('RmsNorm', ([x, w], { eps }) => mul(mul(x, rsqrt(add(mean(square(x), -1, true), eps))), w));
  // inputs [dy, x, w]: dx = rstd (g - xhat mean(g xhat)), xhat = x rstd, g = dy w
  registerComposite('RmsNormGrad', ([dy, x, w], { eps }) => {
    const rstd = rsqrt(add(mean(square(x), -1, true), eps));
    const xhat = mul(x, rstd);
    const g = mul(dy, w);
    return mul(rstd, sub(g, mul(xhat, mean(mul(g, xhat), -1, true))));
  });
  // inputs [dy, x] -> [D]: sum over rows of dy * xhat
  registerComposite('LayerNormWeightGrad', ([dy, x], { eps }) => {
    const { centred, rstd } = layerNormStats(x, eps);
    return sumRows(mul(dy, mul(centred, rstd)));
  });
  // inputs [dy, x] -> [D]: sum over rows of dy * x * rstd
  registerComposite('RmsNormWeightGrad', ([dy, x], { eps }) => sumRows(mul(dy, mul(x, rsqrt(add(mean(square(x), -1, true), eps))))));
}
