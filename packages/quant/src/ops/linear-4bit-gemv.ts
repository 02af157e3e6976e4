/**
 * The memory-bound 4-bit dequant-matmul of `Linear4bit` and `Linear4bitGradInput` for
 * 1-64 rows of input (generation, small batches): `out [R, N] = x [R, K] (*) W` where W
 * is the packed `[out, in]` weight (forward: `N = out`, `K = in`, element `(n, k)` of W
 * at `n * in + k`; input gradient: `N = in`, `K = out`, element at `k * in + n`).
 *
 * One workgroup of 64 threads computes 16 outputs for ALL R rows: each output is split
 * over 4 adjacent threads along K, each thread keeps the R row sums of its output in
 * registers (vec4s over rows), so every packed weight byte is read once per workgroup
 * and decoded once, whatever R is. The activations come through workgroup memory one
 * K-tile at a time (`[KT, RB]`, rows innermost, so a thread reads 4 rows in one vec4),
 * the 16-entry code table sits in workgroup memory, and a block's absmax (the nested
 * `dyn[q] * absmax2 + offset` for double quantization) is decoded once per block a
 * thread enters. The 4 partial sums of an output are reduced with
 * `subgroupShuffleXor` where the adapter has `subgroups`, else through workgroup memory.
 * The bias (forward) is added as the result is stored.
 *
 * f16 activations are widened as they enter workgroup memory, the decoded weight is
 * rounded to f16 (bitsandbytes' f16 compute: the weight is dequantized to f16), sums are
 * f32 and the output is rounded once to f16, as the cpu reference does.
 */
import type { Tensor } from '@webpeft/tensor';
import { Uniforms, type WebGpuKernelContext, program, rowGrid } from '@webpeft/tensor/kernel';
import { wgslByteAt } from '../webgpu/wgsl-codes.js';
import { linear4bitGemvLanes } from './linear-4bit-gemv-lanes.js';
import type { Linear4bitAttrs } from './linear-4bit-op.js';

/** Most rows of input the memory-bound kernel takes; more rows are matmul-bound. */
export const LINEAR4BIT_GEMV_MAX_ROWS = 64;

/**
 * Most rows it takes on a software adapter (lavapipe, SwiftShader), where the lanes
 * kernel runs: on lavapipe (one run, [R x 4096] x [4096 x 4096]^T, NF4 nested) it took
 * 160 / 257 / 619 ms at 16 / 32 / 64 rows against 276 / 484 / 801 ms for the transient
 * dequantize + matmul, so it serves as many rows as the GPU kernel.
 */
export const LINEAR4BIT_GEMV_MAX_ROWS_SOFTWARE = 64;

/**
 * The input gradient's limit on a software adapter. The lanes kernel reads the
 * transposed layout one nibble per gather (with the block's absmax per element), which
 * made a GPT-2 small QLoRA step (64 rows) slower, so `W^T` keeps the split kernel up to
 * 8 rows, as before the lanes kernel, and the transient dequantize + matmul above.
 */
export const LINEAR4BIT_GEMV_MAX_ROWS_SOFTWARE_GRAD = 8;

let maxRowsOverride: number | null = null;

/**
 * Rows up to which `Linear4bit` takes the memory-bound kernel: `null` (default) picks
 * per adapter ({@link LINEAR4BIT_GEMV_MAX_ROWS}, or {@link LINEAR4BIT_GEMV_MAX_ROWS_SOFTWARE}
 * on a software adapter). Tests set {@link LINEAR4BIT_GEMV_MAX_ROWS} to run the kernel
 * on every row bucket on lavapipe.
 */
export function setLinear4bitGemvMaxRows(rows: number | null): void {
  if (rows !== null && (!Number.isInteger(rows) || rows < 0 || rows > LINEAR4BIT_GEMV_MAX_ROWS)) {
    throw new RangeError(`setLinear4bitGemvMaxRows: rows must be an integer in [0, ${LINEAR4BIT_GEMV_MAX_ROWS}] or null, got ${rows}`);
  }
  maxRowsOverride = rows;
}

/** Which memory-bound kernel runs: per adapter (`'auto'`), or one of them (tests run both on any adapter). */
export type Linear4bitGemvKernel = 'auto' | 'split' | 'lanes';

let kernelOverride: Linear4bitGemvKernel = 'auto';

/**
 * Picks the memory-bound kernel: `'split'` (this file's, K split over 4 threads, for
 * GPUs), `'lanes'` (one lane per output, `linear-4bit-gemv-lanes.ts`, for software
 * adapters, f32 only) or `'auto'` (default: `'lanes'` on a software adapter for the f32 forward).
 */
export function setLinear4bitGemvKernel(kernel: Linear4bitGemvKernel): void {
  if (kernel !== 'auto' && kernel !== 'split' && kernel !== 'lanes') throw new RangeError(`setLinear4bitGemvKernel: kernel must be 'auto', 'split' or 'lanes', got ${String(kernel)}`);
  kernelOverride = kernel;
}

/** Rows up to which the memory-bound kernel serves a `Linear4bit` (`grad` false) or `Linear4bitGradInput` call on `ctx`'s adapter. */
export function linear4bitGemvMaxRows(ctx: WebGpuKernelContext, grad = false): number {
  if (maxRowsOverride !== null) return maxRowsOverride;
  if (!ctx.adapterKind.software) return LINEAR4BIT_GEMV_MAX_ROWS;
  return grad ? LINEAR4BIT_GEMV_MAX_ROWS_SOFTWARE_GRAD : LINEAR4BIT_GEMV_MAX_ROWS_SOFTWARE;
}

/** Threads per workgroup, outputs per workgroup, threads per output (the K split). */
const WG = 64;
const OUTS = 16;
const SPLIT = 4;
/** f32 slots of the activation tile in workgroup memory (8 KiB): KT * RB. */
const TILE = 2048;

let subgroupsAllowed = true;

/**
 * Lets the kernel use subgroup operations where the adapter has them (default true).
 * Tests turn it off to run the workgroup-memory reduction on an adapter with subgroups.
 */
export function setLinear4bitSubgroups(allowed: boolean): void {
  subgroupsAllowed = allowed;
}

/** Row bucket of R rows (a power of two: the shader's register count), and its vector width. */
function rowBucket(rows: number): { rb: number; vw: number } {
  let rb = 1;
  while (rb < rows) rb *= 2;
  return { rb, vw: Math.min(rb, 4) };
}

interface Variant {
  grad: boolean;
  nested: boolean;
  half: boolean;
  bias: boolean;
  /** Every chunk of 8 consecutive k is one u32 word in one absmax block (forward, K % 8 == 0, bs % 8 == 0). */
  aligned: boolean;
  subgroups: boolean;
  rb: number;
  vw: number;
}

function source(v: Variant, u: Uniforms): string {
  const T = v.half ? 'f16' : 'f32';
  const V = v.vw === 1 ? 'f32' : `vec${v.vw}<f32>`;
  const rv = v.rb / v.vw;
  const kt = TILE / v.rb;
  const span = kt / SPLIT;
  const weights = v.nested
    ? ['@group(0) @binding(1) var<storage, read> packed: array<u32>;', '@group(0) @binding(2) var<storage, read> code: array<f32>;', '@group(0) @binding(3) var<storage, read> qabsmax: array<u32>;', '@group(0) @binding(4) var<storage, read> dyn: array<f32>;', '@group(0) @binding(5) var<storage, read> absmax2: array<f32>;', '@group(0) @binding(6) var<storage, read> offset: array<f32>;']
    : ['@group(0) @binding(1) var<storage, read> packed: array<u32>;', '@group(0) @binding(2) var<storage, read> code: array<f32>;', '@group(0) @binding(3) var<storage, read> absmax: array<f32>;'];
  let b = 1 + weights.length;
  const biasDecl = v.bias ? `@group(0) @binding(${b++}) var<storage, read> bias: array<${T}>;` : '';
  const outDecl = `@group(0) @binding(${b++}) var<storage, read_write> out: array<${T}>;`;
  const absmaxFn = v.nested
    ? `${wgslByteAt('qabsmax')}
fn block_absmax(b: u32) -> f32 { return dyn[byte_at(b)] * absmax2[b / u.nbs] + offset[0]; }`
    : 'fn block_absmax(b: u32) -> f32 { return absmax[b]; }';
  // The decoded weight as the compute dtype sees it (f16 compute rounds it to f16).
  const wv = (q: string) => (v.half ? `f32(f16(tbl[${q}] * am))` : `tbl[${q}] * am`);
  const xv = (kk: string) => {
    if (v.vw === 1) return `xs[${kk} * ${v.rb}u + rv]`;
    const at = `${kk} * ${v.rb}u + rv * ${v.vw}u`;
    return `${V}(${Array.from({ length: v.vw }, (_, i) => `xs[${at} + ${i}u]`).join(', ')})`;
  };
  const fmaRows = (kk: string, w: string) => `      for (var rv = 0u; rv < ${rv}u; rv++) { acc[rv] = fma(${V}(${w}), ${xv(kk)}, acc[rv]); }`;
  // Loops, not unrolled source: lavapipe's compile time grows with the shader's length.
  const inner = v.aligned
    ? // One word and one absmax block per chunk of 8; element c is nibble c of the byte stream.
      `        let e = n * u.K + k;
        let word = packed[e >> 3u];
        let blk = e / u.bs;
        if (blk != cur) { cur = blk; am = block_absmax(blk); }
        for (var c = 0u; c < 8u; c++) {
          let q = (word >> ((c >> 1u) * 8u + select(4u, 0u, (c & 1u) == 1u))) & 15u;
          let w = ${wv('q')};
          let kk = kb + j + c;
${fmaRows('kk', 'w')}
        }`
    : `        for (var c = 0u; c < 8u; c++) {
          let kc = k + c;
          if (kc >= u.K) { break; }
          let e = ${v.grad ? 'kc * u.N + n' : 'n * u.K + kc'};
          let byte = (packed[e >> 3u] >> (((e >> 1u) & 3u) * 8u)) & 0xffu;
          let q = select(byte >> 4u, byte & 15u, (e & 1u) == 1u);
          let blk = e / u.bs;
          if (blk != cur) { cur = blk; am = block_absmax(blk); }
          let w = ${wv('q')};
          let kk = kb + j + c;
${fmaRows('kk', 'w')}
        }`;
  // Without subgroups the 3 other threads of an output leave their sums in the (then
  // unused) activation tile, in at most 2 passes; a barrier in a loop over the row
  // vectors made lavapipe's compile time explode.
  const passes = Math.ceil((WG - WG / SPLIT) * v.rb / TILE);
  const perPass = rv / passes;
  const wgPass = (p: number) => `  workgroupBarrier();
  if (ks != 0u) {
    for (var i = 0u; i < ${perPass}u; i++) {
${Array.from({ length: v.vw }, (_, c) => `      xs[(slot * ${perPass}u + i) * ${v.vw}u + ${c}u] = acc[${p * perPass}u + i]${v.vw === 1 ? '' : `[${c}u]`};`).join('\n')}
    }
  }
  workgroupBarrier();
  if (ks == 0u) {
    for (var i = 0u; i < ${perPass}u; i++) {
      let o = ((t / ${SPLIT}u) * ${SPLIT - 1}u) * ${perPass}u + i;
${Array.from({ length: v.vw }, (_, c) => `      acc[${p * perPass}u + i]${v.vw === 1 ? '' : `[${c}u]`} += (xs[o * ${v.vw}u + ${c}u] + xs[(o + ${perPass}u) * ${v.vw}u + ${c}u]) + xs[(o + ${2 * perPass}u) * ${v.vw}u + ${c}u];`).join('\n')}
    }
  }`;
  const reduce = v.subgroups
    ? `  for (var rv = 0u; rv < ${rv}u; rv++) {
    acc[rv] = acc[rv] + subgroupShuffleXor(acc[rv], 1u);
    acc[rv] = acc[rv] + subgroupShuffleXor(acc[rv], 2u);
  }`
    : `  let ks = t % ${SPLIT}u;
  let slot = (t / ${SPLIT}u) * ${SPLIT - 1}u + ks - 1u;
${Array.from({ length: passes }, (_, p) => wgPass(p)).join('\n')}`;
  const comp = v.vw === 1 ? 'acc[r]' : `acc[r / ${v.vw}u][r % ${v.vw}u]`;
  return `${v.half ? 'enable f16;\n' : ''}${v.subgroups ? 'enable subgroups;\n' : ''}
@group(0) @binding(0) var<storage, read> x: array<${T}>;
${weights.join('\n')}
${biasDecl}
${outDecl}
${u.declaration(b)}
${absmaxFn}
var<workgroup> tbl: array<f32, 16>;
var<workgroup> xs: array<f32, ${TILE}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  if (t < 16u) { tbl[t] = code[t]; }
  let n = (wid.x + wid.y * nwg.x) * ${OUTS}u + (t / ${SPLIT}u);
  let live = n < u.N;
  // This thread's share of every K-tile: [kb, kb + ${span}).
  let kb = (t % ${SPLIT}u) * ${span}u;
  var acc: array<${V}, ${rv}>;
  var cur = 0xffffffffu;
  var am = 0.0;
  for (var k0 = 0u; k0 < u.K; k0 += ${kt}u) {
    workgroupBarrier();
    // The tile x[:, k0 : k0 + ${kt}] as [kk, r] (rows innermost), zeros past R and K.
    for (var idx = t; idx < ${TILE}u; idx += ${WG}u) {
      let r = idx / ${kt}u;
      let kk = idx % ${kt}u;
      let k = k0 + kk;
      var xv = 0.0;
      if (r < u.R && k < u.K) { xv = f32(x[r * u.K + k]); }
      xs[kk * ${v.rb}u + r] = xv;
    }
    workgroupBarrier();
    if (live) {
      for (var j = 0u; j < ${span}u; j += 8u) {
        let k = k0 + kb + j;
        if (k >= u.K) { break; }
${inner}
      }
    }
  }
${reduce}
  if (live && (t % ${SPLIT}u) == 0u) {
    for (var r = 0u; r < u.R; r++) {
      out[r * u.N + n] = ${T}(${comp}${v.bias ? ' + f32(bias[n])' : ''});
    }
  }
}`;
}

/**
 * `out [..., N]` for `x [..., K]` with R = rows <= {@link LINEAR4BIT_GEMV_MAX_ROWS}: the
 * forward (`grad` false, optional `bias [out]`) or the input gradient, in one dispatch.
 * `weight` holds the weight inputs in kernel order (see `weightInputs`).
 */
export function linear4bitGemv(x: Tensor, weight: readonly Tensor[], bias: Tensor | null, a: Linear4bitAttrs, grad: boolean, ctx: WebGpuKernelContext): Tensor {
  const K = grad ? a.outFeatures : a.inFeatures;
  const N = grad ? a.inFeatures : a.outFeatures;
  const rows = x.size / K;
  const half = x.dtype === 'f16';
  const lanes = !half && (kernelOverride === 'lanes' || (kernelOverride === 'auto' && !grad && ctx.adapterKind.software));
  if (lanes) return linear4bitGemvLanes(x, weight, bias, a, grad, ctx);
  const out = ctx.output([...x.shape.slice(0, -1), N], x.dtype, grad ? 'Linear4bitGradInput' : 'Linear4bit');
  if (out.size === 0) return out;
  const { rb, vw } = rowBucket(rows);
  const subgroups = subgroupsAllowed && ctx.capabilities.subgroups && (ctx.adapterInfo.subgroupMinSize ?? 0) >= SPLIT;
  const v: Variant = { grad, nested: a.nested, half, bias: bias !== null, aligned: !grad && K % 8 === 0 && a.blocksize % 8 === 0, subgroups, rb, vw };
  const u = new Uniforms().u32('R', rows).u32('N', N).u32('K', K).u32('bs', a.blocksize).u32('nbs', Math.max(1, a.nestedBlocksize));
  const key = `quant/linear4bit/gemv/${grad ? 'dx' : 'fwd'}/${a.nested ? 'nested' : 'plain'}/${half ? 'f16' : 'f32'}/${v.bias ? 'bias' : 'nobias'}/${v.aligned ? 'aligned' : 'any'}/${subgroups ? 'sg' : 'wg'}/rb${rb}`;
  const inputs = bias ? [x, ...weight, bias] : [x, ...weight];
  const prog = program(key, inputs.length, 1, () => source(v, u));
  ctx.dispatch(prog, inputs, [out], u, rowGrid(Math.ceil(N / OUTS)));
  return out;
}
