import type { Backend, BackendName } from './backend.js';
import type { OpAttrs, OpName } from './op-names.js';
import type { Tensor } from './tensor.js';

/**
 * A kernel computes one op on one backend. It receives validated inputs (same backend,
 * not disposed; shapes and dtypes already checked by the op function) and returns a new
 * output tensor.
 */
export type KernelFn<K extends string = OpName> = (inputs: readonly Tensor[], attrs: AttrsOf<K>, backend: Backend) => Tensor;

/**
 * Attributes of an op: typed for the built-in primitives, free-form for ops that other
 * packages register (quantized matmul, optimizer updates, user ops).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AttrsOf<K extends string> = K extends OpName ? OpAttrs[K] : any;

/** What a gradient function can read. Only what its spec asked to save is present. */
export interface GradContext<K extends string = OpName> {
  readonly attrs: AttrsOf<K>;
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
export interface GradientSpec<K extends string = OpName> {
  readonly saveInputs: boolean;
  readonly saveOutput: boolean;
  grad(dy: Tensor, ctx: GradContext<K>): (Tensor | null)[];
}

const kernels = new Map<string, KernelFn>();
const gradients = new Map<string, GradientSpec>();

/**
 * Registers the kernel of `op` on `backend` (replacing any previous one). Packages and
 * users may register new op names; run them with `runOp`.
 */
export function registerKernel<K extends string>(op: K, backend: BackendName, fn: KernelFn<K>): void {
  kernels.set(`${op}/${backend}`, fn as unknown as KernelFn);
}

/** The kernel of `op` on `backend`, or undefined. */
export function getKernel(op: string, backend: BackendName): KernelFn | undefined {
  return kernels.get(`${op}/${backend}`);
}

/** Registers the gradient of `op`. */
export function registerGradient<K extends string>(op: K, spec: GradientSpec<K>): void {
  gradients.set(op, spec as unknown as GradientSpec);
}

/** The gradient of `op`, or undefined when the op is not differentiable. */
export function getGradient(op: string): GradientSpec | undefined {
  return gradients.get(op);
}
