/**
 * The reduction of per-row losses shared by `crossEntropy` and `linearCrossEntropy`:
 * a sum, or a mean over the rows whose label is not `ignoreIndex`.
 */
import { engine } from '../engine.js';
import type { Tensor } from '../tensor.js';
import { div, notEqual } from './elementwise.js';
import { cast } from './layout.js';
import { sum } from './reduce.js';

/** How per-row losses are reduced: 'mean' over counted rows, 'sum', or 'none' (the rows). */
export type RowLossReduction = 'mean' | 'sum' | 'none';

/**
 * Reduces per-row losses `[N]` (0 at ignored rows) with `reduction`, consuming `perRow`
 * (it is returned itself for 'none', else disposed). The mean divides by the number of
 * labels other than `ignoreIndex`; with no counted row the total is 0 and the divisor 1,
 * so the loss and its gradients are 0 (PyTorch gives NaN).
 */
export function reduceRowLosses(perRow: Tensor, labels: Tensor, ignoreIndex: number, reduction: RowLossReduction): Tensor {
  if (reduction === 'none') return perRow;
  const total = sum(perRow);
  perRow.dispose();
  if (reduction === 'sum') return total;
  const valid = notEqual(labels, ignoreIndex);
  const validF = cast(valid, perRow.dtype);
  const count = sum(validF);
  // The count never requires grad, so `max(count, 1)` runs with the scalar in the
  // uniforms (one dispatch; `maximum(count, 1)` would add a `Fill`).
  const divisor = engine.runOp('BinaryScalar', [count], { op: 'Maximum', value: 1, scalarFirst: false });
  const out = div(total, divisor);
  for (const t of [total, valid, validF, count, divisor]) t.dispose();
  return out;
}
