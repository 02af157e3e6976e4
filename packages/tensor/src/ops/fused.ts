import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { engine } from '../engine.js';
import { takeStream } from '../random/rng.js';
import type { Tensor } from '../tensor.js';
import { ones, zeros } from './creation.js';
import { div, notEqual } from './elementwise.js';
import { cast, reshape } from './layout.js';
import { sum } from './reduce.js';

function checkFloat(name: string, ...xs: Tensor[]): void {
  for (const x of xs) {
    if (x.dtype !== 'f32' && x.dtype !== 'f64') throw new DTypeError(`${name}: expected f32 or f64, got ${x.dtype} ${fmtShape(x.shape)}`);
  }
}

/** Softmax over the last axis (fused, numerically stable). Shape unchanged. */
export function softmax(x: Tensor): Tensor {
  checkFloat('softmax', x);
  return engine.runOp('Softmax', [x], {});
}

/** Log-softmax over the last axis (fused). Shape unchanged. */
export function logSoftmax(x: Tensor): Tensor {
  checkFloat('logSoftmax', x);
  return engine.runOp('LogSoftmax', [x], {});
}

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Label value whose rows contribute nothing (default -100, as PyTorch). */
  ignoreIndex?: number;
  /** 'mean' over non-ignored rows (default), 'sum', or 'none' (per-row losses `[N]`). */
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Cross-entropy from logits `[N, C]` and i32 labels `[N]` (fused log-softmax + NLL).
 * Returns a scalar (or `[N]` with `reduction: 'none'`). A mean over zero non-ignored
 * rows is NaN, as in PyTorch.
 */
export function crossEntropy(logits: Tensor, labels: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  checkFloat('crossEntropy', logits);
  if (labels.dtype !== 'i32') throw new DTypeError(`crossEntropy: labels must be i32, got ${labels.dtype}`);
  if (logits.rank !== 2 || labels.rank !== 1 || labels.shape[0] !== logits.shape[0]) {
    throw new ShapeError(`crossEntropy: expected logits [N, C] and labels [N], got ${fmtShape(logits.shape)} and ${fmtShape(labels.shape)}`);
  }
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const perRow = engine.runOp('CrossEntropy', [logits, labels], { ignoreIndex });
  const reduction = opts.reduction ?? 'mean';
  if (reduction === 'none') return perRow;
  const total = sum(perRow);
  perRow.dispose();
  if (reduction === 'sum') return total;
  const valid = notEqual(labels, ignoreIndex);
  const validF = cast(valid, logits.dtype);
  const count = sum(validF);
  const out = div(total, count);
  for (const t of [total, valid, validF, count]) t.dispose();
  return out;
}

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
    checkFloat('layerNorm', x, w, b);
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
    checkFloat('rmsNorm', x, w);
    if (w.rank !== 1 || w.size !== d) throw new ShapeError(`rmsNorm: weight ${fmtShape(w.shape)} must be [${d}] for x ${fmtShape(x.shape)}`);
    return engine.runOp('RmsNorm', [x, w], { eps });
  } finally {
    if (!weight) w.dispose();
  }
}

/**
 * Inverted dropout: zero each element with probability `p` and scale the rest by
 * `1/(1-p)`. The mask comes from the global Philox stream (same on every backend).
 * With `training` false or `p` 0 it returns `x` unchanged (a new handle).
 */
export function dropout(x: Tensor, p: number, training = true): Tensor {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: p must be in [0, 1), got ${p}`);
  checkFloat('dropout', x);
  if (!training || p === 0) return reshape(x, x.shape);
  const { seed, offset } = takeStream(x.size);
  return engine.runOp('Dropout', [x], { p, seed, offset });
}

