import type { Storage } from '../../backend.js';
import type { WebGpuKernelContext } from '../../kernel-context.js';
import type { Tensor } from '../../tensor.js';
import { BaseKernelContext } from '../base-kernel-context.js';
import type { IndexCheck } from './index-checks.js';
import type { KernelProgram } from './program.js';
import type { WebGpuBackend } from './webgpu-backend.js';
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

  get maxBindingBytes(): number {
    return Math.min(this.gpu.limits.maxStorageBufferBindingSize, this.gpu.limits.maxBufferSize);
  }

  dispatch(program: KernelProgram, inputs: readonly Tensor[], outputs: readonly Tensor[], uniforms: Uniforms, workgroups: readonly [number, number, number]): void {
    // Reused per dispatch (run() copies what it keeps), emptied after so no storage stays referenced.
    const ins = this.inputStorages;
    const outs = this.outputStorages;
    try {
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
