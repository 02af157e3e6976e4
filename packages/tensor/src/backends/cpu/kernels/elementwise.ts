import type { CpuKernelContext } from '../../../kernel-context.js';
import { erf } from '../../../math.js';
import { ACTIVATION_GRAD_OPS, ACTIVATION_OPS, type ActivationGradOp, type ActivationOp, BINARY_OPS, COMPARE_OPS, type BinaryOp, type CompareOp, UNARY_OPS, type UnaryOp } from '../../../op-names.js';
import { registerKernel } from '../../../registry.js';
import { broadcastShapes, broadcastStrides, shapesEqual } from '../../../shape.js';
import { ShapeError, fmtShape } from '../../../errors.js';
import type { Tensor } from '../../../tensor.js';
import { cpuData } from '../cpu-data.js';
import { widenF16 } from '../f16-widen.js';

/** Scalar definitions of the unary ops (computed in float64, stored in the output dtype). */
export const UNARY_FNS: Record<UnaryOp | ActivationOp, (x: number) => number> = {
  Neg: (x) => -x,
  Abs: Math.abs,
  Exp: Math.exp,
  Log: Math.log,
  Sqrt: Math.sqrt,
  Rsqrt: (x) => 1 / Math.sqrt(x),
  Tanh: Math.tanh,
  Sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  Relu: (x) => (x > 0 ? x : 0),
  Erf: erf,
  Gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  GeluTanh: (x) => 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))),
  Silu: (x) => x / (1 + Math.exp(-x)),
  Sin: Math.sin,
  Cos: Math.cos,
  Sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
  Square: (x) => x * x,
  Reciprocal: (x) => 1 / x,
  Floor: Math.floor,
};

/** `dy` times each activation's derivative at `x`, in float64 (the formulas of the composites). */
export const ACTIVATION_GRAD_FNS: Record<ActivationGradOp, (dy: number, x: number) => number> = {
  GeluGrad: (dy, x) => dy * (0.5 * (1 + erf(x / Math.SQRT2)) + x * Math.exp(-0.5 * x * x) * 0.3989422804014327),
  GeluTanhGrad: (dy, x) => {
    const t = Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x));
    const du = 0.7978845608028654 * (1 + 3 * 0.044715 * x * x);
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du);
  },
  SiluGrad: (dy, x) => {
    const s = 1 / (1 + Math.exp(-x));
    return dy * s * (1 + x * (1 - s));
  },
};

/** Scalar definitions of the binary ops. */
export const BINARY_FNS: Record<BinaryOp, (a: number, b: number) => number> = {
  Add: (a, b) => a + b,
  Sub: (a, b) => a - b,
  Mul: (a, b) => a * b,
  Div: (a, b) => a / b,
  Pow: (a, b) => Math.pow(a, b),
  Maximum: (a, b) => (a >= b || Number.isNaN(a) ? a : b),
  Minimum: (a, b) => (a <= b || Number.isNaN(a) ? a : b),
};

/** Scalar definitions of the comparisons (1 true, 0 false). */
export const COMPARE_FNS: Record<CompareOp, (a: number, b: number) => number> = {
  Equal: (a, b) => +(a === b),
  NotEqual: (a, b) => +(a !== b),
  Less: (a, b) => +(a < b),
  LessEqual: (a, b) => +(a <= b),
  Greater: (a, b) => +(a > b),
  GreaterEqual: (a, b) => +(a >= b),
};

/**
 * Visits every output coordinate of `outShape` in row-major order, calling `fn` with
 * the flat output index and the matching flat index of each input (broadcast strides).
 */
export function forEachBroadcast(outShape: readonly number[], inputs: readonly (readonly number[])[], fn: (o: number, idx: number[]) => void): void {
  const rank = outShape.length;
  const strides = inputs.map((s) => broadcastStrides(s, outShape));
  const total = outShape.reduce((a, b) => a * b, 1);
  const coord = new Array<number>(rank).fill(0);
  const idx = new Array<number>(inputs.length).fill(0);
  for (let o = 0; o < total; o++) {
    fn(o, idx);
    for (let d = rank - 1; d >= 0; d--) {
      coord[d]++;
      for (let j = 0; j < idx.length; j++) idx[j] += strides[j][d];
      if (coord[d] < outShape[d]) break;
      for (let j = 0; j < idx.length; j++) idx[j] -= strides[j][d] * outShape[d];
      coord[d] = 0;
    }
  }
}

function binaryKernel(opName: string, fn: (a: number, b: number) => number, boolOut: boolean) {
  return (inputs: readonly Tensor[], _attrs: unknown, ctx: CpuKernelContext): Tensor => {
    const [a, b] = inputs;
    const shape = broadcastShapes(opName, a.shape, b.shape);
    const out = ctx.output(shape, boolOut ? 'bool' : a.dtype, opName);
    const av = cpuData(a);
    const bv = cpuData(b);
    const ov = cpuData(out);
    forEachBroadcast(shape, [a.shape, b.shape], (o, [i, j]) => {
      ov[o] = fn(av[i], bv[j]);
    });
    return out;
  };
}

/** Registers the cpu kernels of this file. */
export function registerCpuElementwiseKernels(): void {
  for (const op of [...UNARY_OPS, ...ACTIVATION_OPS]) {
    const fn = UNARY_FNS[op];
    registerKernel(op, 'cpu', widenF16((inputs, _attrs, ctx) => {
      const x = inputs[0];
      const out = ctx.output(x.shape, x.dtype, op);
      const xv = cpuData(x);
      const ov = cpuData(out);
      for (let i = 0; i < xv.length; i++) ov[i] = fn(xv[i]);
      return out;
    }));
  }
  for (const op of ACTIVATION_GRAD_OPS) {
    const fn = ACTIVATION_GRAD_FNS[op];
    registerKernel(op, 'cpu', widenF16((inputs, _attrs, ctx) => {
      const [dy, x] = inputs;
      if (!shapesEqual(dy.shape, x.shape)) throw new ShapeError(`${op}: dy ${fmtShape(dy.shape)} and x ${fmtShape(x.shape)} must have one shape`);
      const out = ctx.output(x.shape, x.dtype, op);
      const [dv, xv, ov] = [cpuData(dy), cpuData(x), cpuData(out)];
      for (let i = 0; i < xv.length; i++) ov[i] = fn(dv[i], xv[i]);
      return out;
    }));
  }
  for (const op of BINARY_OPS) registerKernel(op, 'cpu', widenF16(binaryKernel(op, BINARY_FNS[op], false)));
  for (const op of COMPARE_OPS) registerKernel(op, 'cpu', widenF16(binaryKernel(op, COMPARE_FNS[op], true)));

  registerKernel('Where', 'cpu', widenF16((inputs, _attrs, ctx) => {
    const [c, a, b] = inputs;
    const shape = broadcastShapes('where', broadcastShapes('where', c.shape, a.shape), b.shape);
    const out = ctx.output(shape, a.dtype, 'where');
    const cv = cpuData(c);
    const av = cpuData(a);
    const bv = cpuData(b);
    const ov = cpuData(out);
    forEachBroadcast(shape, [c.shape, a.shape, b.shape], (o, [i, j, k]) => {
      ov[o] = cv[i] !== 0 ? av[j] : bv[k];
    });
    return out;
  }));
}
