import type { OpName } from '../../../op-names.js';
import { registerKernel } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import { indexCheckWgsl } from '../index-checks.js';
import { program } from '../program.js';
import type { WebGpuKernelContext } from '../../../kernel-context.js';
import { WGSL_SPECIAL } from '../wgsl-math.js';
import { Uniforms, elementMain, grid, rowGrid, storageBindings } from '../wgsl.js';
import { WGSL_MAX_NAN } from './wgsl-max-nan.js';
import { enableF16 } from '../f16.js';
import { wgslType } from '../wgsl.js';

/** Threads per row in the workgroup-per-row variant; also the widest row served by one thread. */
const ROW_WG = 64;
/** Threads per workgroup in the thread-per-row variant. */
const WG = 64;

/**
 * WGSL that both variants share: `rsum`/`rmax` reduce a per-thread partial over the
 * threads of a row (identity with one thread per row), and `FOR(j)` loops start at
 * `tid` with stride `JS`.
 */
function rowPrelude(wide: boolean): string {
  if (!wide) {
    return `${WGSL_MAX_NAN}
fn rsum(v: f32, tid: u32) -> f32 { return v; }
fn rmax(v: f32, tid: u32) -> f32 { return v; }`;
  }
  return `${WGSL_MAX_NAN}
var<workgroup> red: array<f32, ${ROW_WG}>;
fn rsum(v: f32, tid: u32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    if (tid < s) { red[tid] = red[tid] + red[tid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn rmax(v: f32, tid: u32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    if (tid < s) { red[tid] = maxNan(red[tid], red[tid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;
}

/** Expands `FOR(j)` into the loop over a row's elements owned by this thread. */
function expandLoops(body: string, wide: boolean): string {
  const stride = wide ? `${ROW_WG}u` : '1u';
  return body.replace(/FOR\((\w+)\)/g, (_, j: string) => `for (var ${j} = tid; ${j} < u.w; ${j} += ${stride})`);
}

/**
 * Rewrites a row body for f16 storage: every read of an f16 binding (`name[...]`) is
 * widened to f32, and every store `out[...] = e;` rounds `e` once to f16. The bodies
 * index with no nested brackets and store with one statement each, which this relies on.
 */
function halfBody(body: string, halfInputs: readonly string[], halfOut: boolean): string {
  let b = body;
  if (halfOut) b = b.replace(/\bout\[([^\]]*)\] = ([^;]*);/g, 'out[$1] = f16($2);');
  for (const name of halfInputs) b = b.replace(new RegExp(`\\b${name}\\[([^\\]]*)\\]`, 'g'), `f32(${name}[$1])`);
  return b;
}

/**
 * A row-wise fused kernel over the last axis (`w` elements at `o = row * w`). Rows up to
 * 64 wide run one thread per row; wider rows (hidden sizes, vocabularies) run one
 * workgroup of 64 threads per row with shared-memory tree reductions. `body` is WGSL
 * written with `FOR(j)` loops, `rsum`/`rmax` for row reductions, and `tid == 0u` for
 * once-per-row writes. Inputs and output may be f16 (read as f32, statistics and sums in
 * f32, results rounded once); the output has the dtype of input `rowsOf` unless
 * `outDtype` says otherwise (cross-entropy's losses are f32).
 */
function rowKernel(
  op: OpName,
  inputNames: readonly [string, string][],
  body: string,
  opts: {
    outShape?: (inputs: readonly Tensor[]) => number[];
    rowsOf?: number;
    eps?: boolean;
    ignoreIndex?: boolean;
    labelCheck?: string;
    outF32?: boolean;
  } = {},
) {
  return (inputs: readonly Tensor[], attrs: { eps?: number; ignoreIndex?: number }, ctx: WebGpuKernelContext): Tensor => {
    const shapeRef = inputs[opts.rowsOf ?? 0];
    const w = shapeRef.shape[shapeRef.rank - 1] ?? 1;
    const rows = w === 0 ? 0 : shapeRef.size / w;
    const outDtype = opts.outF32 || shapeRef.dtype !== 'f16' ? 'f32' : 'f16';
    const dtypes = inputs.map((t) => t.dtype);
    const enable = enableF16(ctx, op, [...dtypes, outDtype]);
    const bindings = inputNames.map(([name, type], k): [string, string] => [name, type === 'i32' ? type : wgslType(dtypes[k])]);
    const halfInputs = bindings.filter(([, type]) => type === 'f16').map(([name]) => name);
    const rowBody = enable ? halfBody(body, halfInputs, outDtype === 'f16') : body;
    const out = ctx.output(opts.outShape?.(inputs) ?? [...shapeRef.shape], outDtype, op);
    const u = new Uniforms().u32('rows', rows).u32('w', w);
    if (opts.eps) u.f32('eps', attrs.eps!);
    if (opts.ignoreIndex) u.i32('ignoreIndex', attrs.ignoreIndex!);
    // labelCheck names the op whose labels (the last input) index the classes `w`.
    if (opts.labelCheck) {
      u.indexSlot(ctx.indexCheck({ op: opts.labelCheck, shape: shapeRef.shape, limit: w, what: 'classes', detail: `; ignoreIndex ${attrs.ignoreIndex}` }));
    }
    const wide = w > ROW_WG;
    const header = wide
      ? `@compute @workgroup_size(${ROW_WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= u.rows) { return; }
  let tid = lid.x;`
      : `${elementMain(WG, 'u.rows')}
  let row = i;
  let tid = 0u;`;
    const prog = program(
      `rows/${op}/${wide ? 'wg' : 'thread'}/${dtypes.join(',')}`,
      inputNames.length,
      1,
      () => `${enable}${WGSL_SPECIAL}
${storageBindings(bindings, [['out', wgslType(outDtype)]])}
${u.declaration(inputNames.length + 1)}
${opts.labelCheck ? indexCheckWgsl(inputNames.length + 2) : ''}
${rowPrelude(wide)}
${header}
  let o = row * u.w;
${expandLoops(rowBody, wide)}
}`,
      { indexChecks: opts.labelCheck !== undefined },
    );
    ctx.dispatch(prog, inputs, [out], u, wide ? rowGrid(rows) : grid(rows, WG));
    return out;
  };
}

const ROW_MAX = `  var mx = neg_inf_();
  FOR(j) { mx = maxNan(mx, x[o + j]); }
  mx = rmax(mx, tid);
  var se = 0.0;
  FOR(j) { se = se + exp(x[o + j] - mx); }
  se = rsum(se, tid);`;

const LN_STATS = `  var mean = 0.0;
  FOR(j) { mean = mean + x[o + j]; }
  mean = rsum(mean, tid) / f32(u.w);
  var v = 0.0;
  FOR(j) { let d = x[o + j] - mean; v = v + d * d; }
  let rstd = inverseSqrt(rsum(v, tid) / f32(u.w) + u.eps);`;

const RMS_STATS = `  var ms = 0.0;
  FOR(j) { ms = ms + x[o + j] * x[o + j]; }
  let rstd = inverseSqrt(rsum(ms, tid) / f32(u.w) + u.eps);`;

/** Registers the webgpu fused kernels (softmax family, cross-entropy, norms). */
export function registerWebGpuFusedKernels(): void {
  registerKernel('Softmax', 'webgpu', rowKernel('Softmax', [['x', 'f32']], `${ROW_MAX}
  FOR(j) { out[o + j] = exp(x[o + j] - mx) / se; }`));
  registerKernel('LogSoftmax', 'webgpu', rowKernel('LogSoftmax', [['x', 'f32']], `${ROW_MAX}
  let lse = log(se);
  FOR(j) { out[o + j] = x[o + j] - mx - lse; }`));
  registerKernel('SoftmaxGrad', 'webgpu', rowKernel('SoftmaxGrad', [['dy', 'f32'], ['y', 'f32']], `  var dot = 0.0;
  FOR(j) { dot = dot + dy[o + j] * y[o + j]; }
  dot = rsum(dot, tid);
  FOR(j) { out[o + j] = y[o + j] * (dy[o + j] - dot); }`));
  registerKernel('LogSoftmaxGrad', 'webgpu', rowKernel('LogSoftmaxGrad', [['dy', 'f32'], ['y', 'f32']], `  var s = 0.0;
  FOR(j) { s = s + dy[o + j]; }
  s = rsum(s, tid);
  FOR(j) { out[o + j] = dy[o + j] - exp(y[o + j]) * s; }`));
  // An out-of-range label gives NaN and is flagged (the next readback throws IndexError,
  // as the cpu kernel does at once). The row statistics are computed for every row so
  // that barriers stay in uniform control flow.
  registerKernel(
    'CrossEntropy',
    'webgpu',
    rowKernel(
      'CrossEntropy',
      [['x', 'f32'], ['labels', 'i32']],
      `${ROW_MAX}
  if (tid == 0u) {
    let label = labels[row];
    if (label == u.ignoreIndex) {
      out[row] = 0.0;
    } else if (label < 0 || u32(label) >= u.w) {
      report_bad_index(u.errSlot, row, label);
      out[row] = nan_();
    } else {
      out[row] = mx + log(se) - x[o + u32(label)];
    }
  }`,
      { outShape: (inputs) => [inputs[0].shape[0]], ignoreIndex: true, labelCheck: 'crossEntropy', outF32: true },
    ),
  );
  registerKernel(
    'CrossEntropyGrad',
    'webgpu',
    rowKernel(
      'CrossEntropyGrad',
      [['dy', 'f32'], ['x', 'f32'], ['labels', 'i32']],
      `${ROW_MAX}
  let label = labels[row];
  let ignored = label == u.ignoreIndex;
  let g = dy[row];
  FOR(j) {
    let onehot = select(0.0, 1.0, i32(j) == label);
    out[o + j] = select(g * (exp(x[o + j] - mx) / se - onehot), 0.0, ignored);
  }`,
      { rowsOf: 1, ignoreIndex: true },
    ),
  );
  registerKernel('LayerNorm', 'webgpu', rowKernel('LayerNorm', [['x', 'f32'], ['wt', 'f32'], ['bias', 'f32']], `${LN_STATS}
  FOR(j) { out[o + j] = (x[o + j] - mean) * rstd * wt[j] + bias[j]; }`, { eps: true }));
  registerKernel('LayerNormGrad', 'webgpu', rowKernel('LayerNormGrad', [['dy', 'f32'], ['x', 'f32'], ['wt', 'f32']], `${LN_STATS}
  var gm = 0.0;
  var gx = 0.0;
  FOR(j) {
    let g = dy[o + j] * wt[j];
    gm = gm + g;
    gx = gx + g * (x[o + j] - mean) * rstd;
  }
  gm = rsum(gm, tid) / f32(u.w);
  gx = rsum(gx, tid) / f32(u.w);
  FOR(j) {
    let xhat = (x[o + j] - mean) * rstd;
    out[o + j] = rstd * (dy[o + j] * wt[j] - gm - xhat * gx);
  }`, { rowsOf: 1, eps: true }));
  registerKernel('RmsNorm', 'webgpu', rowKernel('RmsNorm', [['x', 'f32'], ['wt', 'f32']], `${RMS_STATS}
  FOR(j) { out[o + j] = x[o + j] * rstd * wt[j]; }`, { eps: true }));
  registerKernel('RmsNormGrad', 'webgpu', rowKernel('RmsNormGrad', [['dy', 'f32'], ['x', 'f32'], ['wt', 'f32']], `${RMS_STATS}
  var gx = 0.0;
  FOR(j) { gx = gx + dy[o + j] * wt[j] * x[o + j] * rstd; }
  gx = rsum(gx, tid) / f32(u.w);
  FOR(j) { out[o + j] = rstd * (dy[o + j] * wt[j] - x[o + j] * rstd * gx); }`, { rowsOf: 1, eps: true }));
}
