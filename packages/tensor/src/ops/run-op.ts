import type { Backend } from '../backend.js';
import { engine } from '../engine.js';
import type { OpAttrs, OpName } from '../op-names.js';
import type { InPlaceArgsOf, InPlaceOpName, InPlaceResultOf } from '../registry.js';
import type { Tensor } from '../tensor.js';

/**
 * Runs any declared op (built-in, or declared by a package or user by merging into
 * `OpAttrs`) on `inputs`, recording it for autograd when it has a gradient. Inputs
 * must share a backend; ops without inputs run on `backend` (default: the current one).
 * A fused op runs its composite definition where the backend has no kernel for it.
 */
export function runOp<K extends OpName>(op: K, inputs: readonly Tensor[], attrs: OpAttrs[K], backend?: Backend): Tensor {
  return engine.runOp(op, inputs, attrs, backend);
}

/**
 * Runs the composite definition of fused op `op` (written with primitives), whatever
 * kernels exist: the reference its fused kernels are tested against.
 */
export function runComposite<K extends OpName>(op: K, inputs: readonly Tensor[], attrs: OpAttrs[K], backend?: Backend): Tensor {
  return engine.runComposite(op, inputs, attrs, backend);
}

/**
 * Runs in-place op `op` (declared by merging into `InPlaceOps`) on `backend`, where its
 * kernel writes into the tensors it is given. Never recorded for autograd.
 */
export function runInPlace<K extends InPlaceOpName>(op: K, args: InPlaceArgsOf<K>, backend: Backend): InPlaceResultOf<K> {
  return engine.runInPlace(op, args, backend);
}
