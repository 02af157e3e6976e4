/**
 * The word-at-a-time 4-bit dequantize behind `Dequantize4bit` and `Linear4bit`'s transient
 * weight: `out [n] (f32) = code[q_e] * absmax(e / blocksize)`, one invocation per packed
 * u32 (8 elements). Decoding one element per invocation cost five dependent per-lane
 * gathers per element on a software adapter (~24 ns per element on lavapipe); here an
 * invocation reads one word, decodes its block's absmax once (every valid 4-bit
 * blocksize is a multiple of 8, so a word lies in one block), picks the 8 code values
 * from registers (`WGSL_DECODE4`) and stores two `vec4`s.
 */
import type { Tensor } from '@webpeft/tensor';
import { Uniforms, type WebGpuKernelContext, grid, program } from '@webpeft/tensor/kernel';
import { WGSL_DECODE4, wgslByteAt } from './wgsl-codes.js';

const WG = 64;

/** Shape of the absmax inputs and of the result. */
export interface Dequantize4bitWordsOptions {
  /** Elements to decode (the result is f32 `[n]`). */
  n: number;
  blocksize: number;
  /** Blocksize of the 8-bit absmax codes when `nested`; ignored otherwise. */
  nestedBlocksize: number;
  /** Double quantization: the absmax is `dyn[qabsmax byte] * absmax2[b / nestedBlocksize] + offset`. */
  nested: boolean;
  /** Op named as the result's producer. */
  op: string;
}

/**
 * f32 `[n]` from `inputs`: u32 `packed [ceil(n / 8)]`, f32 `code [16]`, then either f32
 * `absmax [nb]` or (nested) u32 `qabsmax [ceil(nb / 4)]`, f32 `dyn [256]`, f32
 * `absmax2 [ceil(nb / nestedBlocksize)]`, f32 `offset [1]`; `nb = ceil(n / blocksize)`.
 */
export function dequantize4bitWords(inputs: readonly Tensor[], o: Dequantize4bitWordsOptions, ctx: WebGpuKernelContext): Tensor {
  const out = ctx.output([o.n], 'f32', o.op);
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
  if (vec) {
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
  const key = `quant/dequantize4bit-words/${o.nested ? 'nested' : 'plain'}/${vec ? 'vec4' : 'tail'}/${aligned ? 'aligned' : 'any'}`;
  const prog = program(key, inputs.length, 1, () => `
@group(0) @binding(0) var<storage, read> packed: array<u32>;
@group(0) @binding(1) var<storage, read> code: array<f32>;
${absmaxDecl.join('\n')}
@group(0) @binding(${ob}) var<storage, read_write> out: array<${vec ? 'vec4<f32>' : 'f32'}>;
${u.declaration(ob + 1)}
${WGSL_DECODE4}
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
