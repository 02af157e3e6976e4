/**
 * The weight gradients of layer norm and RMS norm in one dispatch each:
 * `dweight[j] = sum over rows of dy[r, j] * xhat[r, j]`, `dy`, `x` `[..., D] -> [D]`.
 * Without it that gradient is a normalisation with unit weights (two `Fill`s for them),
 * a `Mul` and a `Sum`. Each workgroup owns `COLS` columns and walks every row: its 64
 * threads compute the row's statistics together (shared-memory tree sums) and each
 * thread accumulates its columns, so no `[N, D]` intermediate exists. The statistics are
 * recomputed by each of the `ceil(D / COLS)` workgroups, which costs `D / COLS` reads of
 * `x` per row (none for `D <= 256`).
 */
import type { Tensor } from '../../../tensor.js';
import type { WebGpuKernelContext } from '../../../kernel-context.js';
import { registerKernel } from '../../../registry.js';
import { ShapeError, fmtShape } from '../../../errors.js';
import { shapesEqual } from '../../../shape.js';
import { floatIO } from '../f16.js';
import { program } from '../program.js';
import { Uniforms, rowGrid, storageBindings } from '../wgsl.js';

/** Threads per workgroup (the width of the statistics' tree sums). */
const WG = 64;
/** Columns each thread accumulates; a workgroup owns `WG * PER` columns. */
const PER = 4;
const COLS = WG * PER;

function kernel(op: 'LayerNormWeightGrad' | 'RmsNormWeightGrad') {
  const layer = op === 'LayerNormWeightGrad';
  return (inputs: readonly Tensor[], attrs: { eps: number }, ctx: WebGpuKernelContext): Tensor => {
    const [dy, x] = inputs;
    if (x.rank < 1 || !shapesEqual(dy.shape, x.shape)) throw new ShapeError(`${op}: dy ${fmtShape(dy.shape)} and x ${fmtShape(x.shape)} must have one shape [..., D]`);
    const w = x.shape[x.rank - 1];
    const rows = w === 0 ? 0 : x.size / w;
    const io = floatIO(ctx, op, x.dtype);
    const out = ctx.output([w], x.dtype, op);
    if (w === 0) return out;
    const u = new Uniforms().u32('rows', rows).u32('w', w).f32('eps', attrs.eps);
    const X = (e: string) => io.load(`x[${e}]`);
    const stats = layer
      ? `    var s = 0.0;
    for (var j = tid; j < u.w; j += ${WG}u) { s = s + ${X('o + j')}; }
    let mean = rsum(s, tid) / f32(u.w);
    var v = 0.0;
    for (var j = tid; j < u.w; j += ${WG}u) { let d = ${X('o + j')} - mean; v = v + d * d; }
    let rstd = inverseSqrt(rsum(v, tid) / f32(u.w) + u.eps);`
      : `    let mean = 0.0;
    var s = 0.0;
    for (var j = tid; j < u.w; j += ${WG}u) { let e = ${X('o + j')}; s = s + e * e; }
    let rstd = inverseSqrt(rsum(s, tid) / f32(u.w) + u.eps);`;
    const prog = program(`normWeightGrad/${op}/${io.T}`, 2, 1, () => `${io.enable}${storageBindings([['dy', io.T], ['x', io.T]], [['out', io.T]])}
${u.declaration(3)}
var<workgroup> red: array<f32, ${WG}>;
fn rsum(v: f32, tid: u32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (tid < s) { red[tid] = red[tid] + red[tid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let tid = lid.x;
  let base = (wid.x + wid.y * nwg.x) * ${COLS}u + tid;
  var acc = array<f32, ${PER}>();
  for (var r = 0u; r < u.rows; r++) {
    let o = r * u.w;
${stats}
    for (var k = 0u; k < ${PER}u; k++) {
      let c = base + k * ${WG}u;
      if (c < u.w) { acc[k] = acc[k] + ${io.load('dy[o + c]')} * ((${X('o + c')} - mean) * rstd); }
    }
  }
  for (var k = 0u; k < ${PER}u; k++) {
    let c = base + k * ${WG}u;
    if (c < u.w) { out[c] = ${io.store('acc[k]')}; }
  }
}`);
    ctx.dispatch(prog, [dy, x], [out], u, rowGrid(Math.ceil(w / COLS)));
    return out;
  };
}

/** Registers the webgpu kernels of `LayerNormWeightGrad` and `RmsNormWeightGrad`. */
export function registerWebGpuNormWeightGradKernels(): void {
  registerKernel('LayerNormWeightGrad', 'webgpu', kernel('LayerNormWeightGrad'));
  registerKernel('RmsNormWeightGrad', 'webgpu', kernel('RmsNormWeightGrad'));
}
