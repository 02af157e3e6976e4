import type { Backend, BackendName } from './backend.js';
import type { OpAttrs, OpName } from './op-names.js';
import type { Tensor } from './tensor.js';

/**
 * A kernel computes one op on one backend. It receives validated inputs (same backend,
 * not disposed; shapes and dtypes already checked by the op function) and returns a new
 * output tensor.
 */
export type KernelFn<K extends OpName = OpName> = (inputs: readonly Tensor[], attrs: OpAttrs[K], backend: Backend) => Tensor;

/** What a gradient function can read. Only what its spec asked to save is present. */
export interface GradContext<K extends OpName = OpName> {
  readonly attrs: OpAttrs[K];
  /** Saved inputs (when `saveInputs`), else an empty array. */
  readonly inputs: readonly Tensor[];
  /** Saved output (when `saveOutput`). */
  readonly output: Tensor | null;
  readonly inputShapes: readonly (readonly number[])[];
  /** Which inputs need a gradient; a gradient function may skip the others (return null). */
  readonly needsGrad: readonly boolean[];
}

/**
 * The gradient of one op, written with ops so that every backend gets it. Returns one
 * gradient per input (null where none is needed), each of its input's shape.
 */
export interface GradientSpec<K extends OpName = OpName> {
  readonly saveInputs: boolean;
  readonly saveOutput: boolean;
  grad(dy: Tensor, ctx: GradContext<K>): (Tensor | null)[];
}

const kernels = new Map<string, KernelFn>();
const gradients = new Map<OpName, GradientSpec>();

/** Registers the kernel of `op` on `backend` (replacing any previous one). */
export function registerKernel<K extends OpName>(op: K, backend: BackendName, fn: KernelFn<K>): void {
  kernels.set(`${op}/${backend}`, fn as unknown as KernelFn);
}

/** The kernel of `op` on `backend`, or undefined. */
export function getKernel(op: OpName, backend: BackendName): KernelFn | undefined {
  return kernels.get(`${op}/${backend}`);
}

/** Registers the gradient of `op`. */
export function registerGradient<K extends OpName>(op: K, spec: GradientSpec<K>): void {
  gradients.set(op, spec as unknown as GradientSpec);
}

/** The gradient of `op`, or undefined when the op is not differentiable. */
export function getGradient(op: OpName): GradientSpec | undefined {
  return gradients.get(op);
}
