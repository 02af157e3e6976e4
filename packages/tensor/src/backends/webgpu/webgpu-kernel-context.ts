import type { Storage } from '../../backend.js';
import { BYTES_PER_ELEMENT, type DType } from '../../dtype.js';
import { ChunkedTensorError } from '../../errors.js';
import type { ChunkInfo, WebGpuKernelContext } from '../../kernel-context.js';
import { sizeOf } from '../../shape.js';
import { Tensor } from '../../tensor.js';
import { BaseKernelContext } from '../base-kernel-context.js';
import type { AdapterKind } from './adapter-kind.js';
import type { IndexCheck } from './index-checks.js';
import type { KernelProgram } from './program.js';
import type { GpuStorage, WebGpuBackend } from './webgpu-backend.js';
import type { Uniforms } from './wgsl.js';

/** The webgpu backend's kernel context: dispatches and copies on the pending encoder. */
export class WebGpuContext extends BaseKernelContext implements WebGpuKernelContext {
  private readonly inputStorages: Storage[] = [];
  private readonly outputStorages: Storage[] = [];

  constructor(readonly gpu: WebGpuBackend) {
    super(gpu);
  }

  get limits(): GPUSupportedLimits {
    return this.gpu.limits;
  }

  get adapterInfo(): GPUAdapterInfo {
    return this.gpu.adapterInfo;
  }

  get adapterKind(): AdapterKind {
    return this.gpu.adapterKind;
  }

  get maxBindingBytes(): number {
    return this.gpu.maxBindingBytes;
  }

  /**
   * An output that fits one binding: a kernel that writes a single binding calls this,
   * so an output larger than one binding is refused (`ChunkedTensorError`) before
   * anything is allocated. Chunk-aware kernels use {@link chunkedOutput}.
   */
  override output(shape: readonly number[], dtype: DType, what = 'kernel output'): Tensor {
    const bytes = sizeOf(shape) * BYTES_PER_ELEMENT[dtype];
    if (bytes > this.gpu.maxBindingBytes) {
      const n = this.gpu.bindingsFor(bytes, { rowElements: shape.length > 0 ? shape[shape.length - 1] : 1, elementBytes: BYTES_PER_ELEMENT[dtype] });
      throw new ChunkedTensorError(what, shape, dtype, n, 'its output would be');
    }
    return super.output(shape, dtype, what);
  }

  chunkedOutput(shape: readonly number[], dtype: DType, what = 'kernel output'): Tensor {
    return super.output(shape, dtype, what);
  }

  bindingsOf(shape: readonly number[], dtype: DType): number {
    const bytes = sizeOf(shape) * BYTES_PER_ELEMENT[dtype];
    return this.gpu.bindingsFor(bytes, { rowElements: shape.length > 0 ? shape[shape.length - 1] : 1, elementBytes: BYTES_PER_ELEMENT[dtype] });
  }

  chunks(t: Tensor): ChunkInfo | null {
    const s = t.liveStorage('chunks') as GpuStorage;
    if (!s.chunks) return null;
    const rowElements = t.rank > 0 ? t.shape[t.rank - 1] : 1;
    const rowBytes = rowElements * BYTES_PER_ELEMENT[t.dtype];
    const ranges = s.chunks.map((c) => {
      if (c.byteOffset % rowBytes !== 0 || c.byteSize % rowBytes !== 0) {
        throw new ChunkedTensorError('chunks', t.shape, t.dtype, s.chunks!.length, `rows of ${rowElements} elements straddle its chunks (it was reshaped across its last dimension)`);
      }
      return { rowStart: c.byteOffset / rowBytes, rows: c.byteSize / rowBytes };
    });
    return { rows: t.size / Math.max(1, rowElements), rowElements, ranges };
  }

  chunkView(t: Tensor, index: number): Tensor {
    const info = this.chunks(t);
    if (!info) throw new RangeError(`chunkView: tensor ${JSON.stringify(t.shape)} is not chunked`);
    const range = info.ranges[index];
    if (!range) throw new RangeError(`chunkView: tensor ${JSON.stringify(t.shape)} has ${info.ranges.length} chunks, not chunk ${index}`);
    return new Tensor(this.gpu.chunkView(t.liveStorage('chunkView'), index), [range.rows, info.rowElements], t.dtype);
  }

  dispatch(program: KernelProgram, inputs: readonly Tensor[], outputs: readonly Tensor[], uniforms: Uniforms, workgroups: readonly [number, number, number]): void {
    // Reused per dispatch (run() copies what it keeps), emptied after so no storage stays referenced.
    const ins = this.inputStorages;
    const outs = this.outputStorages;
    try {
      // A dispatch binds whole buffers: a chunked tensor is processed through chunk views.
      for (const t of inputs) refuseChunked(program.key, t);
      for (const t of outputs) refuseChunked(program.key, t);
      for (let i = 0; i < inputs.length; i++) ins.push(inputs[i].liveStorage(program.key));
      for (let i = 0; i < outputs.length; i++) outs.push(outputs[i].liveStorage(program.key));
      this.gpu.run(program, ins, outs, uniforms.data(), workgroups, uniforms.checkSlot);
    } finally {
      ins.length = 0;
      outs.length = 0;
    }
  }

  indexCheck(check: IndexCheck): number {
    return this.gpu.indexCheck(check);
  }

  copy(src: Tensor, srcByteOffset: number, dst: Tensor, dstByteOffset: number, byteSize: number): void {
    this.gpu.copy(src.liveStorage('copy'), srcByteOffset, dst.liveStorage('copy'), dstByteOffset, byteSize);
  }
}

/** Throws `ChunkedTensorError` naming `what` when `t` is split across several bindings. */
function refuseChunked(what: string, t: Tensor): void {
  const n = t.liveStorage(what).bindings;
  if (n !== undefined && n > 1) throw new ChunkedTensorError(what, t.shape, t.dtype, n);
}
