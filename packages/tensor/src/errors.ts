/**
 * Typed errors of the runtime. Each names what was wrong (op, shapes, dtypes) so a
 * failing call can be fixed from the message alone.
 */

/** A shape that an op cannot accept: wrong rank, mismatched or non-broadcastable dims. */
export class ShapeError extends Error {
  override name = 'ShapeError';
}

/** A dtype that an op or a backend cannot accept. */
export class DTypeError extends Error {
  override name = 'DTypeError';
}

/** A tensor used after `dispose()` (directly, or by a `tidy` scope that ended). */
export class DisposedTensorError extends Error {
  override name = 'DisposedTensorError';
}

/**
 * A tensor used by an op while an in-place update that owns it is in flight (an
 * optimizer's `step()` not yet awaited): the op would read a half-updated value.
 */
export class TensorBusyError extends Error {
  override name = 'TensorBusyError';
}

/** Snapshot of memory use attached to memory errors. See {@link MemoryInfo}. */
export interface MemorySnapshot {
  liveBytes: number;
  peakBytes: number;
  liveTensors: number;
  liveBuffers: number;
  bytesByTag: Record<string, number>;
}

/** The device (or our own cap) could not provide the memory a tensor needs. */
export class OutOfMemoryError extends Error {
  override name = 'OutOfMemoryError';
  constructor(
    message: string,
    /** Memory use at the moment of failure. */
    readonly memory: MemorySnapshot,
  ) {
    super(message);
  }
}

/**
 * An op was given (or would produce) a tensor stored in several row chunks, one device
 * binding each (a tensor larger than the adapter's `maxStorageBufferBindingSize`), and
 * its kernel cannot read or write such a tensor. Names the op, the shape, the dtype and
 * the number of bindings.
 */
export class ChunkedTensorError extends Error {
  override name = 'ChunkedTensorError';
  constructor(
    /** The op (or kernel) that refused the tensor. */
    readonly op: string,
    readonly shape: readonly number[],
    readonly dtype: string,
    /** Number of bindings the tensor is split across. */
    readonly bindings: number,
    detail = '',
  ) {
    super(
      `${op}: tensor ${fmtShape(shape)} ${dtype} is split across ${bindings} storage bindings (it is larger than one binding of this adapter), and ${op} cannot read or write a split tensor${detail ? `: ${detail}` : ''}. Ops that can: gather, scatterAdd, matmul, crossEntropy, slices (strided copies into one binding), elementwise ops on same-shape operands, casts, creation ops and copies`,
    );
  }
}

/** WebGPU rejected a command (a bug in a kernel or an unsupported limit). */
export class GpuValidationError extends Error {
  override name = 'GpuValidationError';
  constructor(
    message: string,
    readonly memory: MemorySnapshot,
  ) {
    super(message);
  }
}

/**
 * An index outside its table: a `gather` row, a `scatterAdd` row or a cross-entropy
 * label (`index < 0` or `index >= limit`). Thrown by the cpu kernel at the call, and on
 * webgpu at (or before) the next readback, from the device-side check the kernel wrote.
 * A subclass of `RangeError`, so code catching that keeps working.
 */
export class IndexError extends RangeError {
  override name = 'IndexError';
  constructor(
    /** The op that indexed (`gather`, `scatterAdd`, `crossEntropy`, ...). */
    readonly op: string,
    /** Shape of the tensor indexed into (`[rows, ...]`, logits `[N, C]`). */
    readonly shape: readonly number[],
    /** The first bad index value seen. */
    readonly index: number,
    /** Its flat position in the indices (labels) tensor. */
    readonly position: number,
    /** The exclusive upper bound (`rows`, `classes`). */
    readonly limit: number,
    /** What the bound counts, for the message (`rows`, `classes`). */
    readonly what: string,
    /** Further text (e.g. the ignore index, a count of other bad positions). */
    detail = '',
  ) {
    super(`${op}: index ${index} at position ${position} is out of range for ${limit} ${what} (input ${fmtShape(shape)})${detail}`);
  }
}

/** A tensor written by a device submit that failed: its contents are undefined. */
export class InvalidTensorError extends Error {
  override name = 'InvalidTensorError';
}

/** The GPU device was lost; call `init()` again to get a new one. */
export class DeviceLostError extends Error {
  override name = 'DeviceLostError';
}

/** No WebGPU adapter could be found (no GPU and no software Vulkan driver). */
export class NoAdapterError extends Error {
  override name = 'NoAdapterError';
}

/** Formats a shape for messages: `[2,3,4]`. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}
