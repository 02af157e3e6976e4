import type { Tensor } from '../../tensor.js';
import type { KernelProgram, WebGpuBackend } from './webgpu-backend.js';
import type { Uniforms } from './wgsl.js';

/** Dispatches `program` reading `inputs` and writing `outputs` (tensors on `backend`). */
export function runKernel(
  backend: WebGpuBackend,
  program: KernelProgram,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  uniforms: Uniforms,
  workgroups: readonly [number, number, number],
): void {
  backend.run(
    program,
    inputs.map((t) => t.liveStorage(program.key)),
    outputs.map((t) => t.liveStorage(program.key)),
    uniforms.data(),
    workgroups,
  );
}

/** Program descriptor from a key and a lazily built source. */
export function program(key: string, inputs: number, outputs: number, source: () => string): KernelProgram {
  return { key, inputs, outputs, source };
}
