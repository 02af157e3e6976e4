import type { Backend } from '../../../backend.js';
import { engine } from '../../../engine.js';
import type { OpName } from '../../../op-names.js';
import { registerKernel } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import { program, runKernel } from '../run-kernel.js';
import type { WebGpuBackend } from '../webgpu-backend.js';
import { WGSL_SPECIAL } from '../wgsl-math.js';
import { Uniforms, elementMain, grid, storageBindings } from '../wgsl.js';

const WG = 64;

/**
 * A row-wise fused kernel: one thread per row of the last axis (`w` elements at
 * `o = row * w`). `body` is WGSL that reads the named inputs and writes `out`.
 */
function rowKernel(
  op: OpName,
  inputNames: readonly [string, string][],
  body: string,
  opts: { outShape?: (inputs: readonly Tensor[]) => number[]; rowsOf?: number; eps?: boolean; ignoreIndex?: boolean } = {},
) {
  return (inputs: readonly Tensor[], attrs: { eps?: number; ignoreIndex?: number }, backend: Backend): Tensor => {
    const shapeRef = inputs[opts.rowsOf ?? 0];
    const w = shapeRef.shape[shapeRef.rank - 1] ?? 1;
    const rows = w === 0 ? 0 : shapeRef.size / w;
    const out = engine.makeTensor(backend, opts.outShape?.(inputs) ?? [...shapeRef.shape], 'f32', op);
    const u = new Uniforms().u32('rows', rows).u32('w', w);
    if (opts.eps) u.f32('eps', attrs.eps!);
    if (opts.ignoreIndex) u.i32('ignoreIndex', attrs.ignoreIndex!);
    const prog = program(`rows/${op}`, inputNames.length, 1, () => `${WGSL_SPECIAL}
${storageBindings(inputNames, [['out', 'f32']])}
${u.declaration(inputNames.length + 1)}
${elementMain(WG, 'u.rows')}
  let row = i;
  let o = row * u.w;
${body}
}`);
    runKernel(backend as WebGpuBackend, prog, inputs, [out], u, grid(rows, WG));
    return out;
  };
}

const ROW_MAX = `  var mx = neg_inf_();
  for (var j = 0u; j < u.w; j++) { mx = max(mx, x[o + j]); }
  var se = 0.0;
  for (var j = 0u; j < u.w; j++) { se = se + exp(x[o + j] - mx); }`;

const LN_STATS = `  var mean = 0.0;
  for (var j = 0u; j < u.w; j++) { mean = mean + x[o + j]; }
  mean = mean / f32(u.w);
  var v = 0.0;
  for (var j = 0u; j < u.w; j++) { let d = x[o + j] - mean; v = v + d * d; }
  let rstd = inverseSqrt(v / f32(u.w) + u.eps);`;

const RMS_STATS = `  var ms = 0.0;
  for (var j = 0u; j < u.w; j++) { ms = ms + x[o + j] * x[o + j]; }
  let rstd = inverseSqrt(ms / f32(u.w) + u.eps);`;

/** Registers the webgpu fused kernels (softmax family, cross-entropy, norms). */
export function registerWebGpuFusedKernels(): void {
  registerKernel('Softmax', 'webgpu', rowKernel('Softmax', [['x', 'f32']], `${ROW_MAX}
  for (var j = 0u; j < u.w; j++) { out[o + j] = exp(x[o + j] - mx) / se; }`));
  registerKernel('LogSoftmax', 'webgpu', rowKernel('LogSoftmax', [['x', 'f32']], `${ROW_MAX}
  let lse = mx + log(se);
  for (var j = 0u; j < u.w; j++) { out[o + j] = x[o + j] - lse; }`));
  registerKernel('SoftmaxGrad', 'webgpu', rowKernel('SoftmaxGrad', [['dy', 'f32'], ['y', 'f32']], `  var dot = 0.0;
  for (var j = 0u; j < u.w; j++) { dot = dot + dy[o + j] * y[o + j]; }
  for (var j = 0u; j < u.w; j++) { out[o + j] = y[o + j] * (dy[o + j] - dot); }`));
  registerKernel('LogSoftmaxGrad', 'webgpu', rowKernel('LogSoftmaxGrad', [['dy', 'f32'], ['y', 'f32']], `  var s = 0.0;
  for (var j = 0u; j < u.w; j++) { s = s + dy[o + j]; }
  for (var j = 0u; j < u.w; j++) { out[o + j] = dy[o + j] - exp(y[o + j]) * s; }`));
  // Out-of-range labels give NaN on webgpu (the cpu backend throws).
  registerKernel(
    'CrossEntropy',
    'webgpu',
    rowKernel(
      'CrossEntropy',
      [['x', 'f32'], ['labels', 'i32']],
      `  let label = labels[row];
  if (label == u.ignoreIndex) { out[row] = 0.0; return; }
  if (label < 0 || u32(label) >= u.w) { out[row] = nan_(); return; }
${ROW_MAX}
  out[row] = mx + log(se) - x[o + u32(label)];`,
      { outShape: (inputs) => [inputs[0].shape[0]], ignoreIndex: true },
    ),
  );
  registerKernel(
    'CrossEntropyGrad',
    'webgpu',
    rowKernel(
      'CrossEntropyGrad',
      [['dy', 'f32'], ['x', 'f32'], ['labels', 'i32']],
      `  let label = labels[row];
  if (label == u.ignoreIndex) { for (var j = 0u; j < u.w; j++) { out[o + j] = 0.0; } return; }
${ROW_MAX}
  let g = dy[row];
  for (var j = 0u; j < u.w; j++) {
    let onehot = select(0.0, 1.0, i32(j) == label);
    out[o + j] = g * (exp(x[o + j] - mx) / se - onehot);
  }`,
      { rowsOf: 1, ignoreIndex: true },
    ),
  );
  registerKernel('LayerNorm', 'webgpu', rowKernel('LayerNorm', [['x', 'f32'], ['wt', 'f32'], ['bias', 'f32']], `${LN_STATS}
  for (var j = 0u; j < u.w; j++) { out[o + j] = (x[o + j] - mean) * rstd * wt[j] + bias[j]; }`, { eps: true }));
  registerKernel('LayerNormGrad', 'webgpu', rowKernel('LayerNormGrad', [['dy', 'f32'], ['x', 'f32'], ['wt', 'f32']], `${LN_STATS}
  var gm = 0.0;
  var gx = 0.0;
  for (var j = 0u; j < u.w; j++) {
    let g = dy[o + j] * wt[j];
    gm = gm + g;
    gx = gx + g * (x[o + j] - mean) * rstd;
  }
  gm = gm / f32(u.w);
  gx = gx / f32(u.w);
  for (var j = 0u; j < u.w; j++) {
    let xhat = (x[o + j] - mean) * rstd;
    out[o + j] = rstd * (dy[o + j] * wt[j] - gm - xhat * gx);
  }`, { rowsOf: 1, eps: true }));
  registerKernel('RmsNorm', 'webgpu', rowKernel('RmsNorm', [['x', 'f32'], ['wt', 'f32']], `${RMS_STATS}
  for (var j = 0u; j < u.w; j++) { out[o + j] = x[o + j] * rstd * wt[j]; }`, { eps: true }));
  registerKernel('RmsNormGrad', 'webgpu', rowKernel('RmsNormGrad', [['dy', 'f32'], ['x', 'f32'], ['wt', 'f32']], `${RMS_STATS}
  var gx = 0.0;
  for (var j = 0u; j < u.w; j++) { gx = gx + dy[o + j] * wt[j] * x[o + j] * rstd; }
  gx = gx / f32(u.w);
  for (var j = 0u; j < u.w; j++) { out[o + j] = rstd * (dy[o + j] * wt[j] - x[o + j] * rstd * gx); }`, { rowsOf: 1, eps: true }));
}
