/**
 * WebGPU kernels of the 4-bit linear ops. Up to 64 rows of input (generation, small
 * batches; 8 rows on a software adapter, see `linear4bitGemvMaxRows`) the work is memory-bound and runs the dequant-matmul of `linear-4bit-gemv.ts`
 * (each packed weight byte read once per workgroup for all rows; no full-precision
 * weight exists). For more rows (training) the work is matmul-bound: as bitsandbytes does
 * outside its gemv kernel, the layer's weight is dequantized into a transient buffer,
 * multiplied with the tiled matmul and freed at once (never kept for backward: the input
 * gradient dequantizes again).
 */
import type { Tensor } from '@webpeft/tensor';
import { type KernelFn, Uniforms, type WebGpuKernelContext, elementMain, grid, program, registerKernel, storageBindings } from '@webpeft/tensor/kernel';
import { wgslByteAt, wgslNibble } from '../webgpu/wgsl-codes.js';
import { linear4bitGemv, linear4bitGemvMaxRows } from './linear-4bit-gemv.js';
import type { Linear4bitAttrs } from './linear-4bit-op.js';

const WG = 64;

/**
 * The weight `[n]` in f32 from double-quantized weight inputs (`packed`, `code`,
 * `qabsmax`, `dyn`, `absmax2`, `offset`) in one dispatch: each element decodes its
 * block's absmax (`dyn[q] * absmax2 + offset`) and its nibble, where composing the codec
 * kernels takes three (`DequantizeBlockwise`, the offset `Add`, `Dequantize4bit`).
 */
function dequantizeNested(w: readonly Tensor[], a: Linear4bitAttrs, n: number, ctx: WebGpuKernelContext): Tensor {
  const out = ctx.output([n], 'f32', 'Linear4bit');
  if (n === 0) return out;
  const u = new Uniforms().u32('n', n).u32('bs', a.blocksize).u32('nbs', a.nestedBlocksize);
  const prog = program('quant/linear4bit/dequantize-nested', 6, 1, () => `
${storageBindings([['packed', 'u32'], ['code', 'f32'], ['qabsmax', 'u32'], ['dyn', 'f32'], ['absmax2', 'f32'], ['offset', 'f32']], [['out', 'f32']])}
${u.declaration(7)}
${wgslNibble('packed')}
${wgslByteAt('qabsmax')}
${elementMain(WG, 'u.n')}
  let b = i / u.bs;
  out[i] = code[nibble(i)] * (dyn[byte_at(b)] * absmax2[b / u.nbs] + offset[0]);
}`);
  ctx.dispatch(prog, w, [out], u, grid(n, WG));
  return out;
}

/**
 * `x [rows, k]` times the transient dequantized weight `[out, in]` (transposed for the
 * forward), plus `bias`, composed of the codec and matmul kernels; every transient is freed here.
 */
function viaDequantized(inputs: readonly Tensor[], bias: Tensor | null, a: Linear4bitAttrs, grad: boolean, rows: number, k: number, outShape: number[], ctx: WebGpuKernelContext): Tensor {
  const [x, packed, code] = inputs;
  const n = a.inFeatures * a.outFeatures;
  const transients: Tensor[] = [];
  const t = (v: Tensor) => (transients.push(v), v);
  try {
    const flat = t(a.nested ? dequantizeNested(inputs.slice(1), a, n, ctx) : ctx.run('Dequantize4bit', [packed, inputs[3], code], { blocksize: a.blocksize, n }));
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
    if (rows <= linear4bitGemvMaxRows(ctx) && x.dtype === 'f32') return linear4bitGemv(x, inputs.slice(1), bias, a, grad, ctx);
    return viaDequantized(inputs, bias, a, grad, rows, k, [...x.shape.slice(0, -1), nOut], ctx);
  };
}

/** Registers the webgpu kernels of `Linear4bit` and `Linear4bitGradInput`. */
export function registerLinear4bitWebGpuKernels(): void {
  registerKernel('Linear4bit', 'webgpu', kernel(false));
  registerKernel('Linear4bitGradInput', 'webgpu', kernel(true));
}
