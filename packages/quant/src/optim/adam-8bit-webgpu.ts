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
 * Blocks `blockBase + b` of one parameter are bound directly: the whole parameter of an
 * unpaged state, or the blocks of one page of a paged optimizer.
 */
import { Uniforms, program, registerInPlaceKernel, storageBindings } from '@webpeft/tensor/kernel';
import type {} from './optim-ops.js';

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

function source(u: Uniforms): string {
  return `
${storageBindings([['gs', 'f32'], ['qmap', 'f32']], [['ps', 'f32'], ['q', 'u32']])}
${u.declaration(4)}
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
  let start = (u.blockBase + blk) * 256u;
  let valid = min(256u, u.n - start);
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

const SCALARS = ['beta1', 'oneMinusBeta1', 'beta2', 'oneMinusBeta2', 'stepSize', 'correctedEps', 'decay', 'hasDecay'] as const;

/** Registers the webgpu kernel of `Adam8bitStep`: one dispatch over the blocks it is given. */
export function registerAdam8bitWebGpuKernel(): void {
  registerInPlaceKernel('Adam8bitStep', 'webgpu', ({ param, grad, state, qmap, blocks, blockBase, scalars }, ctx) => {
    const u = new Uniforms().u32('nb', blocks).u32('blockBase', blockBase).u32('n', param.size);
    for (const name of SCALARS) u.f32(name, scalars[name]);
    const prog = program('quant/adam8bit/contiguous', 2, 2, () => source(u));
    ctx.dispatch(prog, [grad, qmap], [param, state], u, blockGrid(blocks));
  });
}
