/**
 * WebGPU kernels of the 4-bit linear ops. Up to 64 rows of input (generation, small
 * batches; see `linear4bitGemvMaxRows`) the work is memory-bound and runs the dequant-matmul of `linear-4bit-gemv.ts`
 * (each packed weight byte read once per workgroup for all rows; no full-precision
 * weight exists). For more rows (training) the work is matmul-bound and one of two
 * kernels runs (see {@link setLinear4bitMatmulKernel}): the tiled matmul that decodes
 * the weight tile by tile in registers (`linear-4bit-tiled.ts`, no transient), or, as
 * bitsandbytes does outside its gemv kernel, the layer's weight dequantized into a
 * transient buffer, multiplied with the plain matmul and freed at once (never kept for
 * backward: the input gradient dequantizes again).
 */
import type { Tensor } from '@webpeft/tensor';
import { type KernelFn, type WebGpuKernelContext, registerKernel } from '@webpeft/tensor/kernel';
import { dequantize4bitWords } from '../webgpu/dequantize-4bit-words.js';
import { linear4bitGemv, linear4bitGemvMaxRows } from './linear-4bit-gemv.js';
import type { Linear4bitAttrs } from './linear-4bit-op.js';
import { linear4bitTiled } from './linear-4bit-tiled.js';

/** The matmul-bound 4-bit kernel: per adapter (`'auto'`), the tile-by-tile decode (`'tiled'`) or the transient weight (`'dequantize'`). */
export type Linear4bitMatmulKernel = 'auto' | 'tiled' | 'dequantize';

let matmulKernel: Linear4bitMatmulKernel = 'auto';

/**
 * Picks the kernel of `Linear4bit` / `Linear4bitGradInput` for inputs the memory-bound
 * kernel does not take (more rows than `linear4bitGemvMaxRows`, f16 compute):
 * - `'tiled'`: the register-tiled matmul decoding the packed weight tile by tile
 *   (`linear-4bit-tiled.ts`); no transient weight, so the peak of a `[rows, in] x [out, in]^T`
 *   product drops by the `out * in * 4` bytes (`* 2` for f16) of the dequantized weight;
 * - `'dequantize'`: the weight dequantized into a transient buffer (f32, or f16 for f16 compute), then the plain matmul;
 * - `'auto'` (default): {@link linear4bitMatmulKernelFor}.
 * Both give the same values up to the matmul's summation order (f16: the weight is
 * rounded to f16 before the product in both).
 */
export function setLinear4bitMatmulKernel(kernel: Linear4bitMatmulKernel): void {
  if (kernel !== 'auto' && kernel !== 'tiled' && kernel !== 'dequantize') {
    throw new RangeError(`setLinear4bitMatmulKernel: kernel must be 'auto', 'tiled' or 'dequantize', got ${String(kernel)}`);
  }
  matmulKernel = kernel;
}

/**
 * The matmul-bound kernel that runs on `ctx`'s adapter: the forced one, else (`'auto'`)
 * the measured faster one, which is `'dequantize'` on every adapter measured so far.
 * On lavapipe (2 cores, GPT-2 shapes, 512 rows; 4096 x 4096 at 128 rows) the tiled
 * kernel's forward took about as long as the transient path and its input gradient
 * 1.2-1.3x longer: every thread decodes the weights of its tile, so the weight is
 * decoded rows / 8 times instead of once (16 rows per thread broke even only with a
 * 7-8 s pipeline compile); SwiftShader's compiler is slow on these shaders; hardware
 * GPUs are not measured yet (their plain matmul takes the workgroup-memory tile, which
 * the tiled kernel does not). `'tiled'` trades that time for the transient's memory.
 */
export function linear4bitMatmulKernelFor(_ctx: WebGpuKernelContext): 'tiled' | 'dequantize' {
  return matmulKernel === 'auto' ? 'dequantize' : matmulKernel;
}

/**
 * `x [rows, k]` times the transient dequantized weight `[out, in]` (transposed for the
 * forward), plus `bias`, composed of the codec and matmul kernels; every transient is freed here.
 */
function viaDequantized(inputs: readonly Tensor[], bias: Tensor | null, a: Linear4bitAttrs, grad: boolean, rows: number, k: number, outShape: number[], ctx: WebGpuKernelContext): Tensor {
  const x = inputs[0];
  const n = a.inFeatures * a.outFeatures;
  const transients: Tensor[] = [];
  const t = (v: Tensor) => (transients.push(v), v);
  try {
    // One dispatch also for double quantization (the block's absmax decoded in the kernel),
    // where composing the codec kernels takes three (DequantizeBlockwise, the offset Add, Dequantize4bit).
    // f16 compute: the kernel rounds the decoded weight to f16 itself (no f32 transient, no Cast), then the f16 matmul.
    const dtype = x.dtype === 'f16' ? 'f16' : 'f32';
    const o = { n, dtype, blocksize: a.blocksize, nestedBlocksize: a.nestedBlocksize, nested: a.nested, op: 'Linear4bit' } as const;
    const flat = t(dequantize4bitWords(inputs.slice(1), o, ctx));
    const w = t(ctx.run('Reshape', [flat], { shape: [a.outFeatures, a.inFeatures] }));
    const x2 = t(ctx.run('Reshape', [x], { shape: [rows, k] }));
    // A bias is added in the matmul's store (MatMulAdd's bias row).
    const y2 = t(bias ? ctx.run('MatMulAdd', [x2, w, bias], { transposeA: false, transposeB: !grad, alpha: 1 }) : ctx.run('MatMul', [x2, w], { transposeA: false, transposeB: !grad }));
    return ctx.run('Reshape', [y2], { shape: outShape });
  } finally {
    for (const v of transients) v.dispose();
  }
}

function kernel(grad: boolean): KernelFn<'Linear4bit' | 'Linear4bitGradInput', 'webgpu'> {
  return (allInputs, a, ctx) => {
    const bias = a.bias ? allInputs[allInputs.length - 1] : null;
    const inputs = bias ? allInputs.slice(0, -1) : allInputs;
    const x = inputs[0];
    const k = grad ? a.outFeatures : a.inFeatures;
    const nOut = grad ? a.inFeatures : a.outFeatures;
    const rows = x.size / k;
    // f16 activations take the dequantize-then-f16-matmul path: the kernel's f16 variant was
    // 3 f16 ulps from the cpu reference on lavapipe (unexplained), so it is not used yet.
    if (rows <= linear4bitGemvMaxRows(ctx, grad) && x.dtype === 'f32') return linear4bitGemv(x, inputs.slice(1), bias, a, grad, ctx);
    if (linear4bitMatmulKernelFor(ctx) === 'tiled') return linear4bitTiled(x, inputs.slice(1), bias, a, grad, ctx);
    return viaDequantized(inputs, bias, a, grad, rows, k, [...x.shape.slice(0, -1), nOut], ctx);
  };
}

/** Registers the webgpu kernels of `Linear4bit` and `Linear4bitGradInput`. */
export function registerLinear4bitWebGpuKernels(): void {
  registerKernel('Linear4bit', 'webgpu', kernel(false));
  registerKernel('Linear4bitGradInput', 'webgpu', kernel(true));
}
