/**
 * webgpu kernels of the LLaMA-family fusions: `SwiGLU` and `SwiGLUBackward` (one thread
 * per element, both gradients in one pass), `Rope` / `RopeGrad` on heads (one thread
 * per element; the head axis moves between `[B, T, H, Dh]` and `[B, H, T, Dh]` in the
 * index map), and `AddRmsNorm` (one thread or one workgroup per row, as `RmsNorm`,
 * writing the sum and the normed sum). f16 tensors are read as f32, computed in f32 and rounded once per store.
 */
import type { DType } from '../../../dtype.js';
import type { WebGpuKernelContext } from '../../../kernel-context.js';
import { registerInPlaceKernel, registerKernel } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import { enableF16 } from '../f16.js';
import { program } from '../program.js';
import { Uniforms, elementMain, grid, rowGrid, storageBindings, wgslType } from '../wgsl.js';

const WG = 64;
/** Threads of the workgroup that normalizes one row. */
const ROW_WG = 64;

/** `enable f16;` where needed, and the WGSL element type of `dtype`. */
function io(ctx: WebGpuKernelContext, op: string, dtype: DType): { enable: string; t: string } {
  return { enable: enableF16(ctx, op, [dtype]), t: wgslType(dtype) };
}

function swigluForward(inputs: readonly Tensor[], _a: Record<string, never>, ctx: WebGpuKernelContext): Tensor {
  const [g, up] = inputs;
  const { enable, t } = io(ctx, 'SwiGLU', g.dtype);
  const out = ctx.output(g.shape, g.dtype, 'swiglu');
  const u = new Uniforms().u32('n', g.size);
  const prog = program(`llama/swiglu/${g.dtype}`, 2, 1, () => `${enable}${storageBindings([['gate', t], ['upv', t]], [['out', t]])}
${u.declaration(3)}
${elementMain(WG, 'u.n')}
  let gv = f32(gate[i]);
  out[i] = ${t}(gv / (1.0 + exp(-gv)) * f32(upv[i]));
}`);
  if (g.size > 0) ctx.dispatch(prog, [g, up], [out], u, grid(g.size, WG));
  return out;
}

function swigluBackward({ dy, gate, up }: { dy: Tensor; gate: Tensor; up: Tensor }, ctx: WebGpuKernelContext): { gate: Tensor; up: Tensor } {
  const { enable, t } = io(ctx, 'SwiGLUBackward', gate.dtype);
  const dg = ctx.output(gate.shape, gate.dtype, 'swigluGrad');
  const du = ctx.output(gate.shape, gate.dtype, 'swigluGrad');
  const u = new Uniforms().u32('n', gate.size);
  const prog = program(`llama/swiglu-backward/${gate.dtype}`, 3, 2, () => `${enable}${storageBindings([['dy', t], ['gate', t], ['upv', t]], [['dgate', t], ['dup', t]])}
${u.declaration(5)}
${elementMain(WG, 'u.n')}
  let gv = f32(gate[i]);
  let d = f32(dy[i]);
  let s = 1.0 / (1.0 + exp(-gv));
  dgate[i] = ${t}(d * f32(upv[i]) * (s * (1.0 + gv * (1.0 - s))));
  dup[i] = ${t}(d * gv * s);
}`);
  if (gate.size > 0) ctx.dispatch(prog, [dy, gate, up], [dg, du], u, grid(gate.size, WG));
  return { gate: dg, up: du };
}

/**
 * `Rope` (`grad` false: `[B, T, H, Dh] -> [B, H, T, Dh]`) or `RopeGrad` (`grad` true:
 * `[B, H, T, Dh] -> [B, T, H, Dh]`); one thread per output element.
 */
function ropeKernel(grad: boolean) {
  return (inputs: readonly Tensor[], _a: Record<string, never>, ctx: WebGpuKernelContext): Tensor => {
    const [x, c, s] = inputs;
    const op = grad ? 'RopeGrad' : 'Rope';
    const [b, a1, a2, dh] = x.shape;
    // Forward: a1 = T, a2 = H; backward: a1 = H, a2 = T.
    const [tokens, heads] = grad ? [a2, a1] : [a1, a2];
    const { enable, t } = io(ctx, op, x.dtype);
    const out = ctx.output(grad ? [b, tokens, heads, dh] : [b, heads, tokens, dh], x.dtype, grad ? 'ropeGrad' : 'rope');
    const u = new Uniforms().u32('n', x.size).u32('t', tokens).u32('h', heads).u32('dh', dh).u32('batched', c.rank === 3 ? 1 : 0);
    // Output coordinates from i; `xi` the input row, `tr` the table row.
    const coords = grad
      ? `  let hh = r % u.h;
  let r2 = r / u.h;
  let tt = r2 % u.t;
  let bb = r2 / u.t;
  let xi = ((bb * u.h + hh) * u.t + tt) * u.dh;`
      : `  let tt = r % u.t;
  let r2 = r / u.t;
  let hh = r2 % u.h;
  let bb = r2 / u.h;
  let xi = ((bb * u.t + tt) * u.h + hh) * u.dh;`;
    const body = grad
      ? `  var rot: f32;
  if (j < half) { rot = f32(x[xi + j + half]) * f32(sn[tr + j + half]); } else { rot = -f32(x[xi + j - half]) * f32(sn[tr + j - half]); }
  out[i] = ${t}(f32(x[xi + j]) * f32(cs[tr + j]) + rot);`
      : `  var rot: f32;
  if (j < half) { rot = -f32(x[xi + j + half]); } else { rot = f32(x[xi + j - half]); }
  out[i] = ${t}(f32(x[xi + j]) * f32(cs[tr + j]) + rot * f32(sn[tr + j]));`;
    const prog = program(`llama/${op}/${x.dtype}`, 3, 1, () => `${enable}${storageBindings([['x', t], ['cs', t], ['sn', t]], [['out', t]])}
${u.declaration(4)}
${elementMain(WG, 'u.n')}
  let j = i % u.dh;
  let r = i / u.dh;
${coords}
  let tr = select(tt, bb * u.t + tt, u.batched == 1u) * u.dh;
  let half = u.dh / 2u;
${body}
}`);
    if (x.size > 0) ctx.dispatch(prog, [x, c, s], [out], u, grid(x.size, WG));
    return out;
  };
}

function addRmsNorm({ x, residual, weight, eps }: { x: Tensor; residual: Tensor; weight: Tensor; eps: number }, ctx: WebGpuKernelContext): { sum: Tensor; normed: Tensor } {
  const { enable, t } = io(ctx, 'AddRmsNorm', x.dtype);
  const w = x.shape[x.rank - 1];
  const rows = w === 0 ? 0 : x.size / w;
  const sum = ctx.output(x.shape, x.dtype, 'addRmsNorm');
  const normed = ctx.output(x.shape, x.dtype, 'addRmsNorm');
  const u = new Uniforms().u32('rows', rows).u32('w', w).f32('eps', eps);
  // The norm reads back the stored (rounded) sum, so it normalizes exactly the residual
  // the next layer adds to. Rows up to 64 wide run one thread per row, wider ones one
  // workgroup per row: the same reduction orders as the `RmsNorm` kernel, so the fused
  // pair is bitwise the unfused one (gradient checkpointing mixes the two).
  const wide = w > ROW_WG;
  const header = wide
    ? `var<workgroup> red: array<f32, ${ROW_WG}>;
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= u.rows) { return; }
  let tid = lid.x;`
    : `${elementMain(WG, 'u.rows')}
  let row = i;
  let tid = 0u;`;
  const stride = wide ? `${ROW_WG}u` : '1u';
  // `row` is uniform over a workgroup: the early return keeps the barriers in uniform control flow.
  const reduce = wide
    ? `  red[tid] = ms;
  workgroupBarrier();
  for (var k = ${ROW_WG / 2}u; k > 0u; k = k >> 1u) {
    if (tid < k) { red[tid] = red[tid] + red[tid + k]; }
    workgroupBarrier();
  }
  ms = red[0];`
    : '';
  const prog = program(`llama/add-rms-norm/${wide ? 'wg' : 'thread'}/${x.dtype}`, 3, 2, () => `${enable}${storageBindings([['x', t], ['res', t], ['wt', t]], [['sum', t], ['normed', t]])}
${u.declaration(5)}
${header}
  let o = row * u.w;
  var ms = 0.0;
  for (var j = tid; j < u.w; j += ${stride}) {
    sum[o + j] = ${t}(f32(x[o + j]) + f32(res[o + j]));
    let sv = f32(sum[o + j]);
    ms = ms + sv * sv;
  }
${reduce}
  let rstd = inverseSqrt(ms / f32(u.w) + u.eps);
  for (var j = tid; j < u.w; j += ${stride}) {
    normed[o + j] = ${t}(f32(sum[o + j]) * rstd * f32(wt[j]));
  }
}`);
  if (rows > 0) ctx.dispatch(prog, [x, residual, weight], [sum, normed], u, wide ? rowGrid(rows) : grid(rows, WG));
  return { sum, normed };
}

/** Registers the webgpu kernels of the LLaMA-family fusions. */
export function registerWebGpuLlamaFusedKernels(): void {
  registerKernel('SwiGLU', 'webgpu', swigluForward);
  registerInPlaceKernel('SwiGLUBackward', 'webgpu', swigluBackward);
  registerKernel('Rope', 'webgpu', ropeKernel(false));
  registerKernel('RopeGrad', 'webgpu', ropeKernel(true));
  registerInPlaceKernel('AddRmsNorm', 'webgpu', addRmsNorm);
}
