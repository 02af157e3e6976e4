import * as T from '@webpeft/tensor';
import { DTypeError, ShapeError, type Tensor, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type HostInput, awayFromZero, broadcastIndex, coarse, coordsOf, expectBackendsAgree, ints, runOn, uniform } from './conformance.js';

beforeAll(async () => {
  await initBackends();
});

/** Shapes of the unary conformance runs: odd sizes, size-1 dims, a scalar and empty tensors. */
const UNARY_SHAPES: number[][] = [[7], [3, 5], [2, 3, 5], [1, 1], [], [0], [2, 0, 3]];

/**
 * Float64 definitions of the unary ops, written here independently of the kernels,
 * with the input range each is tested on.
 */
const erf = (x: number): number => {
  // Abramowitz-Stegun 7.1.26 is too coarse; integrate the series instead (|x| <= 4 here).
  let sum = 0;
  let term = x;
  for (let n = 0; n < 200; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
};
const UNARY: Record<string, { fn: (x: Tensor) => Tensor; ref: (x: number) => number; input: (shape: number[], seed: number) => HostInput }> = {
  neg: { fn: T.neg, ref: (x) => -x, input: (s, k) => uniform(s, k, -3, 3) },
  abs: { fn: T.abs, ref: Math.abs, input: (s, k) => uniform(s, k, -3, 3) },
  exp: { fn: T.exp, ref: Math.exp, input: (s, k) => uniform(s, k, -4, 4) },
  log: { fn: T.log, ref: Math.log, input: (s, k) => uniform(s, k, 0.05, 5) },
  sqrt: { fn: T.sqrt, ref: Math.sqrt, input: (s, k) => uniform(s, k, 0.05, 5) },
  rsqrt: { fn: T.rsqrt, ref: (x) => 1 / Math.sqrt(x), input: (s, k) => uniform(s, k, 0.05, 5) },
  tanh: { fn: T.tanh, ref: Math.tanh, input: (s, k) => uniform(s, k, -4, 4) },
  sigmoid: { fn: T.sigmoid, ref: (x) => 1 / (1 + Math.exp(-x)), input: (s, k) => uniform(s, k, -6, 6) },
  relu: { fn: T.relu, ref: (x) => Math.max(x, 0), input: (s, k) => uniform(s, k, -3, 3) },
  erf: { fn: T.erf, ref: erf, input: (s, k) => uniform(s, k, -3, 3) },
  gelu: { fn: T.gelu, ref: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)), input: (s, k) => uniform(s, k, -4, 4) },
  geluTanh: {
    fn: T.geluTanh,
    ref: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
    input: (s, k) => uniform(s, k, -4, 4),
  },
  silu: { fn: T.silu, ref: (x) => x / (1 + Math.exp(-x)), input: (s, k) => uniform(s, k, -6, 6) },
  sin: { fn: T.sin, ref: Math.sin, input: (s, k) => uniform(s, k, -3, 3) },
  cos: { fn: T.cos, ref: Math.cos, input: (s, k) => uniform(s, k, -3, 3) },
  sign: { fn: T.sign, ref: Math.sign, input: (s, k) => coarse(s, k) },
  square: { fn: T.square, ref: (x) => x * x, input: (s, k) => uniform(s, k, -3, 3) },
  reciprocal: { fn: T.reciprocal, ref: (x) => 1 / x, input: (s, k) => awayFromZero(s, k) },
  floor: { fn: T.floor, ref: Math.floor, input: (s, k) => uniform(s, k, -3, 3) },
};

// Exact ops (neg, abs, relu, sign, square, floor) must agree to f32 rounding; the
// transcendental ones use the GPU's native exp/log/sin/cos/inverseSqrt whose WGSL accuracy
// bounds are a few ulp (and 2^-11 absolute for sin/cos on [-pi, pi]), hence 1e-4 / 1e-5.
const EXACT = new Set(['neg', 'abs', 'relu', 'sign', 'square', 'floor', 'reciprocal']);

describe('unary ops: webgpu vs cpu, cpu vs float64 reference', () => {
  for (const [name, { fn, ref, input }] of Object.entries(UNARY)) {
    it(name, async () => {
      let seed = 11;
      for (const shape of UNARY_SHAPES) {
        const x = input(shape, seed++);
        const tol = EXACT.has(name) ? { rtol: 1e-6, atol: 0 } : { rtol: 1e-4, atol: 2e-5 };
        const [cpu] = await expectBackendsAgree(fn, [x], tol, `${name} ${JSON.stringify(shape)}`);
        // The cpu kernel computes in float64 then rounds to f32: within f32 rounding of the reference.
        expectClose(cpu.values, Array.from(x.data, ref), { rtol: 2e-7, atol: 1e-7, label: `${name} cpu vs reference` });
        expect(cpu.shape).toEqual(shape);
      }
    });
  }

  it('sin and cos stay within a few ulp on [-100, 100] on every adapter', async () => {
    const x = uniform([257], 21, -100, 100);
    // The webgpu kernels reduce by pi/2 themselves: WGSL's builtins only promise 2^-11 absolute.
    const [s, c] = await expectBackendsAgree((t) => [T.sin(t), T.cos(t)], [x], { rtol: 0, atol: 1e-6 }, 'sin/cos wide');
    expectClose(s.values, Array.from(x.data, Math.sin), { rtol: 0, atol: 1e-7, label: 'sin cpu' });
    expectClose(c.values, Array.from(x.data, Math.cos), { rtol: 0, atol: 1e-7, label: 'cos cpu' });
  });

  it('f64 on cpu keeps float64 precision', async () => {
    const x = uniform([9], 5, -2, 2);
    const x64 = { data: Float64Array.from(x.data), shape: x.shape };
    const [out] = await runOn('cpu', T.tanh, [x64]);
    expect(out.dtype).toBe('f64');
    expectClose(out.values, Array.from(x64.data, Math.tanh), { rtol: 1e-15, atol: 0, label: 'tanh f64' });
  });
});

/** Binary shape pairs: equal, broadcast both ways, scalars, size-1 dims and empty dims. */
const BINARY_SHAPES: [number[], number[]][] = [
  [[7], [7]],
  [[3, 5], [3, 5]],
  [[3, 1], [1, 5]],
  [[4, 1, 3], [3]],
  [[], [2, 3]],
  [[2, 3], []],
  [[1], [5]],
  [[2, 3, 5], [2, 1, 5]],
  [[5, 1, 1, 2], [3, 1]],
  [[1, 1], [1, 1]],
  [[0], [0]],
  [[2, 0, 3], [3]],
  [[2, 0, 3], [1, 1, 1]],
  [[0, 4], [1, 4]],
];

function binaryRef(a: HostInput, b: HostInput, f: (x: number, y: number) => number): { shape: number[]; values: number[] } {
  const rank = Math.max(a.shape.length, b.shape.length);
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a.shape[a.shape.length - rank + i] ?? 1;
    const db = b.shape[b.shape.length - rank + i] ?? 1;
    shape.push(da === 1 ? db : da);
  }
  const n = shape.reduce((p, d) => p * d, 1);
  const values: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = coordsOf(i, shape);
    values.push(f(a.data[broadcastIndex(c, a.shape)], b.data[broadcastIndex(c, b.shape)]));
  }
  return { shape, values };
}

const BINARY: Record<string, { fn: (a: Tensor, b: Tensor) => Tensor; ref: (a: number, b: number) => number; b?: (s: number[], k: number) => HostInput; a?: (s: number[], k: number) => HostInput }> = {
  add: { fn: T.add, ref: (a, b) => a + b },
  sub: { fn: T.sub, ref: (a, b) => a - b },
  mul: { fn: T.mul, ref: (a, b) => a * b },
  div: { fn: T.div, ref: (a, b) => a / b, b: awayFromZero },
  pow: { fn: T.pow, ref: Math.pow, a: (s, k) => uniform(s, k, 0.1, 3), b: (s, k) => uniform(s, k, -2, 2) },
  maximum: { fn: T.maximum, ref: Math.max, a: coarse, b: coarse },
  minimum: { fn: T.minimum, ref: Math.min, a: coarse, b: coarse },
};

describe('binary ops with broadcasting: webgpu vs cpu, cpu vs reference', () => {
  for (const [name, { fn, ref, a: mkA, b: mkB }] of Object.entries(BINARY)) {
    it(name, async () => {
      let seed = 100;
      for (const [sa, sb] of BINARY_SHAPES) {
        const a = (mkA ?? uniform)(sa, seed++);
        const b = (mkB ?? uniform)(sb, seed++);
        // +,-,*,/ are correctly rounded in both; pow uses exp2/log2 on the GPU (1e-4).
        const tol = name === 'pow' ? { rtol: 1e-4, atol: 1e-6 } : { rtol: 1e-6, atol: 0 };
        const label = `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`;
        const [cpu] = await expectBackendsAgree(fn, [a, b], tol, label);
        const expected = binaryRef(a, b, ref);
        expect(cpu.shape, label).toEqual(expected.shape);
        expectClose(cpu.values, expected.values, { rtol: 2e-7, atol: 1e-30, label: `${label} cpu vs reference` });
      }
    });
  }

  it('pow of negative bases with integer exponents, zero bases and zero exponents', async () => {
    const a = { data: new Float32Array([-2, -2, -1.5, 0, 0, 0, 3, -3]), shape: [8] };
    const b = { data: new Float32Array([2, 3, -2, 2, 0, -1, 0, 0.5]), shape: [8] };
    const [cpu] = await expectBackendsAgree(T.pow, [a, b], { rtol: 1e-5, atol: 1e-6 }, 'pow special');
    expectClose(cpu.values, [4, -8, 1 / 2.25, 0, 1, Infinity, 1, NaN], { rtol: 1e-6, atol: 0, label: 'pow special cpu' });
  });

  it('numbers act as scalars of the other operand dtype, on either side', async () => {
    const x = uniform([3, 5], 7);
    const cpu = await expectBackendsAgree((t) => [T.sub(2, t), T.div(t, 4), T.mul(t, -1.5), T.maximum(t, 0.25)], [x], { rtol: 1e-6, atol: 0 }, 'scalars');
    expectClose(cpu[0].values, Array.from(x.data, (v) => 2 - v), { rtol: 1e-6, atol: 1e-7, label: '2 - x' });
    expectClose(cpu[3].values, Array.from(x.data, (v) => Math.max(v, 0.25)), { rtol: 0, atol: 0, label: 'max(x, .25)' });
  });

  it('i32 arithmetic, comparisons and maximum on both backends agree exactly', async () => {
    const a = ints([3, 5], 1, -50, 50);
    const b = ints([5], 2, 1, 9);
    const cpu = await expectBackendsAgree((x, y) => [T.add(x, y), T.sub(x, y), T.mul(x, y), T.maximum(x, y), T.less(x, y)], [a, b], { rtol: 0, atol: 0 }, 'i32');
    expect(cpu[0].dtype).toBe('i32');
    expect(Array.from(cpu[2].values)).toEqual(binaryRef(a, b, (x, y) => x * y).values);
  });
});

describe('comparisons and where', () => {
  const CMP: Record<string, [(a: Tensor, b: Tensor) => Tensor, (a: number, b: number) => boolean]> = {
    equal: [T.equal, (a, b) => a === b],
    notEqual: [T.notEqual, (a, b) => a !== b],
    less: [T.less, (a, b) => a < b],
    lessEqual: [T.lessEqual, (a, b) => a <= b],
    greater: [T.greater, (a, b) => a > b],
    greaterEqual: [T.greaterEqual, (a, b) => a >= b],
  };
  for (const [name, [fn, ref]] of Object.entries(CMP)) {
    it(`${name} gives exact bool results (ties included)`, async () => {
      let seed = 300;
      for (const [sa, sb] of BINARY_SHAPES) {
        const a = coarse(sa, seed++);
        const b = coarse(sb, seed++);
        const label = `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`;
        const [cpu] = await expectBackendsAgree(fn, [a, b], { rtol: 0, atol: 0 }, label);
        expect(cpu.dtype).toBe('bool');
        expect(Array.from(cpu.values), label).toEqual(binaryRef(a, b, (x, y) => +ref(x, y)).values);
      }
    });
  }

  it('where broadcasts condition and both branches', async () => {
    const cases: [number[], number[], number[]][] = [
      [[3, 5], [3, 5], [3, 5]],
      [[3, 1], [1, 5], [5]],
      [[2, 1, 4], [4], []],
      [[0, 3], [3], [1, 3]],
    ];
    let seed = 400;
    for (const [sc, sa, sb] of cases) {
      const c = coarse(sc, seed++);
      const a = uniform(sa, seed++);
      const b = uniform(sb, seed++);
      const fn = (ct: Tensor, at: Tensor, bt: Tensor) => T.where(T.greater(ct, 0), at, bt);
      const label = `where ${JSON.stringify([sc, sa, sb])}`;
      const [cpu] = await expectBackendsAgree(fn, [c, a, b], { rtol: 0, atol: 0 }, label);
      const ab = binaryRef(a, b, (x, y) => x * 0 + y * 0); // shape of a,b broadcast
      const full = binaryRef(c, { data: new Float32Array(ab.values.length), shape: ab.shape }, () => 0);
      const expected = full.values.map((_, i) => {
        const co = coordsOf(i, full.shape);
        return c.data[broadcastIndex(co, c.shape)] > 0 ? a.data[broadcastIndex(co, a.shape)] : b.data[broadcastIndex(co, b.shape)];
      });
      expect(Array.from(cpu.values), label).toEqual(expected);
    }
  });
});

describe('errors name the op, shapes and dtypes', () => {
  it('a broadcast mismatch is a ShapeError with both shapes', () => {
    for (const backend of ['cpu', 'webgpu'] as const) {
      if (!backendsUnderTest().includes(backend)) continue;
      const a = tensor(new Float32Array(6), [2, 3], { backend });
      const b = tensor(new Float32Array(4), [4], { backend });
      expect(() => T.add(a, b)).toThrow(ShapeError);
      expect(() => T.add(a, b)).toThrow(/add.*\[2,3\].*\[4\]/);
      a.dispose();
      b.dispose();
    }
  });

  it('ranks above the webgpu kernels\' limit are a ShapeError there, and work on cpu', async () => {
    const shape = [1, 2, 1, 2, 1, 2, 1, 2, 3];
    const [cpu] = await runOn('cpu', (a, b) => T.add(a, b), [uniform(shape, 1), uniform([3], 2)]);
    expect(cpu.shape).toEqual(shape);
    if (!backendsUnderTest().includes('webgpu')) return;
    const a = tensor(new Float32Array(48), shape, { backend: 'webgpu' });
    const b = tensor(new Float32Array(3), [3], { backend: 'webgpu' });
    expect(() => T.add(a, b)).toThrow(/add: rank 9 .* maximum rank 8/i);
    a.dispose();
    b.dispose();
  });

  it('a dtype mismatch is a DTypeError naming the op and dtypes', () => {
    const a = tensor(new Float32Array(3), [3], { backend: 'cpu' });
    const b = tensor(new Int32Array(3), [3], { backend: 'cpu' });
    expect(() => T.mul(a, b)).toThrow(DTypeError);
    expect(() => T.mul(a, b)).toThrow(/mul.*f32.*i32/);
    expect(() => T.exp(b)).toThrow(DTypeError);
    a.dispose();
    b.dispose();
  });
});
