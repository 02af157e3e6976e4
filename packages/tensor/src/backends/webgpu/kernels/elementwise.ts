import { DTypeError, ShapeError, fmtShape } from '../../../errors.js';
import { ACTIVATION_GRAD_OPS, ACTIVATION_OPS, type ActivationGradOp, BINARY_OPS, COMPARE_OPS, UNARY_OPS } from '../../../op-names.js';
import { registerKernel } from '../../../registry.js';
import { broadcastShapes, broadcastStrides, shapesEqual } from '../../../shape.js';
import type { Tensor } from '../../../tensor.js';
import { program } from '../program.js';
import type { WebGpuKernelContext } from '../../../kernel-context.js';
import { Uniforms, checkRank, elementMain, grid, storageBindings, stridedOffset, wgslType } from '../wgsl.js';
import { ACTIVATION_GRAD_WGSL, BINARY_WGSL, UNARY_WGSL, WGSL_MATH } from '../wgsl-math.js';
import { enableF16, floatIO } from '../f16.js';

const WG = 256;

function unaryKernel(op: string) {
  return (inputs: readonly Tensor[], _attrs: unknown, ctx: WebGpuKernelContext): Tensor => {
    const x = inputs[0];
    const io = floatIO(ctx, op, x.dtype);
    const out = ctx.output(x.shape, x.dtype, op);
    const key = `unary/${op}/${io.T}`;
    const u = new Uniforms().u32('size', x.size);
    const prog = program(key, 1, 1, () => `${io.enable}${WGSL_MATH}
${storageBindings([['xs', io.T]], [['out', io.T]])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  let x = ${io.load('xs[i]')};
  out[i] = ${io.store(UNARY_WGSL[op])};
}`);
    ctx.dispatch(prog, [x], [out], u, grid(x.size, WG));
    return out;
  };
}

/** An activation's input gradient `(dy, x) -> dx`, both of one shape: one elementwise kernel. */
function activationGradKernel(op: ActivationGradOp) {
  return (inputs: readonly Tensor[], _attrs: unknown, ctx: WebGpuKernelContext): Tensor => {
    const [dy, x] = inputs;
    if (!shapesEqual(dy.shape, x.shape)) throw new ShapeError(`${op}: dy ${fmtShape(dy.shape)} and x ${fmtShape(x.shape)} must have one shape`);
    const io = floatIO(ctx, op, x.dtype);
    const out = ctx.output(x.shape, x.dtype, op);
    const u = new Uniforms().u32('size', x.size);
    const prog = program(`activationGrad/${op}/${io.T}`, 2, 1, () => `${io.enable}${WGSL_MATH}
${storageBindings([['dys', io.T], ['xs', io.T]], [['out', io.T]])}
${u.declaration(3)}
${elementMain(WG, 'u.size')}
  let dy = ${io.load('dys[i]')};
  let x = ${io.load('xs[i]')};
  ${ACTIVATION_GRAD_WGSL[op]}
  out[i] = ${io.store('g')};
}`);
    ctx.dispatch(prog, [dy, x], [out], u, grid(x.size, WG));
    return out;
  };
}

/**
 * Broadcasting binary op. Variants (part of the pipeline key): `same` shapes,
 * `scalarA`/`scalarB` (one operand has one element), and `rankN` (general strides).
 */
function binaryKernel(op: string, boolOut: boolean) {
  return (inputs: readonly Tensor[], _attrs: unknown, ctx: WebGpuKernelContext): Tensor => {
    const [a, b] = inputs;
    if (op === 'Pow' && a.dtype !== 'f32' && a.dtype !== 'f16') throw new DTypeError(`pow: webgpu supports f32 and f16 only, got ${a.dtype}`);
    const shape = broadcastShapes(op, a.shape, b.shape);
    checkRank(op, shape);
    const out = ctx.output(shape, boolOut ? 'bool' : a.dtype, op);
    const T = wgslType(a.dtype);
    const O = wgslType(out.dtype);
    // f16 operands are compared and combined as f32 (exact widening), results rounded once.
    const io = floatIO(ctx, op, a.dtype === 'f16' ? 'f16' : 'f32');
    const result = boolOut ? BINARY_WGSL[op] : io.store(BINARY_WGSL[op]);
    let variant: string;
    let ia = 'i';
    let ib = 'i';
    let offsets = '';
    const u = new Uniforms().u32('size', out.size);
    if (shapesEqual(a.shape, b.shape)) variant = 'same';
    else if (b.size === 1 && shapesEqual(a.shape, shape)) {
      variant = 'scalarB';
      ib = '0u';
    } else if (a.size === 1 && shapesEqual(b.shape, shape)) {
      variant = 'scalarA';
      ia = '0u';
    } else {
      variant = `rank${shape.length}`;
      u.arr('shape', shape).arr('sa', broadcastStrides(a.shape, shape)).arr('sb', broadcastStrides(b.shape, shape));
      offsets = `${stridedOffset(shape.length, 'i', 'shape', 'sa', '0u', 'oa')}\n  ${stridedOffset(shape.length, 'i', 'shape', 'sb', '0u', 'ob')}`;
      ia = 'oa';
      ib = 'ob';
    }
    const key = `binary/${op}/${T}/${variant}`;
    const prog = program(key, 2, 1, () => `${io.enable}${WGSL_MATH}
${storageBindings([['as_', T], ['bs_', T]], [['out', O]])}
${u.declaration(3)}
${elementMain(WG, 'u.size')}
  ${offsets}
  let a = ${io.load(`as_[${ia}]`)};
  let b = ${io.load(`bs_[${ib}]`)};
  out[i] = ${result};
}`);
    ctx.dispatch(prog, [a, b], [out], u, grid(out.size, WG));
    return out;
  };
}

/** Registers the webgpu elementwise kernels. */
export function registerWebGpuElementwiseKernels(): void {
  for (const op of [...UNARY_OPS, ...ACTIVATION_OPS]) registerKernel(op, 'webgpu', unaryKernel(op));
  for (const op of ACTIVATION_GRAD_OPS) registerKernel(op, 'webgpu', activationGradKernel(op));
  for (const op of BINARY_OPS) registerKernel(op, 'webgpu', binaryKernel(op, false));
  for (const op of COMPARE_OPS) registerKernel(op, 'webgpu', binaryKernel(op, true));

  registerKernel('Where', 'webgpu', (inputs, _attrs, ctx) => {
    const [c, a, b] = inputs;
    const shape = broadcastShapes('where', broadcastShapes('where', c.shape, a.shape), b.shape);
    checkRank('where', shape);
    const out = ctx.output(shape, a.dtype, 'where');
    const T = wgslType(a.dtype);
    const C = wgslType(c.dtype);
    const u = new Uniforms()
      .u32('size', out.size)
      .arr('shape', shape)
      .arr('sc', broadcastStrides(c.shape, shape))
      .arr('sa', broadcastStrides(a.shape, shape))
      .arr('sb', broadcastStrides(b.shape, shape));
    const r = shape.length;
    const enable = enableF16(ctx, 'where', [c.dtype, a.dtype]);
    const prog = program(`where/${C}/${T}/rank${r}`, 3, 1, () => `${enable}${storageBindings([['cs', C], ['as_', T], ['bs_', T]], [['out', T]])}
${u.declaration(4)}
${elementMain(WG, 'u.size')}
  ${stridedOffset(r, 'i', 'shape', 'sc', '0u', 'oc')}
  ${stridedOffset(r, 'i', 'shape', 'sa', '0u', 'oa')}
  ${stridedOffset(r, 'i', 'shape', 'sb', '0u', 'ob')}
  out[i] = select(bs_[ob], as_[oa], cs[oc] != ${C}(0));
}`);
    ctx.dispatch(prog, [c, a, b], [out], u, grid(out.size, WG));
    return out;
  });
}
