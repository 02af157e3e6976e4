/**
 * What a kernel may use: the contexts handed to kernel functions, one interface per
 * backend. They are the whole surface between a kernel and the runtime, so kernels in
 * other packages (quant, optim, a user's own) need no runtime internals and no casts.
 */
import type { Backend, BackendCapabilities, BackendName } from './backend.js';
import type { DType, TensorData } from './dtype.js';
import type { OpAttrs, OpName } from './op-names.js';
import type { Tensor } from './tensor.js';
import type { KernelProgram } from './backends/webgpu/program.js';
import type { Uniforms } from './backends/webgpu/wgsl.js';
import type { IndexCheck } from './backends/webgpu/index-checks.js';
import type { AdapterKind } from './backends/webgpu/adapter-kind.js';

/** Members every backend's kernel context has. */
export interface KernelContext {
  /** The backend the kernel runs on. */
  readonly backend: Backend;
  /** Optional features of the backend (f16, f64, subgroups, ...). */
  readonly capabilities: BackendCapabilities;
  /**
   * Allocates an output tensor `shape`/`dtype` on this backend under the current memory
   * tag (contents undefined until the kernel writes them). `what` names the kernel in
   * allocation errors.
   */
  output(shape: readonly number[], dtype: DType, what?: string): Tensor;
  /**
   * Runs the kernel of another op on this backend, without autograd recording. A kernel
   * that needs other work composes kernels this way instead of calling ops. Falls back
   * to the op's composite definition where this backend has no kernel for it.
   */
  run<K extends OpName>(op: K, inputs: readonly Tensor[], attrs: OpAttrs[K]): Tensor;
}

/** Kernel context of the plain-TypeScript cpu backend: kernels loop over host arrays. */
export interface CpuKernelContext extends KernelContext {
  /** The elements of a cpu tensor as a typed array view (no copy; writes go to the tensor). */
  data(t: Tensor): TensorData;
}

/** Kernel context of the webgpu backend: kernels append dispatches to the pending encoder. */
export interface WebGpuKernelContext extends KernelContext {
  /** The device's limits (`maxStorageBufferBindingSize`, workgroup sizes, ...). */
  readonly limits: GPUSupportedLimits;
  /** The adapter's vendor, architecture and description (to pick kernel variants). */
  readonly adapterInfo: GPUAdapterInfo;
  /** The adapter's class (software implementation, SwiftShader), classified once at init. */
  readonly adapterKind: AdapterKind;
  /** Largest tensor (bytes) that one storage binding can hold on this device. */
  readonly maxBindingBytes: number;
  /**
   * Appends one dispatch of `program` over `workgroups` reading `inputs` (bindings
   * `0..inputs-1`, read-only) and writing `outputs` (the next bindings), with `uniforms`
   * as the uniform block (`var<uniform> u`, last binding).
   */
  dispatch(program: KernelProgram, inputs: readonly Tensor[], outputs: readonly Tensor[], uniforms: Uniforms, workgroups: readonly [number, number, number]): void;
  /**
   * The error-buffer slot for a device-side index check (pass it to
   * `Uniforms.indexSlot`; the program needs `{ indexChecks: true }`). A kernel that calls
   * `report_bad_index` makes the next readback throw an `IndexError` built from `check`.
   */
  indexCheck(check: IndexCheck): number;
  /**
   * Copies `byteSize` bytes between two tensors' buffers, ordered with the dispatches
   * (multiples of 4). Either tensor may be chunked: the copy is split at chunk boundaries.
   */
  copy(src: Tensor, srcByteOffset: number, dst: Tensor, dstByteOffset: number, byteSize: number): void;
  /**
   * Like `output`, but a tensor larger than one binding is allowed and comes back in row
   * chunks (see {@link chunks}); `output` refuses one with `ChunkedTensorError`. Only a
   * kernel that writes chunk by chunk (through {@link chunkView}) asks for this.
   */
  chunkedOutput(shape: readonly number[], dtype: DType, what?: string): Tensor;
  /** Bindings a tensor of `shape`/`dtype` takes on this device (1 unless it must be chunked). */
  bindingsOf(shape: readonly number[], dtype: DType): number;
  /**
   * The row chunks of `t` (rows of its last dimension; each chunk its own buffer that
   * fits one binding), or null when `t` is one buffer. Throws `ChunkedTensorError` when a
   * reshape across the last dimension made rows straddle chunks.
   */
  chunks(t: Tensor): ChunkInfo | null;
  /**
   * A tensor `[rows of chunk index, last dim]` on chunk `index` of chunked `t`: a view
   * that shares the chunk's buffer (writes go to `t`) and frees nothing when disposed.
   * Kernels dispatch on views, never on the chunked tensor itself.
   */
  chunkView(t: Tensor, index: number): Tensor;
}

/**
 * The row chunks of a tensor larger than one storage binding: rows of its last
 * dimension (`rowElements`), `ranges[i]` the rows chunk `i` holds, in order.
 */
export interface ChunkInfo {
  /** Rows of the whole tensor (its size over its last dimension). */
  readonly rows: number;
  /** Elements per row (the last dimension). */
  readonly rowElements: number;
  readonly ranges: readonly { readonly rowStart: number; readonly rows: number }[];
}

/** The kernel context type of each backend, by name. */
export interface KernelContexts {
  cpu: CpuKernelContext;
  webgpu: WebGpuKernelContext;
  meta: KernelContext;
}

/** The kernel context of backend `B`. */
export type KernelContextOf<B extends BackendName> = KernelContexts[B];
