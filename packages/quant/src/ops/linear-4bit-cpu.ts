/** cpu kernels of the 4-bit linear ops: dequantize W into a temporary, then a float64-accumulated matmul. */
import { type Backend, type KernelFn, type Tensor, _engine, cpuData, registerKernel } from '@webpeft/tensor';
import { dequantize4bitHost, dequantizeBlockwiseHost } from '../cpu-codecs.js';
import { cpuBytes } from '../host-bytes.js';
import { LINEAR4BIT_GRAD_OP, LINEAR4BIT_OP, type Linear4bitAttrs } from './linear-4bit.js';

/** W `[out, in]` as float32 values from the weight inputs (the same roundings as every backend). */
export function dequantizeWeightHost(w: readonly Tensor[], a: Linear4bitAttrs): Float32Array {
  const n = a.inFeatures * a.outFeatures;
  const nb = Math.ceil(n / a.blocksize);
  let absmax: Float32Array;
  if (a.nested) {
    const [, , qabsmax, dyn, absmax2, offset] = w;
    const scaled = dequantizeBlockwiseHost(cpuBytes(qabsmax, nb), cpuData(absmax2) as Float32Array, cpuData(dyn) as Float32Array, a.nestedBlocksize);
    const c = (cpuData(offset) as Float32Array)[0];
    absmax = scaled.map((v) => Math.fround(v + c));
  } else absmax = cpuData(w[2]) as Float32Array;
  return dequantize4bitHost(cpuBytes(w[0], Math.ceil(n / 2)), absmax, cpuData(w[1]) as Float32Array, a.blocksize, n);
}

function kernel(grad: boolean): KernelFn {
  return (inputs: readonly Tensor[], attrs: unknown, backend: Backend): Tensor => {
    const a = attrs as Linear4bitAttrs;
    const [x, ...w] = inputs;
    const W = dequantizeWeightHost(w, a);
    const k = grad ? a.outFeatures : a.inFeatures;
    const nOut = grad ? a.inFeatures : a.outFeatures;
    const rows = x.size / k;
    const out = _engine.makeTensor(backend, [...x.shape.slice(0, -1), nOut], x.dtype, grad ? 'linear4bitGradInput' : 'linear4bit');
    const xv = cpuData(x);
    const ov = cpuData(out);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < nOut; j++) {
        let s = 0;
        // Forward: W[j, p] (row j); input gradient: W[p, j] (column j).
        for (let p = 0; p < k; p++) s += xv[r * k + p] * (grad ? W[p * a.inFeatures + j] : W[j * a.inFeatures + p]);
        ov[r * nOut + j] = s;
      }
    }
    return out;
  };
}

/** Registers the cpu kernels of `Linear4bit` and `Linear4bitGradInput`. */
export function registerLinear4bitCpuKernels(): void {
  registerKernel(LINEAR4BIT_OP, 'cpu', kernel(false));
  registerKernel(LINEAR4BIT_GRAD_OP, 'cpu', kernel(true));
}
