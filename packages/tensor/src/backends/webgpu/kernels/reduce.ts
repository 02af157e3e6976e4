import { engine } from '../../../engine.js';
import { registerKernel } from '../../../registry.js';
import { stridesOf } from '../../../shape.js';
import { reducedShape } from '../../cpu/kernels/reduce.js';
import { program, runKernel } from '../run-kernel.js';
import type { WebGpuBackend } from '../webgpu-backend.js';
import { WGSL_SPECIAL } from '../wgsl-math.js';
import { Uniforms, checkRank, elementMain, grid, storageBindings, stridedOffset, wgslType } from '../wgsl.js';

const WG = 64;

/**
 * Reductions over any set of axes: one thread per output element walks the reduced
 * elements through their strides (no permute copy). Sum accumulates in f32.
 */
function reduceKernel(name: 'Sum' | 'Max' | 'ArgMax') {
  registerKernel(name, 'webgpu', (inputs, attrs, backend) => {
    const x = inputs[0];
    checkRank(name, x.shape);
    const out = engine.makeTensor(backend, reducedShape(x.shape, attrs), name === 'ArgMax' ? 'i32' : x.dtype, name);
    const strides = stridesOf(x.shape);
    const kept = x.shape.map((_, i) => i).filter((i) => !attrs.axes.includes(i));
    const keptShape = kept.map((i) => x.shape[i]);
    const redShape = attrs.axes.map((i) => x.shape[i]);
    const redCount = redShape.reduce((p, d) => p * d, 1);
    const T = wgslType(x.dtype);
    const u = new Uniforms()
      .arr('kshape', keptShape)
      .arr('kstrides', kept.map((i) => strides[i]))
      .arr('rshape', redShape)
      .arr('rstrides', attrs.axes.map((i) => strides[i]))
      .u32('size', out.size)
      .u32('count', redCount);
    const init = name === 'Sum' ? `${T}(0)` : T === 'f32' ? 'neg_inf_()' : T === 'i32' ? 'i32(-2147483647 - 1)' : '0u';
    const step =
      name === 'Sum'
        ? 'acc = acc + v;'
        : `if (v > acc || (v != v && acc == acc)) { acc = v; arg = k; }`;
    const result = name === 'ArgMax' ? 'i32(arg)' : 'acc';
    const prog = program(`reduce/${name}/${T}/k${kept.length}/r${redShape.length}`, 1, 1, () => `${WGSL_SPECIAL}
${storageBindings([['xs', T]], [['out', name === 'ArgMax' ? 'i32' : T]])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  ${kept.length > 0 ? stridedOffset(kept.length, 'i', 'kshape', 'kstrides', '0u', 'base') : 'let base = 0u;'}
  var acc = ${init};
  var arg = 0u;
  for (var k = 0u; k < u.count; k++) {
    ${redShape.length > 0 ? stridedOffset(redShape.length, 'k', 'rshape', 'rstrides', 'base', 'at_') : 'let at_ = base;'}
    let v = xs[at_];
    ${step}
  }
  out[i] = ${result};
}`);
    runKernel(backend as WebGpuBackend, prog, [x], [out], u, grid(out.size, WG));
    return out;
  });
}

/** Registers the webgpu reductions and cumulative sum. */
export function registerWebGpuReduceKernels(): void {
  reduceKernel('Sum');
  reduceKernel('Max');
  reduceKernel('ArgMax');

  registerKernel('CumSum', 'webgpu', (inputs, { axis }, backend) => {
    const x = inputs[0];
    const out = engine.makeTensor(backend, x.shape, x.dtype, 'cumsum');
    const n = x.shape[axis];
    const inner = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const outer = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const T = wgslType(x.dtype);
    const u = new Uniforms().u32('lines', outer * inner).u32('n', n).u32('inner', inner);
    const prog = program(`cumsum/${T}`, 1, 1, () => `${storageBindings([['xs', T]], [['out', T]])}
${u.declaration(2)}
${elementMain(WG, 'u.lines')}
  let o = i / u.inner;
  let j = i % u.inner;
  var s = ${T}(0);
  for (var k = 0u; k < u.n; k++) {
    let at_ = (o * u.n + k) * u.inner + j;
    s = s + xs[at_];
    out[at_] = s;
  }
}`);
    runKernel(backend as WebGpuBackend, prog, [x], [out], u, grid(outer * inner, WG));
    return out;
  });
}
