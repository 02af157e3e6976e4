/**
 * WebGPU kernels of the 4-bit linear ops. For a few rows of input (generation: one
 * token per sequence) one thread per output element walks the packed nibbles of its
 * weight row (forward) or column (input gradient), dequantizing `code[q] * absmax` on
 * the fly, so no full-precision weight exists. For many rows (training) the work is
 * matmul-bound: as bitsandbytes does outside its gemv kernel, the layer's weight is
 * dequantized into a transient buffer, multiplied with the tiled matmul and freed at
 * once (never kept for backward: the input gradient dequantizes again).
 */
import {
  type Backend,
  type KernelFn,
  type Tensor,
  Uniforms,
  type WebGpuBackend,
  _engine,
  elementMain,
  grid,
  matmul,
  noGrad,
  program,
  registerKernel,
  reshape,
  runKernel,
  storageBindings,
} from '@webpeft/tensor';
import { dequantize4bitRaw, restoreAbsmax } from '../blockwise.js';
import { wgslByteAt, wgslNibble } from '../webgpu/wgsl-codes.js';
import { LINEAR4BIT_GRAD_OP, LINEAR4BIT_OP, type Linear4bitAttrs } from './linear-4bit.js';

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

/** `x [rows, k]` times the transient dequantized weight `[out, in]` (transposed for the forward). */
function viaDequantized(inputs: readonly Tensor[], a: Linear4bitAttrs, grad: boolean, rows: number, k: number, outShape: number[]): Tensor {
  return noGrad(() => {
    const [x, packed, code] = inputs;
    const n = a.inFeatures * a.outFeatures;
    const absmax = a.nested
      ? restoreAbsmax({ qabsmax: inputs[3], code: inputs[4], absmax2: inputs[5], offset: inputs[6], codeShared: true, n: Math.ceil(n / a.blocksize), blocksize: a.nestedBlocksize })
      : inputs[3];
    const flat = dequantize4bitRaw(packed, absmax, code, a.blocksize, n);
    if (a.nested) absmax.dispose();
    const w = reshape(flat, [a.outFeatures, a.inFeatures]);
    flat.dispose();
    const x2 = reshape(x, [rows, k]);
    const y2 = matmul(x2, w, { transposeB: !grad });
    for (const t of [w, x2]) t.dispose();
    const y = reshape(y2, outShape);
    y2.dispose();
    return y;
  });
}

function kernel(grad: boolean): KernelFn {
  return (inputs: readonly Tensor[], attrs: unknown, backend: Backend): Tensor => {
    const a = attrs as Linear4bitAttrs;
    const x = inputs[0];
    const k = grad ? a.outFeatures : a.inFeatures;
    const nOut = grad ? a.inFeatures : a.outFeatures;
    const rows = x.size / k;
    if (rows > LINEAR4BIT_FUSED_MAX_ROWS) return viaDequantized(inputs, a, grad, rows, k, [...x.shape.slice(0, -1), nOut]);
    const out = _engine.makeTensor(backend, [...x.shape.slice(0, -1), nOut], 'f32', grad ? 'linear4bitGradInput' : 'linear4bit');
    const total = rows * nOut;
    if (total === 0) return out;
    const u = new Uniforms().u32('total', total).u32('inF', a.inFeatures).u32('outF', a.outFeatures).u32('bs', a.blocksize).u32('nbs', Math.max(1, a.nestedBlocksize));
    const prog = program(`quant/linear4bit/${grad ? 'dx' : 'fwd'}/${a.nested ? 'nested' : 'plain'}`, inputs.length, 1, () => source(grad, a.nested, u));
    runKernel(backend as WebGpuBackend, prog, inputs, [out], u, grid(total, WG));
    return out;
  };
}

/** Registers the webgpu kernels of `Linear4bit` and `Linear4bitGradInput`. */
export function registerLinear4bitWebGpuKernels(): void {
  registerKernel(LINEAR4BIT_OP, 'webgpu', kernel(false));
  registerKernel(LINEAR4BIT_GRAD_OP, 'webgpu', kernel(true));
}
