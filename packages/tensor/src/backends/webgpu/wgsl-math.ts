import type { ActivationGradOp } from '../../op-names.js';

/**
 * Infinity and NaN at run time: WGSL rejects them as constant expressions, so their
 * bits live in private variables the compiler cannot fold.
 */
export const WGSL_SPECIAL = /* wgsl */ `
var<private> INF_BITS: u32 = 0x7f800000u;
var<private> NEG_INF_BITS: u32 = 0xff800000u;
var<private> NAN_BITS: u32 = 0x7fc00000u;
fn inf_() -> f32 { return bitcast<f32>(INF_BITS); }
fn neg_inf_() -> f32 { return bitcast<f32>(NEG_INF_BITS); }
fn nan_() -> f32 { return bitcast<f32>(NAN_BITS); }
`;

/**
 * WGSL versions of the scalar formulas in `math.ts` and of functions WGSL lacks or
 * defines differently from PyTorch (tanh overflow, pow of negative bases).
 */
export const WGSL_MATH = /* wgsl */ `
${WGSL_SPECIAL}
fn erf_(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
fn tanh_(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}
// sin and cos with Cody-Waite reduction by pi/2 and the Cephes sinf/cosf polynomials:
// a few ulp on every adapter, where WGSL's builtins only promise 2^-11 absolute error
// (SwiftShader is off by ~2e-4 near +-1.5).
fn sincos_reduce_(x: f32) -> vec2<f32> {
  let k = round(x * 0.6366197723675814);
  let r = ((x - k * 1.5703125) - k * 4.837512969970703e-4) - k * 7.549789954891882e-8;
  return vec2<f32>(r, k);
}
fn sin_poly_(r: f32) -> f32 {
  let z = r * r;
  return ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
}
fn cos_poly_(r: f32) -> f32 {
  let z = r * r;
  return ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z - 0.5 * z + 1.0;
}
fn sin_(x: f32) -> f32 {
  let rk = sincos_reduce_(x);
  let q = i32(rk.y) & 3;
  let s = sin_poly_(rk.x);
  let c = cos_poly_(rk.x);
  return select(select(select(-c, -s, q == 2), c, q == 1), s, q == 0);
}
fn cos_(x: f32) -> f32 {
  let rk = sincos_reduce_(x);
  let q = i32(rk.y) & 3;
  let s = sin_poly_(rk.x);
  let c = cos_poly_(rk.x);
  return select(select(select(s, -c, q == 2), -s, q == 1), c, q == 0);
}
fn sigmoid_(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}
fn pow_(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (a == 0.0) { return select(0.0, inf_(), b < 0.0); }
  let r = exp2(b * log2(abs(a)));
  if (a > 0.0) { return r; }
  if (floor(b) != b) { return nan_(); }
  let odd = (abs(b) % 2.0) == 1.0;
  return select(r, -r, odd);
}
`;

/** WGSL expression of each unary op on `x` (f32). */
export const UNARY_WGSL: Record<string, string> = {
  Neg: '-x',
  Abs: 'abs(x)',
  Exp: 'exp(x)',
  Log: 'log(x)',
  Sqrt: 'sqrt(x)',
  Rsqrt: 'inverseSqrt(x)',
  Tanh: 'tanh_(x)',
  Sigmoid: 'sigmoid_(x)',
  Relu: 'max(x, 0.0)',
  Erf: 'erf_(x)',
  Gelu: '0.5 * x * (1.0 + erf_(x * 0.7071067811865476))',
  GeluTanh: '0.5 * x * (1.0 + tanh_(0.7978845608028654 * (x + 0.044715 * x * x * x)))',
  Silu: 'x * sigmoid_(x)',
  Sin: 'sin_(x)',
  Cos: 'cos_(x)',
  Sign: 'sign(x)',
  Square: 'x * x',
  Reciprocal: '1.0 / x',
  Floor: 'floor(x)',
};

/**
 * WGSL body of each activation's gradient on `dy`, `x` (f32), ending in `let g = ...;`
 * (`dy` times the derivative; formulas as in the composites of `ops/activations.ts`).
 */
export const ACTIVATION_GRAD_WGSL: Record<ActivationGradOp, string> = {
  GeluGrad: `let cdf = 0.5 * (1.0 + erf_(x * 0.7071067811865476));
  let pdf = exp(-0.5 * x * x) * 0.3989422804014327;
  let g = dy * (cdf + x * pdf);`,
  GeluTanhGrad: `let x2 = x * x;
  let t = tanh_(0.7978845608028654 * (x + 0.044715 * x2 * x));
  let du = 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x2);
  let g = dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du);`,
  SiluGrad: `let s = sigmoid_(x);
  let g = dy * (s * (1.0 + x * (1.0 - s)));`,
};

/** WGSL expression of each binary op on `a`, `b` (of the tensors' type). */
export const BINARY_WGSL: Record<string, string> = {
  Add: 'a + b',
  Sub: 'a - b',
  Mul: 'a * b',
  Div: 'a / b',
  Pow: 'pow_(a, b)',
  Maximum: 'select(b, a, a >= b || a != a)',
  Minimum: 'select(b, a, a <= b || a != a)',
  Equal: 'u32(a == b)',
  NotEqual: 'u32(a != b)',
  Less: 'u32(a < b)',
  LessEqual: 'u32(a <= b)',
  Greater: 'u32(a > b)',
  GreaterEqual: 'u32(a >= b)',
};
