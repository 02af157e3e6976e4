/**
 * Fused linear + cross-entropy: the loss of `hidden @ weight^T (+ bias)` against labels
 * without the `[N, V]` logits, as Liger's fused linear cross-entropy and Apple's
 * cut-cross-entropy compute it. The webgpu kernels walk the vocabulary in chunks of
 * weight rows (an online logsumexp forward, a recomputing backward); the composite
 * definitions below (`matmul` + `crossEntropy`) are the oracle and what backends
 * without the kernels run.
 */
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { engine } from '../engine.js';
import { registerComposite } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { arange } from './creation.js';
import { add, equal, exp, log, maximum, minimum, mul, sub, where } from './elementwise.js';
import { checkSameFloat } from './float-check.js';
import { cast, concat, gather, reshape } from './layout.js';
import { matmul } from './matmul.js';
import { max, sum } from './reduce.js';
import { type RowLossReduction, reduceRowLosses } from './row-loss-reduction.js';
import { detach, noGrad } from './scope.js';

/** Options of {@link linearCrossEntropy}. */
export interface LinearCrossEntropyOptions {
  /** Label value whose rows contribute nothing (default -100, as PyTorch). */
  ignoreIndex?: number;
  /** 'mean' over non-ignored rows (default), 'sum', or 'none' (per-row losses `[N]`). */
  reduction?: RowLossReduction;
  /** Output bias `[V]` of the projection (Qwen2-style heads have none; this is for linear heads that do). */
  bias?: Tensor;
  /**
   * Weight rows per vocabulary chunk (at most the rows whose logits and weight rows each
   * fit one storage binding). Default: chosen from the device's largest storage
   * binding and a memory budget of a few MiB per chunk of logits and of weight rows.
   */
  chunkSize?: number;
}

/**
 * Cross-entropy of the logits `hidden [N, D] @ weight[V, D]^T (+ bias [V])` against i32
 * labels `[N]`, equal to `crossEntropy(matmul(hidden, weight, { transposeB: true }), labels)`
 * but without keeping the `[N, V]` logits or their gradient: the forward keeps a
 * logsumexp and the label's logit per row (`[2, N]`), the backward recomputes each
 * vocabulary chunk's logits. Gradients flow to `hidden`, `weight` (a tied embedding in
 * full fine-tuning) and `bias`, in their dtypes. f16 `hidden`/`weight` give the logits
 * f16's rounding, as the unfused path does, and the loss is f32. Same semantics as
 * {@link crossEntropy}: rows labelled `ignoreIndex` count for nothing, a mean over no
 * counted row is 0 with zero gradients, and a label outside `[0, V)` throws
 * `IndexError` (webgpu: at the next readback).
 *
 * Shapes: `[N, D], [V, D], [N] -> []` (`[N]` with `reduction: 'none'`).
 * @example
 * const loss = linearCrossEntropy(h.reshape([B * T, D]), lmHead.weight, labels.reshape([B * T]));
 */
export function linearCrossEntropy(hidden: Tensor, weight: Tensor, labels: Tensor, opts: LinearCrossEntropyOptions = {}): Tensor {
  const { bias } = opts;
  checkSameFloat('linearCrossEntropy', hidden, weight, ...(bias ? [bias] : []));
  if (labels.dtype !== 'i32') throw new DTypeError(`linearCrossEntropy: labels must be i32, got ${labels.dtype} ${fmtShape(labels.shape)}`);
  const shapesOk =
    hidden.rank === 2 && weight.rank === 2 && labels.rank === 1 && hidden.shape[1] === weight.shape[1] && labels.shape[0] === hidden.shape[0] && weight.shape[0] > 0;
  if (!shapesOk || (bias && (bias.rank !== 1 || bias.shape[0] !== weight.shape[0]))) {
    throw new ShapeError(
      `linearCrossEntropy: expected hidden [N, D], weight [V, D] with V > 0, labels [N]${bias ? ' and bias [V]' : ''}, got ${fmtShape(hidden.shape)}, ${fmtShape(weight.shape)}, ${fmtShape(labels.shape)}${bias ? ` and ${fmtShape(bias.shape)}` : ''}`,
    );
  }
  const chunkSize = opts.chunkSize ?? 0;
  if (opts.chunkSize !== undefined && (!Number.isInteger(chunkSize) || chunkSize < 1)) {
    throw new RangeError(`linearCrossEntropy: option chunkSize must be a positive integer, got ${opts.chunkSize}`);
  }
  const ignoreIndex = opts.ignoreIndex ?? -100;
  if (!Number.isInteger(ignoreIndex)) throw new RangeError(`linearCrossEntropy: option ignoreIndex must be an integer, got ${ignoreIndex}`);
  const reduction = opts.reduction ?? 'mean';
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none') {
    throw new RangeError(`linearCrossEntropy: option reduction must be 'mean', 'sum' or 'none', got ${String(reduction)}`);
  }
  const attrs = { ignoreIndex, chunkSize };
  const tail = bias ? [bias] : [];
  // The statistics are a detached function of the inputs: the loss op's gradient is the
  // total derivative, so they need no node of their own.
  const stats = noGrad(() => engine.runOp('LinearCrossEntropyStats', [hidden, weight, labels, ...tail], attrs));
  let perRow: Tensor;
  try {
    perRow = engine.runOp('LinearCrossEntropy', [hidden, weight, labels, stats, ...tail], attrs);
  } finally {
    stats.dispose();
  }
  return reduceRowLosses(perRow, labels, ignoreIndex, reduction);
}

// ---- composite definitions ---------------------------------------------------------

/** The logits `hidden @ weight^T (+ bias)` `[N, V]`, in the inputs' dtype. */
export function linearLogits(hidden: Tensor, weight: Tensor, bias: Tensor | undefined): Tensor {
  const logits = matmul(hidden, weight, { transposeB: true });
  return bias ? add(logits, bias) : logits;
}

/** Registers the composite definitions of the fused linear + cross-entropy ops. */
export function registerLinearCrossEntropyComposites(): void {
  // inputs [hidden, weight, labels, bias?] -> [2, N] f32: logsumexp and the label's logit
  // (0 at ignored rows). Labels out of range index class 0 here: the loss op reports them.
  registerComposite('LinearCrossEntropyStats', ([hidden, weight, labels, bias], { ignoreIndex }) => {
    const logits = linearLogits(hidden, weight, bias);
    const x = logits.dtype === 'f16' ? cast(logits, 'f32') : logits;
    const [n, v] = x.shape;
    const m = detach(max(x, -1, true));
    const lse = add(reshape(log(sum(exp(sub(x, m)), -1, true)), [n]), reshape(m, [n]));
    const ignored = equal(labels, ignoreIndex);
    const safe = minimum(maximum(where(ignored, 0, labels), 0), v - 1);
    const flat = add(mul(arange(0, n, 1, { dtype: 'i32' }), v), safe);
    const picked = reshape(gather(reshape(x, [n * v, 1]), flat), [n]);
    return concat([reshape(lse, [1, n]), reshape(where(ignored, 0, picked), [1, n])], 0);
  });
  // inputs [hidden, weight, labels, stats, bias?] -> per-row losses [N]: today's matmul +
  // crossEntropy (the statistics are only the kernels' shortcut).
  registerComposite('LinearCrossEntropy', ([hidden, weight, labels, , bias], { ignoreIndex }) =>
    engine.runOp('CrossEntropy', [linearLogits(hidden, weight, bias), labels], { ignoreIndex }),
  );
}
