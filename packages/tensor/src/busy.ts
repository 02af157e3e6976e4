/**
 * Marks tensors as being updated in place by an asynchronous owner (an optimizer step
 * between its start and its resolution). While marked, any op that takes one of them as
 * an input throws a {@link TensorBusyError} naming the op, the tensor and the owner: a
 * forward overlapping a step would otherwise read old or half-updated values silently.
 * In-place kernels (`runInPlace`) are the owner's own path and are not checked.
 */
import { TensorBusyError, fmtShape } from './errors.js';
import type { Tensor } from './tensor.js';

/**
 * Marks every tensor in `tensors` busy with `owner` (for example `'AdamW.step()'`) and
 * returns the function that releases them. Throws a {@link TensorBusyError}, marking
 * nothing, when one of them is already busy with another owner.
 * @example
 * const release = markBusy(params, 'AdamW.step()');
 * try { await update(); } finally { release(); }
 */
export function markBusy(tensors: Iterable<Tensor>, owner: string): () => void {
  const list = [...new Set(tensors)];
  for (const t of list) if (t.busyWith !== null) throwBusy(`markBusy(${owner})`, t);
  for (const t of list) t.busyWith = owner;
  return () => {
    for (const t of list) if (t.busyWith === owner) t.busyWith = null;
  };
}

/** Throws the error for `op` reading busy tensor `t`. */
export function throwBusy(op: string, t: Tensor): never {
  throw new TensorBusyError(`${op}: tensor #${t.id} ${fmtShape(t.shape)} ${t.dtype} is being updated by ${t.busyWith} in flight; await it before using the tensor`);
}
