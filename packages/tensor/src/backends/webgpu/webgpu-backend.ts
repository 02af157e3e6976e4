// Kept in the published .d.ts (preserve): this file's types name GPUDevice, GPUBuffer, ...,
// so consumers compiling without skipLibCheck get them from @webgpu/types, a dependency.
/// <reference types="@webgpu/types" preserve="true" />
import { type Backend, type BackendCapabilities, type BackendMemory, type MemoryTag, MemoryTracker, type Storage, type StorageLayout, toSnapshot } from '../../backend.js';
import type { TensorData } from '../../dtype.js';
import { DeviceLostError, GpuValidationError, InvalidTensorError, OutOfMemoryError } from '../../errors.js';
import { engine } from '../../engine.js';
import { type AdapterKind, classifyAdapter } from './adapter-kind.js';
import { BindGroupCache } from './bind-group-cache.js';
import { BufferPool } from './buffer-pool.js';
import { type CheckSnapshot, type IndexCheck, IndexCheckTable, MAX_SLOTS, SLOT_BYTES, decodeChecks } from './index-checks.js';
import { BufferUsage, MapMode, ShaderStage, UNIFORM_SLOT_BYTES } from './constants.js';
import type { KernelContext } from '../../kernel-context.js';
import type { KernelProgram } from './program.js';
import { WebGpuContext } from './webgpu-kernel-context.js';

/**
 * Storage of the webgpu backend: a pooled GPU buffer (possibly larger than `byteSize`),
 * or, for a tensor larger than one storage binding, row chunks (`chunks`), each its own
 * pooled buffer that fits one binding.
 */
export interface GpuStorage extends Storage {
  /** The buffer; for a chunked storage its first chunk's (never bound: dispatches refuse chunked storages). */
  readonly buffer: GPUBuffer;
  /** Set when the submit that wrote this storage failed (or an index check flagged). */
  invalid?: Error;
  /** Row chunks in order, when the storage is split (see {@link GpuChunk}). */
  readonly chunks?: readonly GpuChunk[];
  /**
   * Set on a chunk view (`chunkView`): the chunked storage it belongs to. A view owns
   * nothing: releasing it frees nothing, and errors are recorded on its owner.
   */
  readonly viewOf?: GpuStorage;
}

/**
 * One row chunk of a chunked storage: bytes `[byteOffset, byteOffset + byteSize)` of the
 * tensor in a buffer of its own. Chunk sizes are whole rows of the allocating tensor's
 * last dimension, so no row straddles two chunks.
 */
export interface GpuChunk {
  readonly buffer: GPUBuffer;
  readonly byteOffset: number;
  readonly byteSize: number;
}

interface CachedPipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/** Tuning knobs of the backend. */
export interface WebGpuBackendOptions {
  /** Submit the pending encoder after this many dispatches (default 512). */
  maxDispatchesPerSubmit?: number;
  /** Bytes of released buffers kept for reuse (default 1 GiB). */
  poolCapBytes?: number;
  /**
   * Submit every dispatch on its own, in its own error scopes, so a validation error
   * names the op that caused it (default false: errors name the ops of the batch).
   * Slow; for finding a failing kernel. Also settable with `setDebug`.
   */
  debug?: boolean;
  /**
   * Testing knob: treat storage bindings as at most this many bytes (a multiple of 4),
   * so row chunking of tensors larger than one binding is exercised on small tensors.
   * Default: the adapter's `maxStorageBufferBindingSize`. Also settable with
   * `setMaxBindingBytes`.
   */
  maxBindingBytes?: number;
}

/**
 * Rows of `rowElements` elements per chunk when one binding holds `maxBytes`: counted in
 * 4-byte elements whatever the dtype, so tensors of one shape in f32, f16, i32 or u32 have
 * the same chunk boundaries (an op over several of them meets chunks row for row); a
 * multiple of 4 (when at least 4), so 2-byte rows still give 4-byte-aligned chunk
 * boundaries (buffer copies need that) and a chunk starts on a Philox block (random
 * tensors drawn chunk by chunk continue one stream).
 * Each chunk's pooled size class stays within `deviceMaxBytes`.
 */
export function chunkRows(maxBytes: number, rowElements: number, deviceMaxBytes: number): number {
  const rowBytes = Math.max(1, rowElements) * 4;
  let rows = Math.floor(maxBytes / rowBytes);
  if (rows >= 4) rows -= rows % 4;
  else if (rows >= 2) rows = 2;
  while (rows > 4 && BufferPool.sizeClass(rows * rowBytes) > deviceMaxBytes) rows -= Math.max(4, 4 * Math.floor(rows / 256));
  return rows;
}

/** Most op names listed in a batch's error message. */
const MAX_OPS_IN_MESSAGE = 16;

/** What one submit did: its op names and the storages it wrote. */
interface BatchRecord {
  ops: Set<string>;
  outputs: GpuStorage[];
}

/** Most cached bind groups; the cache is cleared when it grows past this. */
const MAX_CACHED_BIND_GROUPS = 4096;

/** Size of the uniform ring: the uniforms of up to this many dispatches per submit. */
const UNIFORM_RING_BYTES = 1 << 18;

/**
 * The WebGPU backend. Eager API, lazy submission: kernels append dispatches to one
 * pending command encoder, submitted at a readback, an explicit `flush()`, or every
 * `maxDispatchesPerSubmit` dispatches. Uniforms of all dispatches of a submit live in
 * one ring buffer (dynamic offsets), uploaded with a single write before the submit.
 */
export class WebGpuBackend implements Backend {
  readonly name = 'webgpu' as const;
  readonly capabilities: BackendCapabilities;
  readonly kernelContext: KernelContext;
  readonly limits: GPUSupportedLimits;
  /** The adapter's class (software implementation, SwiftShader): kernels pick variants by it. */
  readonly adapterKind: AdapterKind;
  private readonly tracker = new MemoryTracker();
  private readonly pool: BufferPool;
  private readonly pipelines = new Map<string, CachedPipeline>();
  private readonly uniformBuffer: GPUBuffer;
  private readonly uniformHost = new Uint8Array(UNIFORM_RING_BYTES);
  /** The same ring as u32 words: a dispatch's uniforms are copied in with no view allocated. */
  private readonly uniformWords = new Uint32Array(this.uniformHost.buffer);
  private uniformUsed = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** The pipeline last set on `pass` (null after the pass ends). */
  private passPipeline: GPUComputePipeline | null = null;
  /** The one dynamic offset of a dispatch's bind group, reused for every setBindGroup. */
  private readonly dynamicOffset = new Uint32Array(1);
  private dispatches = 0;
  private readonly maxDispatches: number;
  /** Submits whose error scopes are not yet checked, in submit order. */
  private errorChecks: { batch: BatchRecord; error: Promise<Error | null> }[] = [];
  private batch: BatchRecord = { ops: new Set(), outputs: [] };
  private readonly checks = new IndexCheckTable();
  /** Device-side index-check words (see index-checks.ts), zeroed after each readback. */
  private readonly errorBuffer: GPUBuffer;
  /** One submit per dispatch, each in its own error scopes (see WebGpuBackendOptions.debug). */
  debug: boolean;
  private lost: GPUDeviceLostInfo | null = null;
  /** The `maxBindingBytes` testing cap, or null for the adapter's limit. */
  private bindingCap: number | null = null;
  /**
   * Bind groups by (program, buffers, uniform slot size). Pooled buffers recur, so a
   * training loop reuses the same few bind groups instead of creating one per dispatch
   * (the largest host cost per op). Cleared when the pool destroys any buffer.
   */
  private readonly bindGroups = new BindGroupCache();
  private bindGroupGeneration = 0;
  /** Upload buffers of in-encoder writes, destroyed once their batch is submitted. */
  private stagingAfterSubmit: GPUBuffer[] = [];
  /** Count of dispatches since creation (for tests of batching). */
  totalDispatches = 0;
  /** Count of submits since creation. */
  totalSubmits = 0;

  constructor(
    readonly device: GPUDevice,
    readonly adapterInfo: GPUAdapterInfo,
    options: WebGpuBackendOptions = {},
  ) {
    this.limits = device.limits;
    this.adapterKind = classifyAdapter(adapterInfo);
    this.capabilities = {
      f16: device.features.has('shader-f16'),
      f64: false,
      subgroups: device.features.has('subgroups'),
      deviceMemory: true,
    };
    this.kernelContext = new WebGpuContext(this);
    this.maxDispatches = options.maxDispatchesPerSubmit ?? 512;
    this.pool = new BufferPool(device, options.poolCapBytes ?? 2 ** 30);
    this.uniformBuffer = device.createBuffer({ size: UNIFORM_RING_BYTES, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });
    // Created zeroed; kept zero between readbacks except where a kernel flags.
    this.errorBuffer = device.createBuffer({ size: MAX_SLOTS * SLOT_BYTES, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST, label: 'index-errors' });
    this.debug = options.debug ?? false;
    if (options.maxBindingBytes !== undefined) this.setMaxBindingBytes(options.maxBindingBytes);
    void device.lost.then((info) => {
      this.lost = info;
    });
  }

  private checkAlive(): void {
    if (this.lost) throw new DeviceLostError(`webgpu: device lost (${this.lost.reason}): ${this.lost.message}; call init() again`);
  }

  /** The adapter's largest storage binding (bytes), before any testing cap. */
  get deviceMaxBindingBytes(): number {
    return Math.min(this.limits.maxStorageBufferBindingSize, this.limits.maxBufferSize);
  }

  /** Largest storage (bytes) held in one buffer; larger tensors are split in row chunks. */
  get maxBindingBytes(): number {
    return this.bindingCap === null ? this.deviceMaxBindingBytes : Math.min(this.bindingCap, this.deviceMaxBindingBytes);
  }

  /**
   * Testing knob: storages above `bytes` (a positive multiple of 4) are split in row
   * chunks, as tensors above the adapter's binding limit are; null restores the
   * adapter's limit. Affects tensors allocated afterwards only.
   */
  setMaxBindingBytes(bytes: number | null): void {
    if (bytes !== null && (!Number.isSafeInteger(bytes) || bytes < 16 || bytes % 4 !== 0)) {
      throw new RangeError(`webgpu: maxBindingBytes must be an integer multiple of 4, at least 16, got ${bytes}`);
    }
    this.bindingCap = bytes;
  }

  /**
   * Bindings a storage of `byteSize` bytes in rows of `layout` takes (1 when it fits one
   * binding); throws `OutOfMemoryError` when it exceeds the adapter's `maxBufferSize` or cannot
   * be split (one row exceeds a binding).
   */
  bindingsFor(byteSize: number, layout?: StorageLayout): number {
    const max = this.maxBindingBytes;
    if (byteSize <= max) return 1;
    // Row chunks lift the binding limit, not the buffer limit: a tensor larger than the
    // adapter's largest buffer is refused here, before thousands of chunks are created.
    if (byteSize > this.limits.maxBufferSize) {
      throw new OutOfMemoryError(
        `webgpu: a tensor of ${byteSize} bytes exceeds the adapter's largest buffer (maxBufferSize ${this.limits.maxBufferSize} bytes)`,
        toSnapshot(this.memory(), engine.liveTensors),
      );
    }
    const rowBytes = layout ? Math.max(1, layout.rowElements) * layout.elementBytes : 0;
    const rows = layout ? chunkRows(max, layout.rowElements, this.deviceMaxBindingBytes) : 0;
    if (rows < 1 || (rows * rowBytes) % 4 !== 0) {
      throw new OutOfMemoryError(
        `webgpu: a tensor of ${byteSize} bytes exceeds the adapter's largest storage binding (${max} bytes) and cannot be split in row chunks (${layout ? `one row of its last dimension is ${rowBytes} bytes` : 'no row layout given'})`,
        toSnapshot(this.memory(), engine.liveTensors),
      );
    }
    return Math.ceil(byteSize / (rows * rowBytes));
  }

  allocate(byteSize: number, tag: MemoryTag, layout?: StorageLayout): Storage {
    this.checkAlive();
    const bindings = this.bindingsFor(byteSize, layout);
    this.beginBatch();
    if (bindings > 1) return this.allocateChunks(byteSize, tag, layout!);
    const buffer = this.pool.acquire(byteSize);
    this.tracker.add(byteSize, tag);
    const s: GpuStorage = { backend: this, byteSize, tag, refs: 1, buffer };
    return s;
  }

  /** A storage in row chunks of at most one binding each (see {@link chunkRows}). */
  private allocateChunks(byteSize: number, tag: MemoryTag, layout: StorageLayout): GpuStorage {
    const chunkBytes = chunkRows(this.maxBindingBytes, layout.rowElements, this.deviceMaxBindingBytes) * Math.max(1, layout.rowElements) * layout.elementBytes;
    const chunks: GpuChunk[] = [];
    try {
      for (let at = 0; at < byteSize; at += chunkBytes) {
        const size = Math.min(chunkBytes, byteSize - at);
        chunks.push({ buffer: this.pool.acquire(size), byteOffset: at, byteSize: size });
      }
    } catch (e) {
      for (const c of chunks) this.pool.releaseAfterSubmit(c.buffer);
      throw e;
    }
    this.tracker.add(byteSize, tag);
    return { backend: this, byteSize, tag, refs: 1, buffer: chunks[0].buffer, chunks, bindings: chunks.length };
  }

  /**
   * A storage handle on chunk `index` of chunked `storage` (bytes `[0, chunk.byteSize)`
   * of its own buffer), for kernels that process a chunked tensor chunk by chunk. It owns
   * nothing (see {@link GpuStorage.viewOf}).
   */
  chunkView(storage: Storage, index: number): GpuStorage {
    const s = storage as GpuStorage;
    const c = s.chunks?.[index];
    if (!c) throw new RangeError(`webgpu: chunkView: storage has no chunk ${index} (${s.chunks?.length ?? 0} chunks)`);
    return { backend: this, byteSize: c.byteSize, tag: s.tag, refs: 1, buffer: c.buffer, viewOf: s };
  }

  write(storage: Storage, data: TensorData): void {
    this.checkAlive();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const gs = storage as GpuStorage;
    if (gs.chunks) {
      for (const c of gs.chunks) {
        if (c.byteOffset >= bytes.byteLength) break;
        this.writeBuffer(c.buffer, bytes.subarray(c.byteOffset, Math.min(bytes.byteLength, c.byteOffset + c.byteSize)), gs);
      }
      return;
    }
    this.writeBuffer(gs.buffer, bytes, gs);
  }

  /** Writes `bytes` at the start of `buffer` (a buffer of `owner`), ordered after pending commands that used it. */
  private writeBuffer(buffer: GPUBuffer, bytes: Uint8Array, owner: GpuStorage): void {
    // writeBuffer needs a multiple of 4 bytes; pooled buffers are at least that large.
    const padded = bytes.byteLength % 4 === 0 ? bytes : padTo4(bytes);
    if (padded.byteLength === 0) return;
    if (!this.pool.reusedInBatch.has(buffer)) {
      this.device.queue.writeBuffer(buffer, 0, padded as Uint8Array<ArrayBuffer>);
      return;
    }
    // Pending commands of this batch used the buffer: a queue-level write would land
    // before them, so copy from a staging buffer in order inside the encoder.
    const staging = this.device.createBuffer({ size: padded.byteLength, usage: BufferUsage.COPY_SRC, mappedAtCreation: true });
    new Uint8Array(staging.getMappedRange()).set(padded);
    staging.unmap();
    this.endPass();
    this.ensureEncoder().copyBufferToBuffer(staging, 0, buffer, 0, padded.byteLength);
    this.batch.ops.add('write');
    this.batch.outputs.push(owner);
    this.stagingAfterSubmit.push(staging);
  }

  /**
   * Copies `storage` back. The index-check words travel in the same staging buffer
   * (after the data) when a checking kernel ran since the last readback; then this
   * throws the first `IndexError`. Throws the batch's `GpuValidationError` of a failed
   * submit, and `InvalidTensorError` for a storage such a submit wrote.
   */
  async read(storage: Storage, byteLength: number): Promise<ArrayBuffer> {
    this.checkAlive();
    const gs = ownerOf(storage as GpuStorage);
    if (gs.invalid) throw invalidError(gs.invalid);
    const size = Math.max(4, Math.ceil(byteLength / 4) * 4);
    const checks = this.checks.take();
    const staging = this.device.createBuffer({ size: size + checks.byteLength, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    this.endPass();
    if (gs.chunks) {
      // Each chunk lands at its offset; chunk sizes are multiples of 4 except perhaps the
      // last, whose pooled buffer is padded to the size class.
      for (const c of gs.chunks) {
        if (c.byteOffset >= size) break;
        this.ensureEncoder().copyBufferToBuffer(c.buffer, 0, staging, c.byteOffset, Math.min(size - c.byteOffset, Math.ceil(c.byteSize / 4) * 4));
      }
    } else this.ensureEncoder().copyBufferToBuffer(gs.buffer, 0, staging, 0, size);
    this.copyChecks(checks, staging, size);
    this.flush();
    try {
      await this.throwPendingErrors();
      if (gs.invalid) throw invalidError(gs.invalid);
      await staging.mapAsync(MapMode.READ);
      const mapped = staging.getMappedRange();
      this.throwChecks(checks, new Uint32Array(mapped, size, checks.byteLength / 4));
      if (gs.invalid) throw invalidError(gs.invalid);
      return mapped.slice(0, byteLength);
    } finally {
      staging.destroy();
    }
  }

  /** The slot of a device-side index check (see `WebGpuKernelContext.indexCheck`). */
  indexCheck(check: IndexCheck): number {
    return this.checks.slotFor(check);
  }

  /** Copies the words of `checks` to `staging` at `offset`, then zeroes them (in order, in the encoder). */
  private copyChecks(checks: CheckSnapshot, staging: GPUBuffer, offset: number): void {
    if (checks.byteLength === 0) return;
    const encoder = this.ensureEncoder();
    encoder.copyBufferToBuffer(this.errorBuffer, 0, staging, offset, checks.byteLength);
    encoder.clearBuffer(this.errorBuffer, 0, checks.byteLength);
  }

  private throwChecks(checks: CheckSnapshot, words: Uint32Array): void {
    if (checks.byteLength === 0) return;
    const error = decodeChecks(checks, words, (s, e) => {
      (s as GpuStorage).invalid ??= e;
    });
    if (error) throw error;
  }

  release(storage: Storage): void {
    const gs = storage as GpuStorage;
    if (gs.viewOf) return;
    this.tracker.remove(storage.byteSize, storage.tag);
    if (gs.chunks) for (const c of gs.chunks) this.pool.releaseAfterSubmit(c.buffer);
    else this.pool.releaseAfterSubmit(gs.buffer);
    if (!this.encoder) this.pool.onSubmit();
  }

  retag(storage: Storage, tag: MemoryTag): void {
    if ((storage as GpuStorage).viewOf) return;
    this.tracker.retag(storage.byteSize, storage.tag, tag);
    storage.tag = tag;
  }

  /**
   * Appends one dispatch of `program` over `workgroups`. `uniforms` (u32 words; write
   * floats through a Float32Array view of the same buffer) fills the uniform block.
   */
  run(
    program: KernelProgram,
    inputs: readonly Storage[],
    outputs: readonly Storage[],
    uniforms: Uint32Array,
    workgroups: readonly [number, number, number],
    checkSlot?: number,
  ): void {
    this.checkAlive();
    if (workgroups[0] * workgroups[1] * workgroups[2] === 0) return;
    if (program.indexChecks && checkSlot === undefined) {
      throw new Error(`webgpu: program ${program.key} has indexChecks but its uniforms have no slot (call Uniforms.indexSlot(ctx.indexCheck(...)))`);
    }
    const slotBytes = Math.ceil(Math.max(uniforms.byteLength, 16) / UNIFORM_SLOT_BYTES) * UNIFORM_SLOT_BYTES;
    if (this.uniformUsed + slotBytes > UNIFORM_RING_BYTES) this.flush();
    // The batch's error scopes are open before the pipeline is created, so a shader or
    // layout error is attributed to this batch (and, in debug mode, to this op).
    this.beginBatch();
    const { pipeline, layout } = this.getPipeline(program);
    this.batch.ops.add(program.key);
    // Chunk views record errors on the storage they belong to.
    const outs = outputs.some((o) => (o as GpuStorage).viewOf) ? outputs.map((o) => ownerOf(o as GpuStorage)) : (outputs as readonly GpuStorage[]);
    for (const s of inputs) {
      const bad = ownerOf(s as GpuStorage).invalid;
      if (bad) for (const o of outs) o.invalid ??= bad;
    }
    for (const o of outs) this.batch.outputs.push(o);
    this.checks.recordOutputs(checkSlot, inputs.some((s) => (s as GpuStorage).viewOf) ? inputs.map((s) => ownerOf(s as GpuStorage)) : inputs, outs);
    const offset = this.uniformUsed;
    // Slots start at multiples of UNIFORM_SLOT_BYTES, so the word offset is exact.
    this.uniformWords.set(uniforms, offset >>> 2);
    this.uniformUsed += slotBytes;
    const bindGroup = this.bindGroupFor(program, layout, inputs as readonly GpuStorage[], outputs as readonly GpuStorage[], slotBytes);
    const pass = this.ensurePass(program.key);
    // Runs of one kernel (chained elementwise ops, per-layer repeats) keep their pipeline set.
    if (this.passPipeline !== pipeline) {
      pass.setPipeline(pipeline);
      this.passPipeline = pipeline;
    }
    this.dynamicOffset[0] = offset;
    pass.setBindGroup(0, bindGroup, this.dynamicOffset, 0, 1);
    pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
    this.dispatches++;
    this.totalDispatches++;
    engine.profiler?.dispatch(inputs, outputs);
    if (this.debug || this.dispatches >= this.maxDispatches) this.flush();
  }

  /** Copies `byteSize` bytes between buffers inside the pending encoder (ordered with dispatches). */
  copy(src: Storage, srcOffset: number, dst: Storage, dstOffset: number, byteSize: number): void {
    if (byteSize === 0) return;
    this.beginBatch();
    this.endPass();
    const s = src as GpuStorage;
    const d = dst as GpuStorage;
    if (!s.chunks && !d.chunks) this.ensureEncoder().copyBufferToBuffer(s.buffer, srcOffset, d.buffer, dstOffset, byteSize);
    else {
      // Split where either side crosses into its next chunk (chunked storages are
      // contiguous bytes in several buffers).
      let done = 0;
      while (done < byteSize) {
        const from = locate(s, srcOffset + done);
        const to = locate(d, dstOffset + done);
        const n = Math.min(byteSize - done, from.left, to.left);
        this.ensureEncoder().copyBufferToBuffer(from.buffer, from.offset, to.buffer, to.offset, n);
        done += n;
      }
    }
    this.batch.ops.add('copy');
    const owner = ownerOf(d);
    const bad = ownerOf(s).invalid;
    if (bad) owner.invalid ??= bad;
    this.batch.outputs.push(owner);
    engine.profiler?.copy(byteSize);
    if (this.debug) this.flush();
  }

  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    if (this.uniformUsed > 0) this.device.queue.writeBuffer(this.uniformBuffer, 0, this.uniformHost, 0, this.uniformUsed);
    const batch = this.batch;
    this.batch = { ops: new Set(), outputs: [] };
    this.device.queue.submit([this.encoder.finish({ label: opList(batch.ops) })]);
    this.totalSubmits++;
    engine.profiler?.submit();
    this.encoder = null;
    this.dispatches = 0;
    this.uniformUsed = 0;
    this.pool.onSubmit();
    for (const b of this.stagingAfterSubmit) b.destroy();
    this.stagingAfterSubmit = [];
    const validation = this.device.popErrorScope();
    const oom = this.device.popErrorScope();
    // Resolved as soon as the device answers: every storage the batch wrote is marked,
    // so a later read of any of them throws instead of returning stale contents.
    this.errorChecks.push({
      batch,
      error: Promise.all([validation, oom]).then(([v, o]) => {
        const error = v ?? o;
        if (!error) return null;
        const wrapped = this.batchError(error, batch);
        for (const s of batch.outputs) s.invalid ??= wrapped;
        return wrapped;
      }),
    });
  }

  /** Waits for submitted work; throws like {@link WebGpuBackend.read} (index checks included). */
  async sync(): Promise<void> {
    const checks = this.checks.take();
    const staging = checks.byteLength > 0 ? this.device.createBuffer({ size: checks.byteLength, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST }) : null;
    if (staging) {
      this.endPass();
      this.copyChecks(checks, staging, 0);
    }
    this.flush();
    try {
      await this.device.queue.onSubmittedWorkDone();
      await this.throwPendingErrors();
      if (staging) {
        await staging.mapAsync(MapMode.READ);
        this.throwChecks(checks, new Uint32Array(staging.getMappedRange()));
      }
    } finally {
      staging?.destroy();
    }
  }

  memory(): BackendMemory {
    return this.tracker.snapshot(this.pool.pooledBytes);
  }

  /** Bytes of all GPU buffers held (live tensors, size-class padding and the pool). */
  get deviceBytes(): number {
    return this.pool.deviceBytes;
  }

  resetPeak(): void {
    this.tracker.resetPeak();
  }

  /** Returns pooled buffers to the device. */
  trimPool(): void {
    this.flush();
    this.pool.trim();
  }

  dispose(): void {
    this.flush();
    this.pool.trim();
    this.bindGroups.clear();
    this.pipelines.clear();
    this.uniformBuffer.destroy();
    this.errorBuffer.destroy();
  }

  // ---- internals -----------------------------------------------------------------

  /** Opens an encoder and the error scopes that cover everything until the next submit. */
  private beginBatch(): void {
    if (this.encoder) return;
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    this.encoder = this.device.createCommandEncoder();
  }

  private ensureEncoder(): GPUCommandEncoder {
    this.beginBatch();
    return this.encoder!;
  }

  private ensurePass(label: string): GPUComputePassEncoder {
    // In debug mode each pass holds one dispatch, so its label is the op's.
    this.pass ??= this.ensureEncoder().beginComputePass(this.debug ? { label } : {});
    return this.pass;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
    this.passPipeline = null;
  }

  private async throwPendingErrors(): Promise<void> {
    const checks = this.errorChecks;
    this.errorChecks = [];
    const errors = await Promise.all(checks.map((c) => c.error));
    const failed = errors.findIndex((e) => e !== null);
    if (failed < 0) return;
    const error = errors[failed]!;
    // Later submits were recorded before the failure was known and may have read its
    // outputs: what they wrote is not trusted either.
    const after = new InvalidTensorError(`webgpu: this tensor was written after a submit that failed, before its error was known (${error.message})`, { cause: error });
    for (const c of checks.slice(failed + 1)) for (const s of c.batch.outputs) s.invalid ??= after;
    throw error;
  }

  /** The typed error of a failed submit, naming its op (debug mode) or its ops. */
  private batchError(error: GPUError, batch: BatchRecord): Error {
    const snapshot = toSnapshot(this.memory(), engine.liveTensors);
    const where = batch.ops.size === 1 ? `op ${opList(batch.ops)}` : `a batch of ops ${opList(batch.ops)}; init({ debug: true }) or setDebug(true) names the op`;
    if (error.constructor.name.includes('OutOfMemory')) return new OutOfMemoryError(`webgpu: out of device memory in ${where}: ${error.message}`, snapshot);
    return new GpuValidationError(`webgpu: ${where}: ${error.message}`, snapshot);
  }

  private bindGroupFor(program: KernelProgram, layout: GPUBindGroupLayout, inputs: readonly GpuStorage[], outputs: readonly GpuStorage[], slotBytes: number): GPUBindGroup {
    if (this.bindGroupGeneration !== this.pool.generation || this.bindGroups.size >= MAX_CACHED_BIND_GROUPS) {
      this.bindGroups.clear();
      this.bindGroupGeneration = this.pool.generation;
    }
    const slot = this.bindGroups.slot(layout, slotBytes, inputs, outputs);
    if (slot.group) return slot.group;
    const entries: GPUBindGroupEntry[] = [];
    for (const s of inputs) entries.push({ binding: entries.length, resource: { buffer: s.buffer } });
    for (const s of outputs) entries.push({ binding: entries.length, resource: { buffer: s.buffer } });
    const bindings = entries.length;
    entries.push({ binding: bindings, resource: { buffer: this.uniformBuffer, size: slotBytes } });
    if (program.indexChecks) entries.push({ binding: bindings + 1, resource: { buffer: this.errorBuffer } });
    const group = this.device.createBindGroup({ layout, entries, label: program.key });
    this.bindGroups.store(slot, group);
    if (engine.profiler) engine.profiler.bindGroups++;
    return group;
  }

  private getPipeline(program: KernelProgram): CachedPipeline {
    const cached = this.pipelines.get(program.key);
    if (cached) return cached;
    const entries: GPUBindGroupLayoutEntry[] = [];
    for (let i = 0; i < program.inputs + program.outputs; i++) {
      entries.push({ binding: i, visibility: ShaderStage.COMPUTE, buffer: { type: i < program.inputs ? 'read-only-storage' : 'storage' } });
    }
    entries.push({
      binding: program.inputs + program.outputs,
      visibility: ShaderStage.COMPUTE,
      buffer: { type: 'uniform', hasDynamicOffset: true },
    });
    if (program.indexChecks) {
      entries.push({ binding: program.inputs + program.outputs + 1, visibility: ShaderStage.COMPUTE, buffer: { type: 'storage' } });
    }
    const layout = this.device.createBindGroupLayout({ entries, label: program.key });
    const module = this.device.createShaderModule({ code: program.source(), label: program.key });
    const pipeline = this.device.createComputePipeline({
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
      label: program.key,
    });
    const entry = { pipeline, layout };
    this.pipelines.set(program.key, entry);
    if (engine.profiler) engine.profiler.pipelines++;
    return entry;
  }

  /** Number of compiled pipelines (for tests of the shape-class cache). */
  get pipelineCount(): number {
    return this.pipelines.size;
  }
}

/** Op names of a batch for messages, the first {@link MAX_OPS_IN_MESSAGE} of them. */
function opList(ops: ReadonlySet<string>): string {
  const names = [...ops];
  const shown = names.slice(0, MAX_OPS_IN_MESSAGE).join(', ');
  return names.length > MAX_OPS_IN_MESSAGE ? `${shown}, ... (${names.length} in all)` : shown;
}

/** The storage whose errors `s` carries: its owner for a chunk view, else itself. */
function ownerOf(s: GpuStorage): GpuStorage {
  return s.viewOf ?? s;
}

/** The buffer and offset of byte `at` of `s`, and the bytes left in that buffer's part. */
function locate(s: GpuStorage, at: number): { buffer: GPUBuffer; offset: number; left: number } {
  if (!s.chunks) return { buffer: s.buffer, offset: at, left: Number.POSITIVE_INFINITY };
  // Chunks are equal except the last: the index is a division.
  const i = Math.min(Math.floor(at / s.chunks[0].byteSize), s.chunks.length - 1);
  const c = s.chunks[i];
  // The last chunk's pooled buffer is padded (to 4 bytes at least): copies of a tail
  // rounded up to 4 bytes stay inside it.
  const end = i === s.chunks.length - 1 ? c.byteOffset + c.buffer.size : c.byteOffset + c.byteSize;
  if (at >= end) throw new RangeError(`webgpu: copy reaches byte ${at} of a chunked storage of ${s.byteSize} bytes`);
  return { buffer: c.buffer, offset: at - c.byteOffset, left: end - at };
}

/** The error a read of a storage from a failed submit throws. */
function invalidError(cause: Error): InvalidTensorError {
  if (cause instanceof InvalidTensorError) return cause;
  return new InvalidTensorError(`webgpu: this tensor was written by work that failed, so its contents are undefined (${cause.name}: ${cause.message})`, { cause });
}

function padTo4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}
