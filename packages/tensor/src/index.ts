/**
 * `@webpeft/tensor`: tensors, dtypes, backends (webgpu, cpu), kernels, autograd, RNG
 * and memory accounting.
 * @packageDocumentation
 */
export { Tensor } from './tensor.js';
export type { DType, TensorData } from './dtype.js';
export { BYTES_PER_ELEMENT, isFloat } from './dtype.js';
export {
  ShapeError,
  DTypeError,
  DisposedTensorError,
  OutOfMemoryError,
  GpuValidationError,
  DeviceLostError,
  NoAdapterError,
  type MemorySnapshot,
} from './errors.js';
export type { Backend, BackendName, BackendMemory, BackendCapabilities, MemoryTag, Storage } from './backend.js';
export { MEMORY_TAGS } from './backend.js';
export { init, setBackend, getBackendName, flush, sync, type InitOptions } from './init.js';
export { memory, getBackend, resetPeakMemory, type MemoryInfo } from './memory.js';
export { registerKernel, registerGradient, getKernel, getGradient, type KernelFn, type GradientSpec, type GradContext, type AttrsOf } from './registry.js';
export { runOp } from './ops/run-op.js';
export { engine as _engine } from './engine.js';
export type { OpName, OpAttrs, UnaryOp, BinaryOp, CompareOp, ReduceAttrs, StridedCopyAttrs } from './op-names.js';
export { UNARY_OPS, BINARY_OPS, COMPARE_OPS } from './op-names.js';
export { sizeOf, stridesOf, broadcastShapes, shapesEqual } from './shape.js';
export { manualSeed, getRngState, setRngState } from './random/rng.js';
export { philoxWords, wordToUniform } from './random/philox.js';
export { f16BitsToF32, f32ToF16Bits } from './math.js';
export { WebGpuBackend, type KernelProgram } from './backends/webgpu/webgpu-backend.js';
export { CpuBackend, cpuData } from './backends/cpu/cpu-backend.js';
export { MetaBackend } from './backends/meta/meta-backend.js';
export { Uniforms, storageBindings, elementMain, grid, wgslType } from './backends/webgpu/wgsl.js';
export { runKernel, program } from './backends/webgpu/run-kernel.js';

export * from './ops/creation.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/layout.js';
export * from './ops/matmul.js';
export * from './ops/fused.js';
export * from './ops/scope.js';
export { toBackend } from './ops/transfer.js';
export { assign } from './ops/assign.js';
