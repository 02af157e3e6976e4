/**
 * cpu kernels of the blockwise codec ops (declared in `ops/codec-ops.ts`): the host
 * loops of `cpu-codecs.ts` over the tensors' host arrays.
 */
import { f32ToF16Bits } from '@webpeft/tensor';
import { registerKernel } from '@webpeft/tensor/kernel';
import type {} from '../ops/codec-ops.js';
import { blockAbsmax, codes8bitHost, dequantize4bitHost, dequantizeBlockwiseHost, firstNonFiniteBlock, fixedOrderMean, pack4bitHost } from '../cpu-codecs.js';
import { hostBytes } from '../host-bytes.js';

/** Registers the cpu kernels of the codec ops. */
export function registerCodecCpuKernels(): void {
  registerKernel('BlockAbsmax', 'cpu', ([x], { blocksize }, ctx) => {
    const out = ctx.output([Math.ceil(x.size / blocksize)], 'f32', 'BlockAbsmax');
    (ctx.data(out) as Float32Array).set(blockAbsmax(ctx.data(x) as Float32Array, blocksize));
    return out;
  });
  registerKernel('NonFiniteBlock', 'cpu', ([x], { blocksize }, ctx) => {
    const out = ctx.output([1], 'u32', 'NonFiniteBlock');
    const b = firstNonFiniteBlock(ctx.data(x) as Float32Array, blocksize);
    ctx.data(out)[0] = b < 0 ? 0 : 0xffffffff - b;
    return out;
  });
  registerKernel('Quantize4bit', 'cpu', ([x, absmax], { blocksize, quantType }, ctx) => {
    const out = ctx.output([Math.ceil(x.size / 8)], 'u32', 'Quantize4bit');
    const words = ctx.data(out);
    words.fill(0);
    pack4bitHost(ctx.data(x) as Float32Array, ctx.data(absmax) as Float32Array, blocksize, quantType, hostBytes(words, Math.ceil(x.size / 2)));
    return out;
  });
  registerKernel('QuantizeBlockwise', 'cpu', ([x, absmax, code], { blocksize }, ctx) => {
    const out = ctx.output([Math.ceil(x.size / 4)], 'u32', 'QuantizeBlockwise');
    const words = ctx.data(out);
    words.fill(0);
    codes8bitHost(ctx.data(x) as Float32Array, ctx.data(absmax) as Float32Array, ctx.data(code) as Float32Array, blocksize, hostBytes(words, x.size));
    return out;
  });
  registerKernel('Dequantize4bit', 'cpu', ([packed, absmax, code], { blocksize, n, dtype }, ctx) => {
    const out = ctx.output([n], dtype ?? 'f32', 'Dequantize4bit');
    const bytes = hostBytes(ctx.data(packed), Math.ceil(n / 2));
    const values = dequantize4bitHost(bytes, ctx.data(absmax) as Float32Array, ctx.data(code) as Float32Array, blocksize, n);
    // f16: each f32 value rounded once (the webgpu kernel's semantics).
    if (dtype === 'f16') (ctx.data(out) as Uint16Array).set(Uint16Array.from(values, f32ToF16Bits));
    else (ctx.data(out) as Float32Array).set(values);
    return out;
  });
  registerKernel('DequantizeBlockwise', 'cpu', ([codes, absmax, code], { blocksize, n }, ctx) => {
    const out = ctx.output([n], 'f32', 'DequantizeBlockwise');
    const bytes = hostBytes(ctx.data(codes), n);
    (ctx.data(out) as Float32Array).set(dequantizeBlockwiseHost(bytes, ctx.data(absmax) as Float32Array, ctx.data(code) as Float32Array, blocksize));
    return out;
  });
  registerKernel('FixedOrderMean', 'cpu', ([a], _attrs, ctx) => {
    const out = ctx.output([1], 'f32', 'FixedOrderMean');
    ctx.data(out)[0] = fixedOrderMean(ctx.data(a) as Float32Array);
    return out;
  });
}
