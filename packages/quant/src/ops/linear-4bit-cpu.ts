/** cpu kernels of the 4-bit linear ops: dequantize W into a temporary, then a float64-accumulated matmul. */
import { type CpuKernelContext, type KernelFn, registerKernel } from '@webpeft/tensor/kernel';
import { type Tensor, f16BitsToF32, f32ToF16Bits } from '@webpeft/tensor';
import { dequantize4bitHost, dequantizeBlockwiseHost } from '../cpu-codecs.js';
import { hostBytes } from '../host-bytes.js';
import type { Linear4bitAttrs } from './linear-4bit-op.js';

/** W `[out, in]` as float32 values from the weight inputs (the same roundings as every backend). */
function dequantizeWeightHost(w: readonly Tensor[], a: Linear4bitAttrs, ctx: CpuKernelContext): Float32Array {
  const n = a.inFeatures * a.outFeatures;
  const nb = Math.ceil(n / a.blocksize);
  const f32 = (t: Tensor) => ctx.data(t) as Float32Array;
  let absmax: Float32Array;
  if (a.nested) {
    const [, , qabsmax, dyn, absmax2, offset] = w;
    const scaled = dequantizeBlockwiseHost(hostBytes(ctx.data(qabsmax), nb), f32(absmax2), f32(dyn), a.nestedBlocksize);
    const c = f32(offset)[0];
    absmax = scaled.map((v) => Math.fround(v + c));
  } else absmax = f32(w[2]);
  return dequantize4bitHost(hostBytes(ctx.data(w[0]), Math.ceil(n / 2)), absmax, f32(w[1]), a.blocksize, n);
}

function kernel(grad: boolean): KernelFn<'Linear4bit' | 'Linear4bitGradInput', 'cpu'> {
  return (inputs, a, ctx) => {
    const [x, ...rest] = inputs;
    const w = a.bias ? rest.slice(0, -1) : rest;
    // The bias is added to the f32 sum before the one rounding of the output (the webgpu store).
    const biasT = a.bias ? rest[rest.length - 1] : null;
    const bv = biasT ? (biasT.dtype === 'f16' ? Float32Array.from(ctx.data(biasT), f16BitsToF32) : ctx.data(biasT)) : null;
    const half = x.dtype === 'f16';
    // f16 compute (the webgpu semantics): W rounded to f16, x widened, a wide sum rounded once to f16.
    const W = half ? dequantizeWeightHost(w, a, ctx).map((v) => f16BitsToF32(f32ToF16Bits(v))) : dequantizeWeightHost(w, a, ctx);
    const k = grad ? a.outFeatures : a.inFeatures;
    const nOut = grad ? a.inFeatures : a.outFeatures;
    const rows = x.size / k;
    const out = ctx.output([...x.shape.slice(0, -1), nOut], x.dtype, grad ? 'Linear4bitGradInput' : 'Linear4bit');
    const xv = half ? Float32Array.from(ctx.data(x), f16BitsToF32) : ctx.data(x);
    const ov = ctx.data(out);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < nOut; j++) {
        let s = 0;
        // Forward: W[j, p] (row j); input gradient: W[p, j] (column j).
        for (let p = 0; p < k; p++) s += xv[r * k + p] * (grad ? W[p * a.inFeatures + j] : W[j * a.inFeatures + p]);
        if (bv) s = half ? Math.fround(s) + bv[j] : s + bv[j];
        ov[r * nOut + j] = half ? f32ToF16Bits(Math.fround(s)) : s;
      }
    }
    return out;
  };
}

/** Registers the cpu kernels of `Linear4bit` and `Linear4bitGradInput`. */
export function registerLinear4bitCpuKernels(): void {
  registerKernel('Linear4bit', 'cpu', kernel(false));
  registerKernel('Linear4bitGradInput', 'cpu', kernel(true));
}
