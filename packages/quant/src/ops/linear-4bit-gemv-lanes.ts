/**
 * The software-adapter variant of the memory-bound 4-bit dequant-matmul (see
 * `linear-4bit-gemv.ts` for the op, the layouts and the row limit): `out [R, N] = x [R, K] (*) W`.
 *
 * On a CPU implementation of WebGPU one invocation is one SIMD lane, so a load whose
 * address differs per lane is a gather (slow) and a load whose address is the same in
 * every lane is one scalar load and a broadcast (cheap). Here lane `t` of a workgroup of
 * 64 owns output column `n` and all lanes walk the same k, so every activation load
 * `x[r, k]` is uniform; a lane's own packed words are its only gathers (one per 8
 * weights in the forward layout `W[n, k]`, where 8 consecutive k share a word), the
 * block's absmax is decoded only when a lane enters a new block, and the 16 code values
 * sit in registers (`WGSL_DECODE4`), so nothing goes through workgroup memory and no
 * barrier is needed. Each lane keeps the R row sums of its column.
 * f32 activations only (f16 compute keeps the split kernel).
 */
import type { Tensor } from '@webpeft/tensor';
import { Uniforms, type WebGpuKernelContext, program, rowGrid } from '@webpeft/tensor/kernel';
import { WGSL_DECODE4, wgslByteAt } from '../webgpu/wgsl-codes.js';
import type { Linear4bitAttrs } from './linear-4bit-op.js';

const WG = 64;

let lanesSubgroupsAllowed = true;

/** Lets the lanes kernel broadcast activations with subgroup operations where the adapter has them (default true); tests turn it off. */
export function setLinear4bitLanesSubgroups(allowed: boolean): void {
  lanesSubgroupsAllowed = allowed;
}

interface LanesVariant {
  grad: boolean;
  nested: boolean;
  bias: boolean;
  /** Forward with K % 8 == 0 and blocksize % 8 == 0: every 8 consecutive k of a column are one word in one block. */
  aligned: boolean;
  /** Aligned with subgroups of >= 8 lanes: lane j of each 8 loads x[r, k + j], the others take it by broadcast. */
  sg: boolean;
  /** Row sums per lane: a power of two >= R. */
  rb: number;
}

function source(v: LanesVariant, u: Uniforms): string {
  const weights = v.nested
    ? ['@group(0) @binding(1) var<storage, read> packed: array<u32>;', '@group(0) @binding(2) var<storage, read> code: array<f32>;', '@group(0) @binding(3) var<storage, read> qabsmax: array<u32>;', '@group(0) @binding(4) var<storage, read> dyn: array<f32>;', '@group(0) @binding(5) var<storage, read> absmax2: array<f32>;', '@group(0) @binding(6) var<storage, read> offset: array<f32>;']
    : ['@group(0) @binding(1) var<storage, read> packed: array<u32>;', '@group(0) @binding(2) var<storage, read> code: array<f32>;', '@group(0) @binding(3) var<storage, read> absmax: array<f32>;'];
  let b = 1 + weights.length;
  const biasDecl = v.bias ? `@group(0) @binding(${b++}) var<storage, read> bias: array<f32>;` : '';
  const outDecl = `@group(0) @binding(${b++}) var<storage, read_write> out: array<f32>;`;
  const absmaxFn = v.nested
    ? `${wgslByteAt('qabsmax')}
fn block_absmax(b: u32) -> f32 { return dyn[byte_at(b)] * absmax2[b / u.nbs] + offset[0]; }`
    : 'fn block_absmax(b: u32) -> f32 { return absmax[b]; }';
  // Aligned: x is read as vec4s along k (K % 8 == 0), 2 loads per row per word, and each
  // row's sum is kept as 4 partial sums over k mod 4 (one scalar load per weight was
  // what bounded the kernel on lavapipe). Rows past R read row R - 1 (a uniform clamp;
  // their sums are never stored).
  // The aligned steps' shared start: lane col's packed word at k, its 8 weights in two vec4s.
  const wordWeights = `    let e = col * u.K + k;
    let word = packed[e >> 3u];
    let blk = e / u.bs;
    if (blk != cur) { cur = blk; am = block_absmax(blk); }
    let lo = decode_lo(word, tb) * am;
    let hi = decode_hi(word, tb) * am;
`;
  const sgStep = `${wordWeights}    for (var r = 0u; r < ${v.rb}u; r++) {
      let xj = x[min(r, rl) * u.K + k + (sgid & 7u)];
      var s = acc[r];
${Array.from({ length: 8 }, (_, c) => `      s = fma(${c < 4 ? 'lo' : 'hi'}[${c % 4}], subgroupBroadcast(xj, ${c}u), s);`).join('\n')}
      acc[r] = s;
    }`;
  const step = v.sg
    ? sgStep
    : v.aligned
    ? `${wordWeights}    for (var r = 0u; r < ${v.rb}u; r++) {
      let xo = min(r, rl) * (u.K >> 2u) + (k >> 2u);
      acc[r] = fma(hi, x[xo + 1u], fma(lo, x[xo], acc[r]));
    }`
    : `    for (var c = 0u; c < 8u; c++) {
      let kc = k + c;
      if (kc >= u.K) { break; }
      let e = ${v.grad ? 'kc * u.N + col' : 'col * u.K + kc'};
      let byte = (packed[e >> 3u] >> (((e >> 1u) & 3u) * 8u)) & 0xffu;
      let q = select(byte >> 4u, byte & 15u, (e & 1u) == 1u);
      let blk = e / u.bs;
      if (blk != cur) { cur = blk; am = block_absmax(blk); }
      let w = decode4(q, tb) * am;
      for (var r = 0u; r < ${v.rb}u; r++) { acc[r] = fma(w, x[min(r, rl) * u.K + kc], acc[r]); }
    }`;
  const sum = v.aligned && !v.sg ? '(acc[r].x + acc[r].y) + (acc[r].z + acc[r].w)' : 'acc[r]';
  const vecX = v.aligned && !v.sg;
  return `${v.sg ? 'enable subgroups;' : ''}
@group(0) @binding(0) var<storage, read> x: array<${vecX ? 'vec4<f32>' : 'f32'}>;
${weights.join('\n')}
${biasDecl}
${outDecl}
${u.declaration(b)}
${WGSL_DECODE4}
${absmaxFn}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32, @builtin(num_workgroups) nwg: vec3<u32>${v.sg ? ', @builtin(subgroup_invocation_id) sgid: u32' : ''}) {
  let n = (wid.x + wid.y * nwg.x) * ${WG}u + t;
  // Lanes past N compute column N - 1 and store nothing: control flow stays uniform.
  let col = min(n, u.N - 1u);
  let rl = u.R - 1u;
  let tb = load_code4();
  var acc: array<${vecX ? 'vec4<f32>' : 'f32'}, ${v.rb}>;
  var cur = 0xffffffffu;
  var am = 0.0;
  for (var k = 0u; k < u.K; k += 8u) {
${step}
  }
  if (n < u.N) {
    for (var r = 0u; r < u.R; r++) {
      out[r * u.N + n] = ${sum}${v.bias ? ' + bias[n]' : ''};
    }
  }
}`;
}

/**
 * `out [..., N]` (f32) for f32 `x [..., K]` with R = rows rows, on a software adapter:
 * the forward (`grad` false, optional `bias [out]`) or the input gradient, one dispatch
 * of `ceil(N / 64)` workgroups. `weight` holds the weight inputs in kernel order.
 */
export function linear4bitGemvLanes(x: Tensor, weight: readonly Tensor[], bias: Tensor | null, a: Linear4bitAttrs, grad: boolean, ctx: WebGpuKernelContext): Tensor {
  const K = grad ? a.outFeatures : a.inFeatures;
  const N = grad ? a.inFeatures : a.outFeatures;
  const rows = x.size / K;
  const out = ctx.output([...x.shape.slice(0, -1), N], 'f32', grad ? 'Linear4bitGradInput' : 'Linear4bit');
  if (out.size === 0) return out;
  // Row sums per lane: 1, 2, 4, ... (a power of two keeps the number of pipelines small).
  let rb = 1;
  while (rb < rows) rb *= 2;
  const aligned = !grad && K % 8 === 0 && a.blocksize % 8 === 0;
  const sg = aligned && lanesSubgroupsAllowed && ctx.capabilities.subgroups && (ctx.adapterInfo.subgroupMinSize ?? 0) >= 8;
  const v: LanesVariant = { grad, nested: a.nested, bias: bias !== null, aligned, sg, rb };
  const u = new Uniforms().u32('R', rows).u32('N', N).u32('K', K).u32('bs', a.blocksize).u32('nbs', Math.max(1, a.nestedBlocksize));
  const key = `quant/linear4bit/gemv-lanes/${grad ? 'dx' : 'fwd'}/${a.nested ? 'nested' : 'plain'}/${v.bias ? 'bias' : 'nobias'}/${v.aligned ? 'aligned' : 'any'}/${sg ? 'sg' : 'nosg'}/rb${rb}`;
  const inputs = bias ? [x, ...weight, bias] : [x, ...weight];
  const prog = program(key, inputs.length, 1, () => source(v, u));
  ctx.dispatch(prog, inputs, [out], u, rowGrid(Math.ceil(N / WG)));
  return out;
}
