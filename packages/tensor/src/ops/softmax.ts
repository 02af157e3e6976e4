/**
 * The softmax family as fused ops: softmax, log-softmax and cross-entropy over the
 * last axis, each one row kernel per backend (and one for its gradient), with
 * composite definitions in primitives below.
 */
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { engine } from '../engine.js';
import { registerComposite } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { arange } from './creation.js';
import { add, div, equal, exp, log, mul, sub, where } from './elementwise.js';
import { type RowLossReduction, reduceRowLosses } from './row-loss-reduction.js';
import { checkFloat } from './float-check.js';
import { cast, gather, reshape } from './layout.js';
import { max, sum } from './reduce.js';
import { detach } from './scope.js';

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
  reduction?: RowLossReduction;
}

/**
 * Cross-entropy from logits `[N, C]` and i32 labels `[N]` (fused log-softmax + NLL).
 * f16 logits are read as they are and the loss is computed and returned in f32.
 * Returns a scalar (or `[N]` with `reduction: 'none'`). A mean over zero non-ignored
 * rows (every label is `ignoreIndex`, e.g. a batch of prompts under completion-only
 * loss) is 0 with zero gradients, where PyTorch gives NaN: a NaN there would poison the
 * run's logged loss and, through the optimizer's non-finite check, skip the step. A label outside `[0, C)` other than `ignoreIndex` throws
 * `IndexError` (webgpu: at the next readback).
 */
export function crossEntropy(logits: Tensor, labels: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  checkFloat('crossEntropy', logits);
  if (labels.dtype !== 'i32') throw new DTypeError(`crossEntropy: labels must be i32, got ${labels.dtype}`);
  if (logits.rank !== 2 || labels.rank !== 1 || labels.shape[0] !== logits.shape[0]) {
    throw new ShapeError(`crossEntropy: expected logits [N, C] and labels [N], got ${fmtShape(logits.shape)} and ${fmtShape(labels.shape)}`);
  }
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const perRow = engine.runOp('CrossEntropy', [logits, labels], { ignoreIndex });
  return reduceRowLosses(perRow, labels, ignoreIndex, opts.reduction ?? 'mean');
}

// ---- composite definitions (primitives only) -------------------------------------

/** `x - max(x)` over the last axis; the max is detached (softmax is shift-invariant). */
function shifted(x: Tensor): Tensor {
  return sub(x, detach(max(x, -1, true)));
}

function softmaxOf(x: Tensor): Tensor {
  const e = exp(shifted(x));
  return div(e, sum(e, -1, true));
}

/** Labels with ignored rows replaced by class 0 (so they index safely), and the ignored mask. */
function safeLabels(labels: Tensor, ignoreIndex: number): { safe: Tensor; ignored: Tensor } {
  const ignored = equal(labels, ignoreIndex);
  return { safe: where(ignored, 0, labels), ignored };
}

/** Registers the composite definitions of the softmax family. */
export function registerSoftmaxComposites(): void {
  registerComposite('Softmax', ([x]) => softmaxOf(x));
  registerComposite('LogSoftmax', ([x]) => {
    const s = shifted(x);
    return sub(s, log(sum(exp(s), -1, true)));
  });
  // inputs [dy, y]: dx = y (dy - sum(dy y))
  registerComposite('SoftmaxGrad', ([dy, y]) => mul(y, sub(dy, sum(mul(dy, y), -1, true))));
  // inputs [dy, y = logSoftmax(x)]: dx = dy - exp(y) sum(dy)
  registerComposite('LogSoftmaxGrad', ([dy, y]) => sub(dy, mul(exp(y), sum(dy, -1, true))));
  // inputs [logits [N, C], labels [N]]: logsumexp(x[n]) - x[n, label[n]], 0 at ignored rows.
  // f16 logits: the loss is computed in f32 (PyTorch's autocast runs cross-entropy in f32).
  registerComposite('CrossEntropy', ([logits, labels], { ignoreIndex }) => {
    const x = logits.dtype === 'f16' ? cast(logits, 'f32') : logits;
    const [n, c] = x.shape;
    const m = detach(max(x, -1, true));
    const lse = add(reshape(log(sum(exp(sub(x, m)), -1, true)), [n]), reshape(m, [n]));
    const { safe, ignored } = safeLabels(labels, ignoreIndex);
    const flat = add(mul(arange(0, n, 1, { dtype: 'i32' }), c), safe);
    const picked = reshape(gather(reshape(x, [n * c, 1]), flat), [n]);
    return where(ignored, 0, sub(lse, picked));
  });
  // inputs [dy [N], logits, labels]: dy[n] (softmax(x[n]) - onehot(label[n])), 0 at ignored rows.
  // f16 logits with an f32 dy: computed in f32, the gradient rounded to the logits' dtype.
  registerComposite('CrossEntropyGrad', ([dy, logits, labels], { ignoreIndex }) => {
    const x = logits.dtype === 'f16' ? cast(logits, 'f32') : logits;
    const [n, c] = x.shape;
    const { safe, ignored } = safeLabels(labels, ignoreIndex);
    const onehot = cast(equal(reshape(arange(0, c, 1, { dtype: 'i32' }), [1, c]), reshape(safe, [n, 1])), x.dtype);
    const scale = where(ignored, 0, cast(dy, x.dtype));
    return cast(mul(sub(softmaxOf(x), onehot), reshape(scale, [n, 1])), logits.dtype);
  });
}
