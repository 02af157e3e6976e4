/** The webgpu `BinaryScalar` kernel: one elementwise pass, the scalar as a uniform word. */
import { DTypeError } from '../../../errors.js';
import { registerKernel } from '../../../registry.js';
import { checkBinaryScalar, isCompareOp } from '../../../ops/binary-scalar.js';
import { program } from '../program.js';
import { Uniforms, elementMain, grid, storageBindings, wgslType } from '../wgsl.js';
import { BINARY_WGSL } from '../wgsl-math.js';
import { wordOf } from './creation.js';

const WG = 256;

/** Registers the webgpu `BinaryScalar` kernel. */
export function registerWebGpuBinaryScalarKernel(): void {
  registerKernel('BinaryScalar', 'webgpu', (inputs, { op, value, scalarFirst }, ctx) => {
    checkBinaryScalar(op, scalarFirst);
    const x = inputs[0];
    // The scalar is one 32-bit uniform word of x's dtype (see wordOf).
    if (x.dtype !== 'f32' && x.dtype !== 'i32' && x.dtype !== 'u32') throw new DTypeError(`BinaryScalar ${op}: webgpu takes f32, i32 or u32, got ${x.dtype}`);
    const out = ctx.output(x.shape, isCompareOp(op) ? 'bool' : x.dtype, op);
    const T = wgslType(x.dtype);
    // The scalar's bits exactly as `Fill` would store them in x's dtype, so the result is the old path's.
    const u = new Uniforms().u32('size', x.size).u32('word', wordOf(x.dtype, value));
    const key = `binary-scalar/${op}/${T}/${scalarFirst ? 'first' : 'second'}`;
    const prog = program(key, 1, 1, () => `${storageBindings([['xs', T]], [['out', wgslType(out.dtype)]])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  let s = bitcast<${T}>(u.word);
  let a = ${scalarFirst ? 's' : 'xs[i]'};
  let b = ${scalarFirst ? 'xs[i]' : 's'};
  out[i] = ${BINARY_WGSL[op]};
}`);
    ctx.dispatch(prog, [x], [out], u, grid(x.size, WG));
    return out;
  });
}
