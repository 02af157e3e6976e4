/**
 * The op registries: kernels keyed by (op, backend), gradients and composite
 * definitions keyed by op, and in-place ops (updates that write into existing tensors,
 * such as optimizer steps) keyed by (name, backend). Built-in ops and ops that other
 * packages or users declare (by merging into `OpAttrs` / `InPlaceOps`) register here
 * alike, through the same typed functions.
 */
import type { BackendName } from './backend.js';
import type { DType } from './dtype.js';
import type { KernelContext, KernelContexts } from './kernel-context.js';
import type { OpAttrs, OpName } from './op-names.js';
import type { Tensor } from './tensor.js';

/**
 * A kernel computes one op on one backend. It receives validated inputs (same backend,
 * not disposed; shapes and dtypes already checked by the op function), the op's
 * attributes and the backend's kernel context, and returns a new output tensor.
 */
export type KernelFn<K extends OpName = OpName, B extends BackendName = BackendName> = (inputs: readonly Tensor[], attrs: OpAttrs[K], ctx: KernelContexts[B]) => Tensor;

/** Attributes of op `K` (declared in `OpAttrs`). */
export type AttrsOf<K extends OpName> = OpAttrs[K];

/** What a gradient function can read. Only what its spec asked to save is present. */
export interface GradContext<K extends OpName = OpName> {
  readonly attrs: OpAttrs[K];
  /** Saved inputs (all, or the first `saveInputs` of them), else an empty array. */
  readonly inputs: readonly Tensor[];
  /** Saved output (when `saveOutput`). */
  readonly output: Tensor | null;
  readonly inputShapes: readonly (readonly number[])[];
  /** Dtypes of the inputs, in order. */
  readonly inputDtypes: readonly DType[];
  /** Which inputs need a gradient; a gradient function may skip the others (return null). */
  readonly needsGrad: readonly boolean[];
}

/**
 * The gradient of one op, written with ops so that every backend gets it. Returns one
 * gradient per input (null where none is needed), each of its input's shape.
 */
export interface GradientSpec<K extends OpName = OpName> {
  /**
   * Keep the op's inputs for backward (they share storage: no copy): `true` all of them,
   * a number the first that many (an addend the gradient never reads stays unsaved).
   */
  readonly saveInputs: boolean | number;
  /** Keep the op's output for backward. */
  readonly saveOutput: boolean;
  /** Input gradients from the output gradient `dy` (intermediates are freed by the caller's scope). */
  grad(dy: Tensor, ctx: GradContext<K>): (Tensor | null)[];
  /**
   * Optional form of `grad` that hands each input gradient to `acc` as it is formed, so
   * it can instead add into the input's pending gradient in place (`acc.target`): a
   * slice's gradient into its window of the whole, with no zero-padded copy and no sum.
   * Where present the engine calls it instead of `grad`; it must give (or add) exactly
   * what `grad` returns, in input order.
   */
  gradInto?(dy: Tensor, ctx: GradContext<K>, acc: GradAccumulator): void;
}

/** What a {@link GradientSpec.gradInto} hands its gradients to. */
export interface GradAccumulator {
  /**
   * The pending gradient of input `i` (its shape and dtype), owned by nobody else, which
   * the gradient may add into in place with the `Accumulate` in-place op; null when input
   * `i` has no gradient yet (a first consumer: `add` one), is a leaf, needs none, or the
   * backend has no `Accumulate` kernel.
   */
  target(i: number): Tensor | null;
  /** Hands over the gradient of input `i` (the engine owns it from here): summed into its pending gradient. */
  add(i: number, g: Tensor): void;
}

/**
 * The composite definition of a fused op, written with other (primitive) ops. It runs
 * where a backend has no kernel for the op, with autograd through the primitives, and
 * it is the oracle the fused kernels are tested against.
 */
export type CompositeFn<K extends OpName = OpName> = (inputs: readonly Tensor[], attrs: OpAttrs[K]) => Tensor;

/**
 * In-place ops by name: `args` is what the caller passes (tensors and plain data),
 * `result` what the kernel returns. Packages declare theirs by merging into this
 * interface (`declare module '@webpeft/tensor/kernel' { interface InPlaceOps { ... } }`).
 * In-place ops are never recorded for autograd.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface InPlaceOps {}

/** Name of any declared in-place op. */
export type InPlaceOpName = Extract<keyof InPlaceOps, string>;

type ArgsOf<K extends InPlaceOpName> = InPlaceOps[K] extends { args: infer A } ? A : never;
type ResultOf<K extends InPlaceOpName> = InPlaceOps[K] extends { result: infer R } ? R : void;

/** The kernel of in-place op `K` on backend `B`. */
export type InPlaceKernelFn<K extends InPlaceOpName = InPlaceOpName, B extends BackendName = BackendName> = (args: ArgsOf<K>, ctx: KernelContexts[B]) => ResultOf<K>;

/** Arguments of in-place op `K`. */
export type InPlaceArgsOf<K extends InPlaceOpName> = ArgsOf<K>;
/** Result of in-place op `K`. */
export type InPlaceResultOf<K extends InPlaceOpName> = ResultOf<K>;

type AnyKernel = (inputs: readonly Tensor[], attrs: unknown, ctx: unknown) => Tensor;
type AnyInPlaceKernel = (args: unknown, ctx: unknown) => unknown;

const kernels = new Map<string, AnyKernel>();
const gradients = new Map<string, GradientSpec>();
const composites = new Map<string, CompositeFn>();
const inPlaceKernels = new Map<string, AnyInPlaceKernel>();

/**
 * Registers the kernel of `op` on `backend` (replacing any previous one). The kernel
 * gets `backend`'s context type: `ctx.dispatch` on webgpu, `ctx.data` on cpu.
 * @example
 * registerKernel('MyScale', 'cpu', ([x], { factor }, ctx) => {
 *   const out = ctx.output(x.shape, x.dtype);
 *   const xs = ctx.data(x), os = ctx.data(out);
 *   for (let i = 0; i < xs.length; i++) os[i] = xs[i] * factor;
 *   return out;
 * });
 */
export function registerKernel<K extends OpName, B extends BackendName>(op: K, backend: B, fn: KernelFn<K, B>, options: KernelOptions = {}): void {
  const key = `${op}/${backend}`;
  kernels.set(key, fn as AnyKernel);
  if (options.chunked) chunkedKernels.add(key);
  else chunkedKernels.delete(key);
}

/** Options of {@link registerKernel}. */
export interface KernelOptions {
  /**
   * The kernel reads inputs stored in several row chunks (a tensor larger than one
   * storage binding, `Storage.bindings > 1`). Without it the engine refuses such inputs
   * with a `ChunkedTensorError` before the kernel runs.
   */
  chunked?: boolean;
}

/** Keys (`op/backend`) of kernels registered with `{ chunked: true }`. */
const chunkedKernels = new Set<string>();

/** Whether the kernel of `op` on `backend` accepts inputs split across several bindings. */
export function kernelTakesChunks(op: OpName, backend: BackendName): boolean {
  return chunkedKernels.has(`${op}/${backend}`);
}

/** A registered kernel as the engine calls it (the context's type follows the backend it was registered for). */
export type StoredKernel = (inputs: readonly Tensor[], attrs: unknown, ctx: KernelContext) => Tensor;

/** The kernel of `op` on `backend`, or undefined. */
export function getKernel(op: OpName, backend: BackendName): StoredKernel | undefined {
  return kernels.get(`${op}/${backend}`);
}

/** Whether `backend` has a kernel for `op`. */
export function hasKernel(op: OpName, backend: BackendName): boolean {
  return kernels.has(`${op}/${backend}`);
}

/** Registers the gradient of `op`. */
export function registerGradient<K extends OpName>(op: K, spec: GradientSpec<K>): void {
  gradients.set(op, spec);
}

/** The gradient of `op`, or undefined when the op is not differentiable. */
export function getGradient(op: OpName): GradientSpec | undefined {
  return gradients.get(op);
}

/** Registers the composite definition of fused op `op` (see {@link CompositeFn}). */
export function registerComposite<K extends OpName>(op: K, fn: CompositeFn<K>): void {
  composites.set(op, fn as unknown as CompositeFn);
}

/** The composite definition of `op`, or undefined for primitives. */
export function getComposite(op: OpName): CompositeFn | undefined {
  return composites.get(op);
}

/** Registers the kernel of in-place op `op` on `backend`. */
export function registerInPlaceKernel<K extends InPlaceOpName, B extends BackendName>(op: K, backend: B, fn: InPlaceKernelFn<K, B>): void {
  inPlaceKernels.set(`${op}/${backend}`, fn as AnyInPlaceKernel);
}

/** Whether `backend` has a kernel for in-place op `op` (check before a multi-backend update starts). */
export function hasInPlaceKernel(op: InPlaceOpName, backend: BackendName): boolean {
  return inPlaceKernels.has(`${op}/${backend}`);
}

/** The kernel of in-place op `op` on `backend`, or undefined. */
export function getInPlaceKernel<K extends InPlaceOpName>(op: K, backend: BackendName): ((args: ArgsOf<K>, ctx: KernelContext) => ResultOf<K>) | undefined {
  return inPlaceKernels.get(`${op}/${backend}`) as ((args: ArgsOf<K>, ctx: KernelContext) => ResultOf<K>) | undefined;
}
