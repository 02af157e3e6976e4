import { registerKernel } from '../../../registry.js';
import { sizeOf } from '../../../shape.js';
import { indexCheckWgsl } from '../index-checks.js';
import { program } from '../program.js';
import { Uniforms, checkRank, elementMain, grid, storageBindings, stridedOffset, wgslType } from '../wgsl.js';
import { fillTensor } from './creation.js';
import { enableF16 } from '../f16.js';

const WG = 256;

/** Registers the webgpu layout kernels: strided copy, cast, gather, scatter-add. */
export function registerWebGpuLayoutKernels(): void {
  registerKernel('StridedCopy', 'webgpu', (inputs, a, ctx) => {
    const x = inputs[0];
    checkRank('stridedCopy', a.shape);
    const out = ctx.output(a.outShape, x.dtype, 'stridedCopy');
    const count = sizeOf(a.shape);
    // Elements the copy does not reach get the fill value first (same pass, ordered).
    if (count < out.size) fillTensor(ctx, out, a.fill);
    const T = wgslType(x.dtype);
    const enable = enableF16(ctx, 'stridedCopy', [x.dtype]);
    const r = a.shape.length;
    const u = new Uniforms()
      .arr('shape', a.shape)
      .arr('sin', a.inStrides)
      .arr('sout', a.outStrides)
      .u32('size', count)
      .u32('inOffset', a.inOffset)
      .u32('outOffset', a.outOffset);
    const prog = program(`stridedCopy/${T}/rank${r}`, 1, 1, () => `${enable}${storageBindings([['xs', T]], [['out', T]])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  ${stridedOffset(r, 'i', 'shape', 'sin', 'u.inOffset', 'src')}
  ${stridedOffset(r, 'i', 'shape', 'sout', 'u.outOffset', 'dst')}
  out[dst] = xs[src];
}`);
    ctx.dispatch(prog, [x], [out], u, grid(count, WG));
    return out;
  });

  registerKernel('Cast', 'webgpu', (inputs, { dtype }, ctx) => {
    const x = inputs[0];
    const out = ctx.output(x.shape, dtype, 'cast');
    const from = x.dtype;
    const S = wgslType(from);
    const D = wgslType(dtype);
    const needsF16 = enableF16(ctx, 'cast', [from, dtype]) !== '';
    const expr = dtype === 'bool' ? `u32(v != ${S}(0))` : `${D}(v)`;
    const u = new Uniforms().u32('size', x.size);
    const prog = program(`cast/${from}/${dtype}`, 1, 1, () => `${needsF16 ? 'enable f16;\n' : ''}${storageBindings([['xs', S]], [['out', D]])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  let v = xs[i];
  out[i] = ${expr};
}`);
    ctx.dispatch(prog, [x], [out], u, grid(x.size, WG));
    return out;
  });

  registerKernel('Gather', 'webgpu', (inputs, _a, ctx) => {
    const [x, idx] = inputs;
    const rowSize = sizeOf(x.shape.slice(1));
    const out = ctx.output([...idx.shape, ...x.shape.slice(1)], x.dtype, 'gather');
    const T = wgslType(x.dtype);
    const enable = enableF16(ctx, 'gather', [x.dtype]);
    const slot = ctx.indexCheck({ op: 'gather', shape: x.shape, limit: x.shape[0], what: 'rows' });
    const u = new Uniforms().u32('size', out.size).u32('rowSize', rowSize).u32('rows', x.shape[0]).indexSlot(slot);
    const prog = program(
      `gather/${T}`,
      2,
      1,
      () => `${enable}${storageBindings([['xs', T], ['idx', 'i32']], [['out', T]])}
${u.declaration(3)}
${indexCheckWgsl(4)}
${elementMain(WG, 'u.size')}
  let r = i / u.rowSize;
  let c = i % u.rowSize;
  let row = idx[r];
  // WGSL cannot raise: flag the index (the next readback throws IndexError) and write 0.
  if (row < 0 || u32(row) >= u.rows) {
    if (c == 0u) { report_bad_index(u.errSlot, r, row); }
    out[i] = ${T}(0);
    return;
  }
  out[i] = xs[u32(row) * u.rowSize + c];
}`,
      { indexChecks: true },
    );
    ctx.dispatch(prog, [x, idx], [out], u, grid(out.size, WG));
    return out;
  });

  // Float atomics are not in WebGPU: add with a compare-exchange loop on the f32 bits.
  // The summation order of duplicate indices is therefore not fixed (rounding may vary).
  // An f16 source accumulates in f32 too (no f16 atomics; f32 sums are also what the cpu
  // reference computes), and the sums are rounded once to f16 by a cast at the end.
  registerKernel('ScatterAdd', 'webgpu', (inputs, { numRows }, ctx) => {
    const [src, idx] = inputs;
    const rest = src.shape.slice(idx.rank);
    const rowSize = sizeOf(rest);
    const S = wgslType(src.dtype);
    const enable = enableF16(ctx, 'scatterAdd', [src.dtype]);
    const out = ctx.output([numRows, ...rest], 'f32', 'scatterAdd');
    fillTensor(ctx, out, 0);
    const slot = ctx.indexCheck({ op: 'scatterAdd', shape: [numRows, ...rest], limit: numRows, what: 'rows' });
    const u = new Uniforms().u32('size', src.size).u32('rowSize', rowSize).u32('rows', numRows).indexSlot(slot);
    const prog = program(
      `scatterAdd/${S}`,
      2,
      1,
      () => `${enable}${storageBindings([['src', S], ['idx', 'i32']], [['out', 'atomic<u32>']])}
${u.declaration(3)}
${indexCheckWgsl(4)}
${elementMain(WG, 'u.size')}
  let r = i / u.rowSize;
  let c = i % u.rowSize;
  let row = idx[r];
  if (row < 0 || u32(row) >= u.rows) {
    if (c == 0u) { report_bad_index(u.errSlot, r, row); }
    return;
  }
  let at_ = u32(row) * u.rowSize + c;
  let v = f32(src[i]);
  var old = atomicLoad(&out[at_]);
  loop {
    let res = atomicCompareExchangeWeak(&out[at_], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (res.exchanged) { break; }
    old = res.old_value;
  }
}`,
      { indexChecks: true },
    );
    ctx.dispatch(prog, [src, idx], [out], u, grid(src.size, WG));
    if (src.dtype !== 'f16') return out;
    const half = ctx.run('Cast', [out], { dtype: 'f16' });
    out.dispose();
    return half;
  });
}

