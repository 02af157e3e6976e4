/**
 * The in-place ops of `@webpeft/optim`, declared in the tensor package's registry by
 * module augmentation: the optimizer update (one rule over many parameters) and the
 * non-finite gradient check. Each has a cpu kernel (host loops, `cpu-kernels.ts`) and a
 * webgpu kernel (fused dispatches, `fused-webgpu.ts`).
 */
import type { Tensor } from '@webpeft/tensor';
import type { BaseHyper } from './types.js';
import type { Scalars, UpdateRule } from './update-rule.js';

/** A parameter with its gradient and state buffers (same shape, dtype and backend). */
export interface UpdateItem {
  param: Tensor;
  grad: Tensor;
  buffers: Readonly<Record<string, Tensor>>;
}

/** Arguments of `OptimizerUpdate`: one update of `rule` with the same hyperparameters and scalars for every item. */
export interface OptimizerUpdateArgs {
  rule: UpdateRule<BaseHyper>;
  hyper: BaseHyper;
  scalars: Scalars;
  items: readonly UpdateItem[];
}

/** Arguments of `NonFiniteFlags`: sets `flags[i]` (u32, zeroed by the caller) to nonzero where `tensors[i]` holds a NaN or infinity. */
export interface NonFiniteFlagsArgs {
  tensors: readonly Tensor[];
  flags: Tensor;
}

declare module '@webpeft/tensor/kernel' {
  interface InPlaceOps {
    /** Updates every item's parameter and state in place (see {@link UpdateRule}). */
    OptimizerUpdate: { args: OptimizerUpdateArgs; result: void };
    /** Marks the tensors that hold a NaN or infinity (f32, or f64 where the backend has it). */
    NonFiniteFlags: { args: NonFiniteFlagsArgs; result: void };
  }
}
