/**
 * WebGPU kernels of the blockwise codec ops (declared in `ops/codec-ops.ts`). Each
 * repeats the host loops of `cpu-codecs.ts` operation for operation (float32
 * reciprocal, strict pivot tests, `dQuantize<0>`'s search), so both backends produce
 * the same bytes. Packed data lives in u32 words whose little-endian bytes are the
 * bitsandbytes byte stream.
 */
import { Uniforms, elementMain, grid, program, registerKernel, storageBindings } from '@webpeft/tensor/kernel';
import type {} from '../ops/codec-ops.js';
import { MEAN_LANES } from '../cpu-codecs.js';
import { dequantize4bitWords } from './dequantize-4bit-words.js';
import { WGSL_CODE4, WGSL_CODE8, WGSL_FINITE, wgslByteAt } from './wgsl-codes.js';

const WG = 64;

/** Registers the webgpu kernels of the codec ops. */
export function registerCodecWebGpuKernels(): void {
  registerKernel('BlockAbsmax', 'webgpu', ([x], { blocksize }, ctx) => {
    const n = x.size;
    const nb = Math.ceil(n / blocksize);
    const absmax = ctx.output([nb], 'f32', 'BlockAbsmax');
    const u = new Uniforms().u32('n', n).u32('bs', blocksize).u32('nb', nb);
    const prog = program('quant/absmax', 1, 1, () => `
${storageBindings([['x', 'f32']], [['absmax', 'f32']])}
${u.declaration(2)}
${elementMain(WG, 'u.nb')}
  let start = i * u.bs;
  let end = min(u.n, start + u.bs);
  var m = 0.0;
  for (var e = start; e < end; e++) { m = max(m, abs(x[e])); }
  absmax[i] = m;
}`);
    ctx.dispatch(prog, [x], [absmax], u, grid(nb, WG));
    return absmax;
  });

  registerKernel('NonFiniteBlock', 'webgpu', ([x], { blocksize }, ctx) => {
    const n = x.size;
    const nb = Math.ceil(n / blocksize);
    const status = ctx.run('Fill', [], { shape: [1], value: 0, dtype: 'u32' });
    const u = new Uniforms().u32('n', n).u32('bs', blocksize).u32('nb', nb);
    const prog = program('quant/non-finite-block', 1, 1, () => `${WGSL_FINITE}
${storageBindings([['x', 'f32']], [['status', 'atomic<u32>']])}
${u.declaration(2)}
${elementMain(WG, 'u.nb')}
  let start = i * u.bs;
  let end = min(u.n, start + u.bs);
  var finite = true;
  for (var e = start; e < end; e++) { finite = finite && is_finite_bits(x[e]); }
  if (!finite) { atomicMax(&status[0], 0xffffffffu - i); }
}`);
    ctx.dispatch(prog, [x], [status], u, grid(nb, WG));
    return status;
  });

  registerKernel('Quantize4bit', 'webgpu', ([x, absmax], { blocksize, quantType }, ctx) => {
    const n = x.size;
    const words = Math.ceil(n / 8);
    const packed = ctx.output([words], 'u32', 'Quantize4bit');
    const u = new Uniforms().u32('n', n).u32('bs', blocksize).u32('words', words).u32('nf4', quantType === 'nf4' ? 1 : 0);
    const prog = program('quant/quantize4bit', 2, 1, () => `${WGSL_CODE4}
${storageBindings([['x', 'f32'], ['absmax', 'f32']], [['packed', 'u32']])}
${u.declaration(3)}
${elementMain(WG, 'u.words')}
  var word = 0u;
  // Elements past n + (n & 1) belong to no byte of the stream and stay 0.
  let limit = u.n + (u.n & 1u);
  for (var k = 0u; k < 8u; k++) {
    let e = i * 8u + k;
    if (e >= limit) { break; }
    let am = absmax[min(e, u.n - 1u) / u.bs];
    // 1/0 * 0 is NaN on CUDA, which takes code 0; WGSL leaves inf/NaN indeterminate, so say it.
    let zero = am == 0.0;
    let r = 1.0 / select(am, 1.0, zero);
    let v = select(0.0, x[min(e, u.n - 1u)], e < u.n);
    let q = select(code4(v * r, u.nf4 == 1u), 0u, zero);
    let shift = ((k >> 1u) * 8u) + select(4u, 0u, (k & 1u) == 1u);
    word = word | (q << shift);
  }
  packed[i] = word;
}`);
    ctx.dispatch(prog, [x, absmax], [packed], u, grid(words, WG));
    return packed;
  });

  // Word-at-a-time with register-held codes (see dequantize-4bit-words.ts); same values as the cpu codec.
  registerKernel('Dequantize4bit', 'webgpu', ([packed, absmax, code], { blocksize, n, dtype }, ctx) =>
    dequantize4bitWords([packed, code, absmax], { n, dtype, blocksize, nestedBlocksize: 0, nested: false, op: 'Dequantize4bit' }, ctx),
  );

  registerKernel('QuantizeBlockwise', 'webgpu', ([x, absmax, code], { blocksize }, ctx) => {
    const n = x.size;
    const words = Math.ceil(n / 4);
    const out = ctx.output([words], 'u32', 'QuantizeBlockwise');
    const u = new Uniforms().u32('n', n).u32('bs', blocksize).u32('words', words);
    const prog = program('quant/quantize8bit', 3, 1, () => `
${storageBindings([['x', 'f32'], ['absmax', 'f32'], ['code', 'f32']], [['out', 'u32']])}
${u.declaration(4)}
${WGSL_CODE8}
${elementMain(WG, 'u.words')}
  var word = 0u;
  for (var k = 0u; k < 4u; k++) {
    let e = i * 4u + k;
    if (e >= u.n) { break; }
    let am = absmax[e / u.bs];
    let zero = am == 0.0;
    let r = 1.0 / select(am, 1.0, zero);
    let q = select(code8(x[e] * r), 0u, zero);
    word = word | (q << (k * 8u));
  }
  out[i] = word;
}`);
    ctx.dispatch(prog, [x, absmax, code], [out], u, grid(words, WG));
    return out;
  });

  registerKernel('DequantizeBlockwise', 'webgpu', ([codes, absmax, code], { blocksize, n }, ctx) => {
    const out = ctx.output([n], 'f32', 'DequantizeBlockwise');
    const u = new Uniforms().u32('n', n).u32('bs', blocksize);
    const prog = program('quant/dequantize8bit', 3, 1, () => `
${storageBindings([['codes', 'u32'], ['absmax', 'f32'], ['code', 'f32']], [['out', 'f32']])}
${u.declaration(4)}
${wgslByteAt('codes')}
${elementMain(WG, 'u.n')}
  out[i] = code[byte_at(i)] * absmax[i / u.bs];
}`);
    ctx.dispatch(prog, [codes, absmax, code], [out], u, grid(n, WG));
    return out;
  });

  registerKernel('FixedOrderMean', 'webgpu', ([a], _attrs, ctx) => {
    const out = ctx.output([1], 'f32', 'FixedOrderMean');
    const u = new Uniforms().u32('n', a.size);
    const prog = program('quant/mean', 1, 1, () => `
${storageBindings([['a', 'f32']], [['out', 'f32']])}
${u.declaration(2)}
var<workgroup> lanes: array<f32, ${MEAN_LANES}>;
@compute @workgroup_size(${MEAN_LANES})
fn main(@builtin(local_invocation_index) t: u32) {
  var s = 0.0;
  for (var e = t; e < u.n; e += ${MEAN_LANES}u) { s = s + a[e]; }
  lanes[t] = s;
  workgroupBarrier();
  for (var w = ${MEAN_LANES / 2}u; w >= 1u; w = w >> 1u) {
    if (t < w) { lanes[t] = lanes[t] + lanes[t + w]; }
    workgroupBarrier();
  }
  if (t == 0u) { out[0] = lanes[0] / f32(u.n); }
}`);
    ctx.dispatch(prog, [a], [out], u, [1, 1, 1]);
    return out;
  });
}
