import type { Backend } from '../backend.js';
import { engine } from '../engine.js';
import type { AttrsOf } from '../registry.js';
import type { Tensor } from '../tensor.js';

/**
 * Runs any registered op (built-in or registered by a package or user) on `inputs`,
 * recording it for autograd when a gradient is registered. Inputs must share a
 * backend; ops without inputs run on `backend` (default: the current one).
 */
export function runOp<K extends string>(op: K, inputs: readonly Tensor[], attrs: AttrsOf<K>, backend?: Backend): Tensor {
  return engine.runOp(op, inputs, attrs, backend);
}
