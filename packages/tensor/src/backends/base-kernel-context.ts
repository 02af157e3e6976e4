import type { Backend, BackendCapabilities } from '../backend.js';
import type { DType } from '../dtype.js';
import { engine } from '../engine.js';
import type { KernelContext } from '../kernel-context.js';
import type { OpAttrs, OpName } from '../op-names.js';
import type { Tensor } from '../tensor.js';

/** The members every backend's kernel context shares: output allocation and kernel composition. */
export class BaseKernelContext implements KernelContext {
  constructor(readonly backend: Backend) {}

  get capabilities(): BackendCapabilities {
    return this.backend.capabilities;
  }

  output(shape: readonly number[], dtype: DType, what = 'kernel output'): Tensor {
    return engine.makeTensor(this.backend, shape, dtype, what);
  }

  run<K extends OpName>(op: K, inputs: readonly Tensor[], attrs: OpAttrs[K]): Tensor {
    return engine.runKernel(op, inputs, attrs, this.backend);
  }
}
