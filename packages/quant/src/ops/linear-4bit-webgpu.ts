/**
 * WebGPU kernels of the 4-bit linear ops. Up to 64 rows of input (generation, small
 * batches; see `linear4bitGemvMaxRows`) the work is memory-bound and runs the dequant-matmul of `linear-4bit-gemv.ts`
 * (each packed weight byte read once per workgroup for all rows; no full-precision
 * weight exists). For more rows (training) the work is matmul-bound: as bitsandbytes does
 * outside its gemv kernel, the layer's weight is dequantized into a transient buffer,
 * multiplied with the tiled matmul and freed at once (never kept for backward: the input
 * gradient dequantizes again).
 */
import type { Tensor } from '@webpeft/tensor';
import { type KernelFn, type WebGpuKernelContext, registerKernel } from '@webpeft/tensor/kernel';
import { dequantize4bitWords } from '../webgpu/dequantize-4bit-words.js';
import { linear4bitGemv, linear4bitGemvMaxRows } from './linear-4bit-gemv.js';
import type { Linear4bitAttrs } from './linear-4bit-op.js';

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
    const flat = t(dequantize4bitWords(inputs.slice(1), { n, blocksize: a.blocksize, nestedBlocksize: a.nestedBlocksize, nested: a.nested, op: 'Linear4bit' }, ctx));
    const w32 = t(ctx.run('Reshape', [flat], { shape: [a.outFeatures, a.inFeatures] }));
    // f16 compute: the dequantized weight is rounded to f16 and the f16 matmul runs.
    const w = x.dtype === 'f16' ? t(ctx.run('Cast', [w32], { dtype: 'f16' })) : w32;
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
    return viaDequantized(inputs, bias, a, grad, rows, k, [...x.shape.slice(0, -1), nOut], ctx);
  };
}

/** Registers the webgpu kernels of `Linear4bit` and `Linear4bitGradInput`. */
export function registerLinear4bitWebGpuKernels(): void {
  registerKernel('Linear4bit', 'webgpu', kernel(false));
  registerKernel('Linear4bitGradInput', 'webgpu', kernel(true));
}
