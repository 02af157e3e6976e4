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
  IndexError,
  InvalidTensorError,
  TensorBusyError,
  ChunkedTensorError,
  type MemorySnapshot,
} from './errors.js';
export type { Backend, BackendName, BackendMemory, BackendCapabilities, MemoryTag, Storage, StorageLayout } from './backend.js';
export { MEMORY_TAGS } from './backend.js';
export { init, setBackend, setDebug, getBackendName, flush, sync, type InitOptions } from './init.js';
export { memory, getBackend, resetPeakMemory, type MemoryInfo, type Backends } from './memory.js';
export { runOp } from './ops/run-op.js';
export { profile, OUTSIDE_OPS, type Profile, type OpProfile } from './profile.js';
export type {
  OpName,
  OpAttrs,
  PrimitiveOpAttrs,
  FusedOpAttrs,
  PrimitiveOpName,
  FusedOpName,
  UnaryOp,
  BinaryOp,
  CompareOp,
  ScalarOperandOp,
  ActivationOp,
  ActivationGradOp,
  ReduceAttrs,
  AttentionAttrs,
  StridedCopyAttrs,
  MatrixView,
  StridedMatMulAttrs,
} from './op-names.js';
export { UNARY_OPS, BINARY_OPS, COMPARE_OPS, ACTIVATION_OPS, ACTIVATION_GRAD_OPS } from './op-names.js';
export { sizeOf, stridesOf, broadcastShapes, shapesEqual } from './shape.js';
export { manualSeed, getRngState, setRngState, checkRngState } from './random/rng.js';
export { philoxWords, wordToUniform } from './random/philox.js';
export { f16BitsToF32, f32ArrayToF16Bits, f32ToF16Bits } from './math.js';
export type { WebGpuBackend } from './backends/webgpu/webgpu-backend.js';
export type { CpuBackend } from './backends/cpu/cpu-backend.js';
export type { MetaBackend } from './backends/meta/meta-backend.js';

export * from './ops/creation.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/layout.js';
export * from './ops/matmul.js';
export { configureMatmulAutotune, tuneMatmul, type MatmulTuneOptions, type MatmulTuneProblem, type MatmulTuneResult } from './backends/webgpu/kernels/matmul/tune.js';
export type { MatmulAutotuneOptions } from './backends/webgpu/kernels/matmul/autotune.js';
export { stridedMatmul } from './ops/strided-matmul.js';
export * from './ops/activations.js';
export * from './ops/softmax.js';
export * from './ops/linear-cross-entropy.js';
export * from './ops/norms.js';
export { addRmsNorm, type AddRmsNormArgs, type AddRmsNormResult } from './ops/add-rms-norm.js';
export { ropeHeads } from './ops/rotary.js';
export { swiglu, type SwiGLUBackwardArgs, type SwiGLUGrads } from './ops/swiglu.js';
export { dropout } from './ops/dropout.js';
export { fusedAttention, ATTENTION_MASKED_SCORE, type FusedAttentionOptions } from './ops/attention.js';
export * from './ops/scope.js';
export { checkpoint, type CheckpointOptions } from './autograd/checkpoint.js';
export { toBackend } from './ops/transfer.js';
export { assign } from './ops/assign.js';
