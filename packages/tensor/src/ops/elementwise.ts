import { DTypeError } from '../errors.js';
import { engine } from '../engine.js';
import type { BinaryOp, CompareOp } from '../op-names.js';
import { broadcastShapes } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { takesScalarOperand } from './binary-scalar.js';
import { scalarLike } from './creation.js';
import { unary } from './unary.js';

/** A tensor, or a number broadcast as a scalar of the other operand's dtype. */
export type TensorOrScalar = Tensor | number;

/** Resolves a scalar operand to a tensor like the other operand; tracks what to dispose. */
function operands(name: string, a: TensorOrScalar, b: TensorOrScalar): [Tensor, Tensor, Tensor[]] {
  if (typeof a === 'number' && typeof b === 'number') throw new TypeError(`${name}: at least one operand must be a tensor`);
  // Name the op (not an internal accessor) when an operand was disposed.
  for (const t of [a, b]) if (typeof t !== 'number') t.liveStorage(name);
  const temps: Tensor[] = [];
  try {
    const ta = typeof a === 'number' ? (temps.push(scalarLike(b as Tensor, a)), temps[temps.length - 1]) : a;
    const tb = typeof b === 'number' ? (temps.push(scalarLike(ta, b)), temps[temps.length - 1]) : b;
    if (ta.dtype !== tb.dtype) {
      throw new DTypeError(`${name}: dtypes differ (${ta.dtype} ${JSON.stringify(ta.shape)} vs ${tb.dtype} ${JSON.stringify(tb.shape)}); cast first`);
    }
    if (ta.dtype === 'bool') {
      throw new DTypeError(`${name}: dtype ${ta.dtype} is storage-only here; cast to f32 first`);
    }
    broadcastShapes(name, ta.shape, tb.shape);
    return [ta, tb, temps];
  } catch (e) {
    // A scalar made for an operand that is then rejected must not outlive the call.
    for (const t of temps) t.dispose();
    throw e;
  }
}

/** Dtypes whose scalar fits the `BinaryScalar` kernel's one uniform word; others take the `Fill` path (and its checks). */
const WORD_DTYPES: ReadonlySet<string> = new Set(['f32', 'i32', 'u32']);

function binary(op: BinaryOp | CompareOp, name: string, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  // One operand a number: the scalar goes in the kernel's uniforms where the op allows.
  const scalarFirst = typeof a === 'number';
  const t = scalarFirst ? b : a;
  const value = scalarFirst ? a : b;
  if (typeof t !== 'number' && typeof value === 'number' && takesScalarOperand(op, scalarFirst)) {
    t.liveStorage(name); // a disposed operand's error names this op
    if (WORD_DTYPES.has(t.dtype)) return engine.runOp('BinaryScalar', [t], { op, value, scalarFirst });
  }
  const [ta, tb, temps] = operands(name, a, b);
  try {
    return engine.runOp(op, [ta, tb], {});
  } finally {
    for (const t of temps) t.dispose();
  }
}

/** `-x`, elementwise. Shape unchanged. */
export const neg = (x: Tensor) => unary('Neg', 'neg', x);
/** `|x|`. */
export const abs = (x: Tensor) => unary('Abs', 'abs', x);
/** `e^x`. */
export const exp = (x: Tensor) => unary('Exp', 'exp', x);
/** Natural log. */
export const log = (x: Tensor) => unary('Log', 'log', x);
/** Square root. */
export const sqrt = (x: Tensor) => unary('Sqrt', 'sqrt', x);
/** `1 / sqrt(x)`. */
export const rsqrt = (x: Tensor) => unary('Rsqrt', 'rsqrt', x);
/** Hyperbolic tangent. */
export const tanh = (x: Tensor) => unary('Tanh', 'tanh', x);
/** Logistic sigmoid `1 / (1 + e^-x)`. */
export const sigmoid = (x: Tensor) => unary('Sigmoid', 'sigmoid', x);
/** `max(x, 0)`. */
export const relu = (x: Tensor) => unary('Relu', 'relu', x);
/** The error function `erf(x)`. */
export const erf = (x: Tensor) => unary('Erf', 'erf', x);
/** Sine. */
export const sin = (x: Tensor) => unary('Sin', 'sin', x);
/** Cosine. */
export const cos = (x: Tensor) => unary('Cos', 'cos', x);
/** Sign: -1, 0 or 1. */
export const sign = (x: Tensor) => unary('Sign', 'sign', x);
/** `x * x`. */
export const square = (x: Tensor) => unary('Square', 'square', x);
/** `1 / x`. */
export const reciprocal = (x: Tensor) => unary('Reciprocal', 'reciprocal', x);
/** Round toward -infinity. */
export const floor = (x: Tensor) => unary('Floor', 'floor', x);

/** `a + b` with numpy broadcasting: `[...A] , [...B] -> broadcast(A, B)`. */
export const add = (a: TensorOrScalar, b: TensorOrScalar) => binary('Add', 'add', a, b);
/** `a - b` with broadcasting. */
export const sub = (a: TensorOrScalar, b: TensorOrScalar) => binary('Sub', 'sub', a, b);
/** `a * b` with broadcasting. */
export const mul = (a: TensorOrScalar, b: TensorOrScalar) => binary('Mul', 'mul', a, b);
/** `a / b` with broadcasting. */
export const div = (a: TensorOrScalar, b: TensorOrScalar) => binary('Div', 'div', a, b);
/** `a ** b` with broadcasting. */
export const pow = (a: TensorOrScalar, b: TensorOrScalar) => binary('Pow', 'pow', a, b);
/** Elementwise maximum (NaN propagates from `a`). */
export const maximum = (a: TensorOrScalar, b: TensorOrScalar) => binary('Maximum', 'maximum', a, b);
/** Elementwise minimum. */
export const minimum = (a: TensorOrScalar, b: TensorOrScalar) => binary('Minimum', 'minimum', a, b);

/** `a == b` as a `bool` tensor. */
export const equal = (a: TensorOrScalar, b: TensorOrScalar) => binary('Equal', 'equal', a, b);
/** `a != b`. */
export const notEqual = (a: TensorOrScalar, b: TensorOrScalar) => binary('NotEqual', 'notEqual', a, b);
/** `a < b`. */
export const less = (a: TensorOrScalar, b: TensorOrScalar) => binary('Less', 'less', a, b);
/** `a <= b`. */
export const lessEqual = (a: TensorOrScalar, b: TensorOrScalar) => binary('LessEqual', 'lessEqual', a, b);
/** `a > b`. */
export const greater = (a: TensorOrScalar, b: TensorOrScalar) => binary('Greater', 'greater', a, b);
/** `a >= b`. */
export const greaterEqual = (a: TensorOrScalar, b: TensorOrScalar) => binary('GreaterEqual', 'greaterEqual', a, b);

/**
 * `cond ? a : b` elementwise, all three broadcast together. `cond` is any dtype
 * (nonzero is true); `a` and `b` share a dtype.
 */
export function where(cond: Tensor, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  cond.liveStorage('where');
  const [ta, tb, temps] = operands('where', a, b);
  try {
    broadcastShapes('where', broadcastShapes('where', cond.shape, ta.shape), tb.shape);
    return engine.runOp('Where', [cond, ta, tb], {});
  } finally {
    for (const t of temps) t.dispose();
  }
}
