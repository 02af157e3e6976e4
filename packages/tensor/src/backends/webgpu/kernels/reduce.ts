import { registerKernel } from '../../../registry.js';
import { stridesOf } from '../../../shape.js';
import { reducedShape } from '../../cpu/kernels/reduce.js';
import { program } from '../program.js';
import { WGSL_SPECIAL } from '../wgsl-math.js';
import { WGSL_MAX_NAN } from './wgsl-max-nan.js';
import { enableF16 } from '../f16.js';
import { Uniforms, checkRank, elementMain, grid, rowGrid, storageBindings, stridedOffset, wgslType } from '../wgsl.js';

const WG = 64;
/** Threads that share one output in the workgroup-parallel variant. */
const RED_WG = 64;
/** Reduced extents from which one workgroup per output beats one thread per output. */
const WIDE_MIN_COUNT = 256;

type ReduceName = 'Sum' | 'Max' | 'ArgMax';

/**
 * Reductions over any set of axes, walking the reduced elements through their strides
 * (no permute copy). Two variants: one thread per output (`thread`, short extents), and
 * one workgroup per output (`wg`, extents >= 256: row sums over a hidden size, bias
 * gradients over 4096 tokens), where 64 threads stride over the reduced elements and a
 * shared-memory tree combines their partials. Sum accumulates in the input type (f32; f32 for f16 inputs).
 * Max/ArgMax keep the cpu semantics: NaN propagates (the first NaN wins), else the first
 * maximum wins.
 */
function reduceKernel(name: ReduceName) {
  registerKernel(name, 'webgpu', (inputs, attrs, ctx) => {
    const x = inputs[0];
    checkRank(name, x.shape);
    const out = ctx.output(reducedShape(x.shape, attrs), name === 'ArgMax' ? 'i32' : x.dtype, name);
    const strides = stridesOf(x.shape);
    const kept = x.shape.map((_, i) => i).filter((i) => !attrs.axes.includes(i));
    const keptShape = kept.map((i) => x.shape[i]);
    const redShape = attrs.axes.map((i) => x.shape[i]);
    const redCount = redShape.reduce((p, d) => p * d, 1);
    const T = wgslType(x.dtype);
    // f16 elements are reduced in f32 (A, the accumulator type) and the result rounded once.
    const half = x.dtype === 'f16';
    const A = half ? 'f32' : T;
    const enable = enableF16(ctx, name, [x.dtype]);
    const load = (e: string) => (half ? `f32(${e})` : e);
    const store = (e: string) => (half && name !== 'ArgMax' ? `f16(${e})` : e);
    const u = new Uniforms()
      .arr('kshape', keptShape)
      .arr('kstrides', kept.map((i) => strides[i]))
      .arr('rshape', redShape)
      .arr('rstrides', attrs.axes.map((i) => strides[i]))
      .u32('size', out.size)
      .u32('count', redCount);
    const init = name === 'Sum' ? `${A}(0)` : A === 'f32' ? 'neg_inf_()' : A === 'i32' ? 'i32(-2147483647 - 1)' : '0u';
    // Strictly greater (or the first NaN) replaces: scanning k upwards keeps the first maximum.
    const step = name === 'Sum' ? 'acc = acc + v;' : `if (v > acc || (nan(v) && !nan(acc))) { acc = v; arg = k; }`;
    const wide = redCount >= WIDE_MIN_COUNT && out.size > 0;
    const OutT = name === 'ArgMax' ? 'i32' : T;
    const baseOffset = kept.length > 0 ? stridedOffset(kept.length, 'i', 'kshape', 'kstrides', '0u', 'base') : 'let base = 0u;';
    const elemOffset = redShape.length > 0 ? stridedOffset(redShape.length, 'k', 'rshape', 'rstrides', 'base', 'at_') : 'let at_ = base;';
    // NaN test of the element type (integers have none).
    const nanFn = `${WGSL_MAX_NAN}\nfn nan(x: ${A}) -> bool { return ${A === 'f32' ? 'isNan(x)' : 'false'}; }`;
    const source = wide
      ? () => `${enable}${WGSL_SPECIAL}
${nanFn}
${storageBindings([['xs', T]], [['out', OutT]])}
${u.declaration(2)}
var<workgroup> vals: array<${A}, ${RED_WG}>;
var<workgroup> args: array<u32, ${RED_WG}>;
@compute @workgroup_size(${RED_WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = wid.x + wid.y * nwg.x;
  if (i >= u.size) { return; }
  let tid = lid.x;
  ${baseOffset}
  var acc = ${init};
  // No element seen: ties at the initial value resolve to index 0 like the cpu kernel.
  var arg = 0xffffffffu;
  for (var k = tid; k < u.count; k += ${RED_WG}u) {
    ${elemOffset}
    let v = ${load('xs[at_]')};
    ${step}
  }
  vals[tid] = acc;
  args[tid] = arg;
  workgroupBarrier();
  for (var s = ${RED_WG / 2}u; s > 0u; s = s >> 1u) {
    if (tid < s) {
      ${
        name === 'Sum'
          ? 'vals[tid] = vals[tid] + vals[tid + s];'
          : `let a = vals[tid];
      let b = vals[tid + s];
      let aNan = nan(a);
      let bNan = nan(b);
      // Partner wins when it is the lowest NaN, or (no NaN) larger, or equal at a lower index.
      var takeB = false;
      if (aNan != bNan) { takeB = bNan; }
      else if (aNan || a == b) { takeB = args[tid + s] < args[tid]; }
      else { takeB = b > a; }
      if (takeB) { vals[tid] = b; args[tid] = args[tid + s]; }`
      }
    }
    workgroupBarrier();
  }
  if (tid == 0u) {
    ${name === 'ArgMax' ? 'out[i] = i32(select(args[0], 0u, args[0] == 0xffffffffu));' : `out[i] = ${store('vals[0]')};`}
  }
}`
      : () => `${enable}${WGSL_SPECIAL}
${nanFn}
${storageBindings([['xs', T]], [['out', OutT]])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  ${baseOffset}
  var acc = ${init};
  var arg = 0u;
  for (var k = 0u; k < u.count; k++) {
    ${elemOffset}
    let v = ${load('xs[at_]')};
    ${step}
  }
  out[i] = ${name === 'ArgMax' ? 'i32(arg)' : store('acc')};
}`;
    const prog = program(`reduce/${name}/${T}/${wide ? 'wg' : 'thread'}/k${kept.length}/r${redShape.length}`, 1, 1, source);
    ctx.dispatch(prog, [x], [out], u, wide ? rowGrid(out.size) : grid(out.size, WG));
    return out;
  });
}

/** Registers the webgpu reductions and cumulative sum. */
export function registerWebGpuReduceKernels(): void {
  reduceKernel('Sum');
  reduceKernel('Max');
  reduceKernel('ArgMax');

  registerKernel('CumSum', 'webgpu', (inputs, { axis }, ctx) => {
    const x = inputs[0];
    const out = ctx.output(x.shape, x.dtype, 'cumsum');
    const n = x.shape[axis];
    const inner = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const outer = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const T = wgslType(x.dtype);
    // f16: the running sum is kept in f32; each prefix is rounded once when stored.
    const half = x.dtype === 'f16';
    const enable = enableF16(ctx, 'cumsum', [x.dtype]);
    const u = new Uniforms().u32('lines', outer * inner).u32('n', n).u32('inner', inner);
    const prog = program(`cumsum/${T}`, 1, 1, () => `${enable}${storageBindings([['xs', T]], [['out', T]])}
${u.declaration(2)}
${elementMain(WG, 'u.lines')}
  let o = i / u.inner;
  let j = i % u.inner;
  var s = ${half ? 'f32' : T}(0);
  for (var k = 0u; k < u.n; k++) {
    let at_ = (o * u.n + k) * u.inner + j;
    s = s + ${half ? 'f32(xs[at_])' : 'xs[at_]'};
    out[at_] = ${half ? 'f16(s)' : 's'};
  }
}`);
    ctx.dispatch(prog, [x], [out], u, grid(outer * inner, WG));
    return out;
  });
}
