/**
 * The matmul-bound 4-bit linear (rows above the gemv limit, training) without a
 * transient weight: the tensor package's register-tiled matmul with a B loader that
 * reads the packed words and the block's absmax (the nested `dyn[q] * absmax2 + offset`
 * for double quantization) of each 4 x 4 block and decodes it in registers
 * (`WGSL_DECODE4`, code table in `var<private>` registers, no gather).
 * `out [R, N] = x [R, K] B` with `B [K, N]` the packed `[out, in]` weight W seen as
 * `W^T` (forward: `N = out`, `K = in`, `B[p, c] = W[c, p]` at element `c * in + p`) or as
 * W (input gradient: `N = in`, `K = out`, element `p * in + c`).
 *
 * The decoded values are the dequantize kernel's (`code[q] * absmax` in f32); for f16
 * compute they are rounded to f16 with integer operations (lavapipe's f32 -> f16
 * conversion was measured off by ulps), exactly as the transient path's f16 dequantize does. Sizes,
 * blocksizes and strides are uniforms: one pipeline per layout class
 * (forward / gradient, plain / nested, f32 / f16, bias, aligned) serves every layer.
 */
import type { Tensor } from '@webpeft/tensor';
import {
  type MatmulBLoader,
  TILED_DEFAULT_TILE,
  TILED_GUARDED_TILE,
  TILED_WIDE_TILE,
  type TileShape,
  Uniforms,
  type WebGpuKernelContext,
  program,
  tiledMatmulUniforms,
  tiledMatmulWithB,
} from '@webpeft/tensor/kernel';
import { WGSL_DECODE4, wgslByteAt } from '../webgpu/wgsl-codes.js';
import { WGSL_ROUND_F16 } from '../webgpu/wgsl-f16.js';
import type { Linear4bitAttrs } from './linear-4bit-op.js';

/** Layout class of one tiled 4-bit dispatch (the pipeline key). */
interface LoaderVariant {
  grad: boolean;
  nested: boolean;
  half: boolean;
  /** m, n, k and the blocksize multiples of 4: each 4 consecutive weights along W's rows are one half of a packed word, in one absmax block. */
  aligned: boolean;
  /** Column blocks per thread (the tile's cols / 4). */
  slots: number;
}

function loader(v: LoaderVariant): MatmulBLoader {
  const names = v.nested ? (['packed', 'code', 'qabsmax', 'dyn', 'absmax2', 'offset'] as const) : (['packed', 'code', 'absmax'] as const);
  const types: Record<string, string> = { packed: 'u32', code: 'f32', qabsmax: 'u32', dyn: 'f32', absmax2: 'f32', offset: 'f32', absmax: 'f32' };
  const absmaxFn = v.nested
    ? `${wgslByteAt('qabsmax')}
fn block_absmax(b: u32) -> f32 { return dyn[byte_at(b)] * absmax2[b / u.nbs] + offset[0]; }`
    : 'fn block_absmax(b: u32) -> f32 { return absmax[b]; }';
  const r4 = (e: string) => (v.half ? `round_f16v(${e})` : e);
  const r1 = (e: string) => (v.half ? `round_f16(${e})` : e);
  // Element index of B[p, c] in W's packed stream.
  const elem = v.grad ? 'p * u.n + c' : 'c * u.k + p';
  let tile: string;
  if (v.aligned) {
    // One absmax per 4 weights; a column block keeps the absmax of its 4 W rows (forward)
    // or the thread keeps those of its 4 W rows (gradient: a thread's column blocks share
    // rows) and decodes again only on entering a new block: the nested absmax is three
    // gathers, which bounded the kernel on lavapipe when decoded per 4 weights.
    const slot = v.grad ? '0u' : 'j';
    const es = v.grad ? 'vec4<u32>(p, p + 1u, p + 2u, p + 3u) * u.n + min(c, u.n - 4u)' : 'min(vec4<u32>(c, c + 1u, c + 2u, c + 3u), vec4<u32>(u.n - 1u)) * u.k + p';
    const cols = [0, 1, 2, 3].map((i) => r4(`w4(e[${i}]) * am[${i}]`)).join(', ');
    // Forward: column i of B's block is W's row c + i over k p .. p + 3, read along k and transposed.
    tile = `var<private> am_blk: array<vec4<u32>, ${v.grad ? 1 : v.slots}>;
var<private> am_val: array<vec4<f32>, ${v.grad ? 1 : v.slots}>;
fn absmax4(e: vec4<u32>, j: u32) -> vec4<f32> {
  let blk = e / u.bs;
  if (any(blk != am_blk[j])) {
    am_blk[j] = blk;
    am_val[j] = vec4<f32>(block_absmax(blk.x), block_absmax(blk.y), block_absmax(blk.z), block_absmax(blk.w));
  }
  return am_val[j];
}
// Code values of weights e .. e + 3 (e % 4 == 0): one half of a packed word.
fn w4(e: u32) -> vec4<f32> { return decode_lo(packed[e >> 3u] >> ((e & 4u) * 4u), tb); }
fn bTile(p: u32, c: u32, j: u32) -> mat4x4<f32> {
  // Columns past n (a thread's last 4-block may overhang) read the last valid ones; they are never stored.
  let e = ${es};
  let am = absmax4(e, ${slot});
  return ${v.grad ? `mat4x4<f32>(${cols})` : `transpose(mat4x4<f32>(${cols}))`};
}`;
  } else {
    tile = `// B[p, c], zero outside [k, n] (branch-free guard).
fn w1(p: u32, c: u32) -> f32 {
  let ok = p < u.k && c < u.n;
  let e = select(0u, ${elem}, ok);
  let byte = (packed[e >> 3u] >> (((e >> 1u) & 3u) * 8u)) & 0xffu;
  let q = select(byte >> 4u, byte & 15u, (e & 1u) == 1u);
  return select(0.0, ${r1('decode4(q, tb) * block_absmax(e / u.bs)')}, ok);
}
fn wrow(p: u32, c: u32) -> vec4<f32> { return vec4<f32>(w1(p, c), w1(p, c + 1u), w1(p, c + 2u), w1(p, c + 3u)); }
fn bTile(p: u32, c: u32, j: u32) -> mat4x4<f32> { return mat4x4<f32>(wrow(p, c), wrow(p + 1u, c), wrow(p + 2u, c), wrow(p + 3u, c)); }`;
  }
  return {
    // Everything the WGSL depends on beyond the tile and the matmul layout (both in the program key).
    key: `quant4/${v.grad ? 'dx' : 'fwd'}/${v.nested ? 'nested' : 'plain'}/${v.aligned ? 'words' : 'scalar'}`,
    count: names.length,
    bindings: (first) => names.map((n, i) => `@group(0) @binding(${first + i}) var<storage, read> ${n}: array<${types[n]}>;`).join('\n'),
    wgsl: `${WGSL_DECODE4}
${v.half ? WGSL_ROUND_F16 : ''}
var<private> tb: Code4;
${absmaxFn}
${tile}`,
    prologue: v.aligned ? `tb = load_code4();\n  for (var i = 0u; i < ${v.grad ? 1 : v.slots}u; i++) { am_blk[i] = vec4<u32>(0xffffffffu); }` : 'tb = load_code4();',
  };
}

/** The register tile on `ctx`'s adapter: the plain matmul heuristic's (8 x 8 per thread on lavapipe-like adapters, 4 x 4 when unaligned). */
function tileFor(ctx: WebGpuKernelContext, aligned: boolean): TileShape {
  if (!aligned) return TILED_GUARDED_TILE;
  return ctx.adapterKind.software && !ctx.adapterKind.swiftShader ? TILED_WIDE_TILE : TILED_DEFAULT_TILE;
}

/**
 * `out [..., N]` for `x [..., K]` (R = x.size / K rows, any R): the forward
 * (`grad` false, optional `bias [out]` added in the store) or the input gradient, in one
 * dispatch and without a transient weight. `weight` holds the weight inputs in kernel
 * order (see `weightInputs`); f32 or f16 `x` (and bias), the result in x's dtype.
 */
export function linear4bitTiled(x: Tensor, weight: readonly Tensor[], bias: Tensor | null, a: Linear4bitAttrs, grad: boolean, ctx: WebGpuKernelContext): Tensor {
  const K = grad ? a.outFeatures : a.inFeatures;
  const N = grad ? a.inFeatures : a.outFeatures;
  const rows = x.size / K;
  const out = ctx.output([...x.shape.slice(0, -1), N], x.dtype, grad ? 'Linear4bitGradInput' : 'Linear4bit');
  if (out.size === 0) return out;
  const half = x.dtype === 'f16';
  const aligned = rows % 4 === 0 && N % 4 === 0 && K % 4 === 0;
  const u = tiledMatmulUniforms(new Uniforms(), rows, K, N, bias !== null)
    .u32('bs', a.blocksize)
    .u32('nbs', Math.max(1, a.nestedBlocksize));
  const tile = tileFor(ctx, aligned);
  const spec = tiledMatmulWithB(
    { aligned, half, bias: bias !== null, tile, loader: loader({ grad, nested: a.nested, half, aligned: aligned && a.blocksize % 4 === 0, slots: tile.cols / 4 }) },
    u,
    rows,
    N
  );
  const inputs = bias ? [x, ...weight, bias] : [x, ...weight];
  ctx.dispatch(program(spec.key, spec.inputCount, 1, spec.source), inputs, [out], u, spec.grid);
  return out;
}
