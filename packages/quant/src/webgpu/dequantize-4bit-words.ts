/**
 * The word-at-a-time 4-bit dequantize behind `Dequantize4bit` and `Linear4bit`'s transient
 * weight: `out [n] (f32) = code[q_e] * absmax(e / blocksize)`, one invocation per packed
 * u32 (8 elements). Decoding one element per invocation cost five dependent per-lane
 * gathers per element on a software adapter (~24 ns per element on lavapipe); here an
 * invocation reads one word, decodes its block's absmax once (every valid 4-bit
 * blocksize is a multiple of 8, so a word lies in one block), picks the 8 code values
 * from registers (`WGSL_DECODE4`) and stores two `vec4`s. For f16 compute it stores f16
 * directly (each value decoded in f32 as for f32, then rounded once to nearest even with
 * integer operations, `WGSL_F16_BITS`), two halves per u32 word: the f16 matmul gets its
 * weight without an f32 transient (twice the f16 bytes) and a `Cast` dispatch, and the
 * shader needs no `enable f16`.
 */
import { DTypeError, type Tensor } from '@webpeft/tensor';
import { Uniforms, type WebGpuKernelContext, grid, program } from '@webpeft/tensor/kernel';
import { WGSL_DECODE4, wgslByteAt } from './wgsl-codes.js';
import { WGSL_F16_BITS } from './wgsl-f16.js';

const WG = 64;

/** Shape of the absmax inputs and of the result. */
export interface Dequantize4bitWordsOptions {
  /** Elements to decode (the result is `[n]`). */
  n: number;
  /** The result's dtype (default f32); f16 is the f32 decode rounded to nearest even, as the cpu reference's `f32ToF16Bits`. */
  dtype?: 'f32' | 'f16';
  blocksize: number;
  /** Blocksize of the 8-bit absmax codes when `nested`; ignored otherwise. */
  nestedBlocksize: number;
  /** Double quantization: the absmax is `dyn[qabsmax byte] * absmax2[b / nestedBlocksize] + offset`. */
  nested: boolean;
  /** Op named as the result's producer. */
  op: string;
}

/**
 * `[n]` in `o.dtype` (f32 by default) from `inputs`: u32 `packed [ceil(n / 8)]`, f32 `code [16]`, then either f32
 * `absmax [nb]` or (nested) u32 `qabsmax [ceil(nb / 4)]`, f32 `dyn [256]`, f32
 * `absmax2 [ceil(nb / nestedBlocksize)]`, f32 `offset [1]`; `nb = ceil(n / blocksize)`.
 */
export function dequantize4bitWords(inputs: readonly Tensor[], o: Dequantize4bitWordsOptions, ctx: WebGpuKernelContext): Tensor {
  const half = o.dtype === 'f16';
  if (o.dtype !== undefined && o.dtype !== 'f32' && !half) throw new DTypeError(`${o.op}: the 4-bit dequantize writes f32 or f16, got ${String(o.dtype)}`);
  if (half && !ctx.capabilities.f16) throw new DTypeError(`${o.op}: an f16 dequantized weight needs a WebGPU adapter with the 'shader-f16' feature, which this adapter lacks (use f32)`);
  const out = ctx.output([o.n], half ? 'f16' : 'f32', o.op);
  if (o.n === 0) return out;
  const words = Math.ceil(o.n / 8);
  // Whole words only: the result binds as vec4s. A word may straddle blocks only for a
  // blocksize that no 4-bit state has (the raw codec op takes any), decoded per element.
  const aligned = o.blocksize % 8 === 0;
  const vec = aligned && o.n % 8 === 0;
  const u = new Uniforms().u32('n', o.n).u32('words', words).u32('bs', o.blocksize).u32('nbs', Math.max(1, o.nestedBlocksize));
  const absmaxDecl = o.nested
    ? ['@group(0) @binding(2) var<storage, read> qabsmax: array<u32>;', '@group(0) @binding(3) var<storage, read> dyn: array<f32>;', '@group(0) @binding(4) var<storage, read> absmax2: array<f32>;', '@group(0) @binding(5) var<storage, read> offset: array<f32>;']
    : ['@group(0) @binding(2) var<storage, read> absmax: array<f32>;'];
  const ob = 2 + absmaxDecl.length;
  const absmaxFn = o.nested
    ? `${wgslByteAt('qabsmax')}
fn block_absmax(b: u32) -> f32 { return dyn[byte_at(b)] * absmax2[b / u.nbs] + offset[0]; }`
    : 'fn block_absmax(b: u32) -> f32 { return absmax[b]; }';
  let body: string;
  if (half && vec) {
    // Elements 8i .. 8i + 7 are the halves of words 4i .. 4i + 3 (the even element low).
    body = `  let am = block_absmax((i * 8u) / u.bs);
  let lo = decode_lo(w, t) * am;
  let hi = decode_hi(w, t) * am;
  out[i] = vec4<u32>(pack_f16x2(lo.x, lo.y), pack_f16x2(lo.z, lo.w), pack_f16x2(hi.x, hi.y), pack_f16x2(hi.z, hi.w));`;
  } else if (half) {
    // Words 4i .. 4i + 3 are this invocation's alone; the half past an odd n is written 0.
    const am = aligned ? 'let am = block_absmax((i * 8u) / u.bs);' : '';
    body = `  ${am}
  let lo = decode_lo(w, t);
  let hi = decode_hi(w, t);
  for (var c = 0u; c < 8u; c += 2u) {
    let e = i * 8u + c;
    if (e >= u.n) { break; }
    ${aligned ? 'let am0 = am; let am1 = am;' : 'let am0 = block_absmax(e / u.bs); let am1 = block_absmax(min(e + 1u, u.n - 1u) / u.bs);'}
    let v0 = select(hi[c & 3u], lo[c & 3u], c < 4u) * am0;
    let v1 = select(0.0, select(hi[(c + 1u) & 3u], lo[(c + 1u) & 3u], c < 4u) * am1, e + 1u < u.n);
    out[e >> 1u] = pack_f16x2(v0, v1);
  }`;
  } else if (vec) {
    body = `  let am = block_absmax((i * 8u) / u.bs);
  out[2u * i] = decode_lo(w, t) * am;
  out[2u * i + 1u] = decode_hi(w, t) * am;`;
  } else {
    const am = aligned ? 'let am = block_absmax((i * 8u) / u.bs);' : '';
    body = `  ${am}
  let lo = decode_lo(w, t);
  let hi = decode_hi(w, t);
  for (var c = 0u; c < 8u; c++) {
    let e = i * 8u + c;
    if (e >= u.n) { break; }
    ${aligned ? '' : 'let am = block_absmax(e / u.bs);'}
    out[e] = select(hi[c & 3u], lo[c & 3u], c < 4u) * am;
  }`;
  }
  const key = `quant/dequantize4bit-words/${o.nested ? 'nested' : 'plain'}/${vec ? 'vec4' : 'tail'}/${aligned ? 'aligned' : 'any'}${half ? '/f16' : ''}`;
  const outType = half ? (vec ? 'vec4<u32>' : 'u32') : vec ? 'vec4<f32>' : 'f32';
  const prog = program(key, inputs.length, 1, () => `
@group(0) @binding(0) var<storage, read> packed: array<u32>;
@group(0) @binding(1) var<storage, read> code: array<f32>;
${absmaxDecl.join('\n')}
@group(0) @binding(${ob}) var<storage, read_write> out: array<${outType}>;
${u.declaration(ob + 1)}
${WGSL_DECODE4}
${half ? WGSL_F16_BITS : ''}
${absmaxFn}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= u.words) { return; }
  let t = load_code4();
  let w = packed[i];
${body}
}`);
  ctx.dispatch(prog, inputs, [out], u, grid(words, WG));
  return out;
}
