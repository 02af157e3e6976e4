import type { DType, TensorData } from './dtype.js';
import type { MemorySnapshot } from './errors.js';
import type { KernelContext } from './kernel-context.js';

/** Names of the built-in backends. */
export type BackendName = 'cpu' | 'webgpu' | 'meta';

/**
 * What a block of memory is for. `memory()` reports bytes per tag, which is how every
 * memory claim (weights vs grads vs optimizer state vs activations) is measured.
 */
export type MemoryTag = 'weights' | 'grads' | 'optimizer' | 'activations' | 'quant' | 'other';

/** All memory tags, in report order. */
export const MEMORY_TAGS: readonly MemoryTag[] = ['weights', 'grads', 'optimizer', 'activations', 'quant', 'other'];

/**
 * A block of backend memory. Several tensors may share one (a reshape shares its
 * input's storage); `refs` counts them and the block is released when it drops to 0.
 */
export interface Storage {
  readonly backend: Backend;
  readonly byteSize: number;
  tag: MemoryTag;
  refs: number;
  /**
   * Number of separate device bindings the storage is split across (webgpu row chunks
   * of a tensor larger than one storage binding); absent for one block. Only kernels
   * registered with `{ chunked: true }` accept such a storage.
   */
  readonly bindings?: number;
}

/**
 * How a new storage's elements group into rows (the last dimension of its tensor), so a
 * backend that must split it keeps every row inside one block.
 */
export interface StorageLayout {
  /** Elements per row: the tensor's last dimension (1 for a scalar). */
  readonly rowElements: number;
  /** Bytes per element. */
  readonly elementBytes: number;
}

/** Memory figures of one backend (tensor counts are added by the engine). */
export interface BackendMemory {
  liveBytes: number;
  peakBytes: number;
  liveBuffers: number;
  /** Bytes kept by a buffer pool for reuse (not live, not yet returned to the device). */
  pooledBytes: number;
  bytesByTag: Record<MemoryTag, number>;
  /** Highest live bytes of each tag since creation or the last `resetPeak`. */
  peakBytesByTag: Record<MemoryTag, number>;
}

/** Optional capabilities; each is absent unless a backend declares it. */
export interface BackendCapabilities {
  /** Can store `f16` tensors. */
  f16: boolean;
  /** Can store `f64` tensors (the cpu reference backend only). */
  f64: boolean;
  /** Subgroup operations are available to kernels. */
  subgroups: boolean;
  /**
   * Tensors live in device memory apart from host memory, so moving rarely used state
   * (paged optimizer state) to the host saves device memory.
   */
  deviceMemory: boolean;
}

/**
 * The small interface every backend implements: allocate, write, read, release,
 * flush. Kernels are registered separately per (op, backend) in the kernel registry.
 */
export interface Backend {
  readonly name: BackendName;
  readonly capabilities: BackendCapabilities;
  /** What kernels registered for this backend receive (see `@webpeft/tensor/kernel`). */
  readonly kernelContext: KernelContext;
  /**
   * Allocates `byteSize` bytes (contents undefined) tagged `tag`; throws `OutOfMemoryError`.
   * `layout` says how the bytes form rows, so a storage larger than one binding can be
   * split in whole rows (webgpu); backends that never split ignore it.
   */
  allocate(byteSize: number, tag: MemoryTag, layout?: StorageLayout): Storage;
  /** Writes host data into the start of `storage`. */
  write(storage: Storage, data: TensorData): void;
  /** Reads the first `byteLength` bytes of `storage` back to the host. */
  read(storage: Storage, byteLength: number): Promise<ArrayBuffer>;
  /** Returns `storage` to the backend (it may be pooled and reused later). */
  release(storage: Storage): void;
  /** Moves the bytes of `storage` from its tag to `tag` in the memory report. */
  retag(storage: Storage, tag: MemoryTag): void;
  /** Submits pending work (no-op for synchronous backends). */
  flush(): void;
  /** Waits until all submitted work has finished. */
  sync(): Promise<void>;
  /** Memory figures of this backend. */
  memory(): BackendMemory;
  /** Starts a new peak measurement from the current live bytes. */
  resetPeak(): void;
  /** Frees pooled memory and device resources. */
  dispose(): void;
}

/** Checks that `dtype` can live on `backend`, naming the op in the error. */
export function backendSupports(backend: Backend, dtype: DType): boolean {
  if (dtype === 'f16') return backend.capabilities.f16;
  if (dtype === 'f64') return backend.capabilities.f64;
  return true;
}

/** Shared bookkeeping of live/peak bytes per tag for backend implementations. */
export class MemoryTracker {
  liveBytes = 0;
  peakBytes = 0;
  liveBuffers = 0;
  readonly bytesByTag: Record<MemoryTag, number> = {
    weights: 0,
    grads: 0,
    optimizer: 0,
    activations: 0,
    quant: 0,
    other: 0,
  };

  readonly peakBytesByTag: Record<MemoryTag, number> = {
    weights: 0,
    grads: 0,
    optimizer: 0,
    activations: 0,
    quant: 0,
    other: 0,
  };

  add(bytes: number, tag: MemoryTag): void {
    this.liveBytes += bytes;
    this.liveBuffers++;
    this.bytesByTag[tag] += bytes;
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
    if (this.bytesByTag[tag] > this.peakBytesByTag[tag]) this.peakBytesByTag[tag] = this.bytesByTag[tag];
  }

  remove(bytes: number, tag: MemoryTag): void {
    this.liveBytes -= bytes;
    this.liveBuffers--;
    this.bytesByTag[tag] -= bytes;
  }

  retag(bytes: number, from: MemoryTag, to: MemoryTag): void {
    this.bytesByTag[from] -= bytes;
    this.bytesByTag[to] += bytes;
    if (this.bytesByTag[to] > this.peakBytesByTag[to]) this.peakBytesByTag[to] = this.bytesByTag[to];
  }

  snapshot(pooledBytes: number): BackendMemory {
    return {
      liveBytes: this.liveBytes,
      peakBytes: this.peakBytes,
      liveBuffers: this.liveBuffers,
      pooledBytes,
      bytesByTag: { ...this.bytesByTag },
      peakBytesByTag: { ...this.peakBytesByTag },
    };
  }

  /** Starts a new peak measurement from the current live bytes. */
  resetPeak(): void {
    this.peakBytes = this.liveBytes;
    Object.assign(this.peakBytesByTag, this.bytesByTag);
  }
}

/** Converts a backend report to the snapshot carried by memory errors. */
export function toSnapshot(m: BackendMemory, liveTensors: number): MemorySnapshot {
  return {
    liveBytes: m.liveBytes,
    peakBytes: m.peakBytes,
    liveTensors,
    liveBuffers: m.liveBuffers,
    bytesByTag: { ...m.bytesByTag },
  };
}
