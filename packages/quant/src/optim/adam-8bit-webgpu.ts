/**
 * The 8-bit blockwise Adam step on WebGPU: ONE fused kernel per batch of blocks,
 * one workgroup (256 threads) per block of 256 elements: dequantize both states,
 * fp32 update, block absmax by a workgroup max-reduction, parameter update, requantize
 * (binary search over the dynamic maps held in workgroup memory), four codes packed per
 * u32 word. The arithmetic repeats `adam8bitBlockwiseHost` operation by operation.
 *
 * State layout (one u32 buffer, also the layout of a host page): `[codes1 (nb*64 words)
 * | codes2 (nb*64) | absmax1 bits (nb) | absmax2 bits (nb)]` for `nb` blocks.
 *
 * Block addressing: `tabled` reads `(start, valid)` per block from a table (a batch of
 * several parameters packed into flat buffers); `contiguous` addresses blocks
 * `blockBase + b` of one parameter bound directly (a page of a paged optimizer).
 */
import {
  type Tensor,
  Uniforms,
  type WebGpuBackend,
  program,
  runKernel,
  storageBindings,
} from '@webpeft/tensor';
import type { BnbAdamScalars } from './bnb-scalars.js';

/** How a dispatch finds the parameter elements of each block. */
export type BlockAddressing = { kind: 'tabled'; table: Tensor } | { kind: 'contiguous'; blockBase: number; n: number };

function quantFn(name: string, code: string, signed: boolean): string {
  return `fn ${name}(x: f32) -> u32 {
  var pivot = 127u;
  var upperPivot = 255u;
  var lowerPivot = 0u;
  var lower = ${signed ? '-1.0' : '0.0'};
  var upper = 1.0;
  var val = ${code}[127u];
  for (var i = 64u; i > 0u; i = i >> 1u) {
    if (x > val) { lowerPivot = pivot; lower = val; pivot = pivot + i; }
    else { upperPivot = pivot; upper = val; pivot = pivot - i; }
    val = ${code}[pivot];
  }
  if (x > val) { if (x > (upper + val) * 0.5) { return upperPivot; } return pivot; }
  if (x < (lower + val) * 0.5) { return lowerPivot; }
  return pivot;
}`;
}

function source(tabled: boolean, u: Uniforms): string {
  return `
${storageBindings([['gs', 'f32'], ['tab', 'u32'], ['qmap', 'f32']], [['ps', 'f32'], ['q', 'u32']])}
${u.declaration(5)}
var<workgroup> code1: array<f32, 256>;
var<workgroup> code2: array<f32, 256>;
var<workgroup> red1: array<f32, 256>;
var<workgroup> red2: array<f32, 256>;
var<workgroup> cw1: array<u32, 256>;
var<workgroup> cw2: array<u32, 256>;
${quantFn('quant1', 'code1', true)}
${quantFn('quant2', 'code2', false)}
fn isFinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  code1[t] = qmap[t];
  code2[t] = qmap[256u + t];
  workgroupBarrier();
  let blk = wid.x + wid.y * nwg.x;
  if (blk >= u.nb) { return; }
${tabled ? `  let start = tab[2u * blk];
  let valid = tab[2u * blk + 1u];` : `  let start = (u.blockBase + blk) * 256u;
  let valid = min(256u, u.n - start);`}
  let live = t < valid;
  var g = 0.0;
  var c1 = 128u;
  var c2 = 0u;
  let w = blk * 64u + t / 4u;
  let sh = (t % 4u) * 8u;
  if (live) {
    g = gs[start + t];
    c1 = (q[w] >> sh) & 255u;
    c2 = (q[u.nb * 64u + w] >> sh) & 255u;
  }
  let a1 = bitcast<f32>(q[u.nb * 128u + blk]);
  let a2 = bitcast<f32>(q[u.nb * 129u + blk]);
  var s1 = 0.0;
  var s2 = 0.0;
  if (isFinite(g)) {
    s2 = code2[c2] * a2;
    s2 = s2 * u.beta2 + u.oneMinusBeta2 * g * g;
    s1 = code1[c1] * a1;
    s1 = s1 * u.beta1 + u.oneMinusBeta1 * g;
  }
  red1[t] = abs(s1);
  red2[t] = abs(s2);
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (t < s) {
      red1[t] = max(red1[t], red1[t + s]);
      red2[t] = max(red2[t], red2[t + s]);
    }
    workgroupBarrier();
  }
  let m1 = red1[0];
  let m2 = red2[0];
  if (live && isFinite(g)) {
    var p = ps[start + t];
    p = p + u.stepSize * (s1 / (sqrt(s2) + u.correctedEps));
    if (u.hasDecay != 0.0) { p = p * u.decay; }
    ps[start + t] = p;
  }
  // An all-zero block divides 0 / 0: NaN on CUDA, which quantize_2D maps to code 0.
  var q1 = 0u;
  var q2 = 0u;
  if (m1 != 0.0) { q1 = quant1(s1 / m1); }
  if (m2 != 0.0) { q2 = quant2(s2 / m2); }
  if ((bitcast<u32>(code1[q1]) >> 31u) != (bitcast<u32>(s1) >> 31u)) {
    if (s1 > 0.0) { q1 = (q1 + 1u) & 255u; } else { q1 = (q1 + 255u) & 255u; }
  }
  cw1[t] = q1;
  cw2[t] = q2;
  workgroupBarrier();
  if (t < 64u) {
    let b = 4u * t;
    q[blk * 64u + t] = cw1[b] | (cw1[b + 1u] << 8u) | (cw1[b + 2u] << 16u) | (cw1[b + 3u] << 24u);
    q[u.nb * 64u + blk * 64u + t] = cw2[b] | (cw2[b + 1u] << 8u) | (cw2[b + 2u] << 16u) | (cw2[b + 3u] << 24u);
  }
  if (t == 0u) {
    q[u.nb * 128u + blk] = bitcast<u32>(m1);
    q[u.nb * 129u + blk] = bitcast<u32>(m2);
  }
}`;
}

/** One workgroup per block, 2-D past 65535 blocks (the kernel computes the block index). */
function blockGrid(nb: number): [number, number, number] {
  const max = 65535;
  return nb <= max ? [nb, 1, 1] : [max, Math.ceil(nb / max), 1];
}

/**
 * One dispatch over `nb` blocks: `grads`/`params` f32 (flat batch or one parameter),
 * `state` u32 in the layout above (updated in place), `qmap` the signed then the
 * unsigned dynamic map (512 f32), `dummyTable` any u32 tensor when `contiguous`.
 */
export function adam8bitDispatch(
  backend: WebGpuBackend,
  grads: Tensor,
  params: Tensor,
  state: Tensor,
  qmap: Tensor,
  nb: number,
  addressing: BlockAddressing,
  k: BnbAdamScalars,
): void {
  const tabled = addressing.kind === 'tabled';
  const u = new Uniforms().u32('nb', nb).u32('blockBase', tabled ? 0 : addressing.blockBase).u32('n', tabled ? 0 : addressing.n);
  for (const name of ['beta1', 'oneMinusBeta1', 'beta2', 'oneMinusBeta2', 'stepSize', 'correctedEps', 'decay', 'hasDecay']) u.f32(name, k[name]);
  const prog = program(`quant/adam8bit/${tabled ? 'tabled' : 'contiguous'}`, 3, 2, () => source(tabled, u));
  const table = tabled ? addressing.table : qmap;
  runKernel(backend, prog, [grads, table, qmap], [params, state], u, blockGrid(nb));
}
