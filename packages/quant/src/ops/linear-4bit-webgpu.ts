/**
 * WebGPU kernels of the 4-bit linear ops. For a few rows of input (generation: one
 * token per sequence) one thread per output element walks the packed nibbles of its
 * weight row (forward) or column (input gradient), dequantizing `code[q] * absmax` on
 * the fly, so no full-precision weight exists. For many rows (training) the work is
 * matmul-bound: as bitsandbytes does outside its gemv kernel, the layer's weight is
 * dequantized into a transient buffer, multiplied with the tiled matmul and freed at
 * once (never kept for backward: the input gradient dequantizes again).
 */
import type { Tensor } from '@webpeft/tensor';
import { type KernelFn, Uniforms, type WebGpuKernelContext, elementMain, grid, program, registerKernel, storageBindings } from '@webpeft/tensor/kernel';
import { wgslByteAt, wgslNibble } from '../webgpu/wgsl-codes.js';
import type { Linear4bitAttrs } from './linear-4bit-op.js';

const WG = 64;

function source(grad: boolean, nested: boolean, u: Uniforms): string {
  const weights: [string, string][] = nested
    ? [['packed', 'u32'], ['code', 'f32'], ['qabsmax', 'u32'], ['dyn', 'f32'], ['absmax2', 'f32'], ['offset', 'f32']]
    : [['packed', 'u32'], ['code', 'f32'], ['absmax', 'f32']];
  const nIn = 1 + weights.length;
  const absmaxFn = nested
    ? `${wgslByteAt('qabsmax')}
fn block_absmax(b: u32) -> f32 { return dyn[byte_at(b)] * absmax2[b / u.nbs] + offset[0]; }`
    : 'fn block_absmax(b: u32) -> f32 { return absmax[b]; }';
  // Forward: out[r, o] = sum_p x[r, p] W[o, p]; gradient: out[r, p] = sum_o dy[r, o] W[o, p].
  const body = grad
    ? `  let r = i / u.inF;
  let p = i % u.inF;
  var s = 0.0;
  for (var o = 0u; o < u.outF; o++) {
    let e = o * u.inF + p;
    s = s + x[r * u.outF + o] * (code[nibble(e)] * block_absmax(e / u.bs));
  }
  out[i] = s;`
    : `  let r = i / u.outF;
  let o = i % u.outF;
  var s = 0.0;
  var cur = 0xffffffffu;
  var am = 0.0;
  for (var p = 0u; p < u.inF; p++) {
    let e = o * u.inF + p;
    let b = e / u.bs;
    if (b != cur) { cur = b; am = block_absmax(b); }
    s = s + x[r * u.inF + p] * (code[nibble(e)] * am);
  }
  out[i] = s;`;
  return `
${storageBindings([['x', 'f32'], ...weights], [['out', 'f32']])}
${u.declaration(nIn + 1)}
${wgslNibble('packed')}
${absmaxFn}
${elementMain(WG, 'u.total')}
${body}
}`;
}

/** Rows of input from which dequantize-then-matmul beats the fused per-output kernel. */
export const LINEAR4BIT_FUSED_MAX_ROWS = 8;

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
    // The fused kernel reads f32 activations; f16 ones always take the dequantize-then-f16-matmul path.
    if (rows > LINEAR4BIT_FUSED_MAX_ROWS || x.dtype === 'f16') return viaDequantized(inputs, bias, a, grad, rows, k, [...x.shape.slice(0, -1), nOut], ctx);
    if (bias) {
      // A few rows: the fused kernel, then the bias (generation, not the training hot path).
      const y = kernel(grad)(inputs, { ...a, bias: false }, ctx);
      try {
        return ctx.run('Add', [y, bias], {});
      } finally {
        y.dispose();
      }
    }
    const out = ctx.output([...x.shape.slice(0, -1), nOut], 'f32', grad ? 'Linear4bitGradInput' : 'Linear4bit');
    const total = rows * nOut;
    if (total === 0) return out;
    const u = new Uniforms().u32('total', total).u32('inF', a.inFeatures).u32('outF', a.outFeatures).u32('bs', a.blocksize).u32('nbs', Math.max(1, a.nestedBlocksize));
    const prog = program(`quant/linear4bit/${grad ? 'dx' : 'fwd'}/${a.nested ? 'nested' : 'plain'}`, inputs.length, 1, () => source(grad, a.nested, u));
    ctx.dispatch(prog, inputs, [out], u, grid(total, WG));
    return out;
  };
}

/** Registers the webgpu kernels of `Linear4bit` and `Linear4bitGradInput`. */
export function registerLinear4bitWebGpuKernels(): void {
  registerKernel('Linear4bit', 'webgpu', kernel(false));
  registerKernel('Linear4bitGradInput', 'webgpu', kernel(true));
}
