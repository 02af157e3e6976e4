/**
 * `@webpeft/tensor/kernel`: the kernel-author API. Everything a package or a user needs
 * to add an op (declared by merging into {@link OpAttrs}), its kernels per backend, its
 * gradient and, for fused ops, a composite definition; and in-place ops (declared in
 * {@link InPlaceOps}) such as optimizer updates. Kernels receive their backend's
 * context ({@link CpuKernelContext}, {@link WebGpuKernelContext}) and need nothing else
 * of the runtime.
 *
 * @example
 * import { registerKernel, registerGradient, runOp, Uniforms, program, storageBindings, elementMain, grid } from '@webpeft/tensor/kernel';
 * declare module '@webpeft/tensor/kernel' {
 *   interface OpAttrs { Scale: { factor: number } }
 * }
 * registerKernel('Scale', 'webgpu', ([x], { factor }, ctx) => {
 *   const out = ctx.output(x.shape, 'f32');
 *   const u = new Uniforms().u32('n', x.size).f32('factor', factor);
 *   const prog = program('user/scale', 1, 1, () => `${storageBindings([['x', 'f32']], [['out', 'f32']])}
 * ${u.declaration(2)}
 * ${elementMain(64, 'u.n')}
 *   out[i] = x[i] * u.factor;
 * }`);
 *   ctx.dispatch(prog, [x], [out], u, grid(x.size, 64));
 *   return out;
 * });
 * @packageDocumentation
 */
export type { OpAttrs, OpName } from './op-names.js';
export type { KernelContext, CpuKernelContext, WebGpuKernelContext, KernelContexts, KernelContextOf, ChunkInfo } from './kernel-context.js';
export {
  registerKernel,
  registerGradient,
  registerComposite,
  registerInPlaceKernel,
  hasKernel,
  hasInPlaceKernel,
  type KernelFn,
  type KernelOptions,
  kernelTakesChunks,
  type GradientSpec,
  type GradContext,
  type GradAccumulator,
  type CompositeFn,
  type InPlaceOps,
  type InPlaceOpName,
  type InPlaceKernelFn,
  type InPlaceArgsOf,
  type InPlaceResultOf,
  type AttrsOf,
} from './registry.js';
export { runOp, runComposite, runInPlace } from './ops/run-op.js';
export type { LinearCrossEntropyBackwardArgs, LinearCrossEntropyGrads } from './ops/linear-cross-entropy-grad.js';
export type { AccumulateArgs, AccumulateRegion } from './ops/accumulate.js';
export { markBusy } from './busy.js';
export type { Backend, BackendName, BackendCapabilities } from './backend.js';
export { type KernelProgram, type ProgramOptions, program } from './backends/webgpu/program.js';
export { type AdapterKind, classifyAdapter } from './backends/webgpu/adapter-kind.js';
export { type IndexCheck, indexCheckWgsl } from './backends/webgpu/index-checks.js';
export { Uniforms, storageBindings, elementMain, grid, rowGrid, wgslType, MAX_RANK } from './backends/webgpu/wgsl.js';
export type { TileShape } from './backends/webgpu/kernels/matmul/tiled.js';
export {
  type MatmulBLoader,
  type TiledMatmulWithB,
  type TiledMatmulWithBOptions,
  tiledMatmulWithB,
  tiledMatmulUniforms,
  TILED_DEFAULT_TILE,
  TILED_WIDE_TILE,
  TILED_GUARDED_TILE,
} from './backends/webgpu/kernels/matmul/b-loader.js';
