import * as T from '@webpeft/tensor';
import { type Tensor, manualSeed } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, gradcheck, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, it } from 'vitest';
import { type HostInput, awayFromZero, gradsOn, ints, toF64, uniform } from './conformance.js';

beforeAll(async () => {
  await initBackends();
});

interface GradCase {
  fn: (...xs: Tensor[]) => Tensor;
  inputs: HostInput[];
  /** Inputs not differentiated (labels, indices, conditions). */
  constant?: number[];
  /** Tolerance of the float64 finite-difference check (default rtol 1e-5, atol 1e-6). */
  fd?: { rtol: number; atol: number };
}

let seed = 1000;
const u = (shape: number[], lo = -1, hi = 1) => uniform(shape, seed++, lo, hi);
const nz = (shape: number[], lo = 0.2, hi = 2) => awayFromZero(shape, seed++, lo, hi);

/** Every differentiable op, at points where it is differentiable (no ties, no kinks). */
const CASES: Record<string, GradCase> = {
  neg: { fn: T.neg, inputs: [u([3, 5])] },
  abs: { fn: T.abs, inputs: [nz([3, 5])] },
  exp: { fn: T.exp, inputs: [u([7], -2, 2)] },
  log: { fn: T.log, inputs: [u([7], 0.3, 3)] },
  sqrt: { fn: T.sqrt, inputs: [u([7], 0.3, 3)] },
  rsqrt: { fn: T.rsqrt, inputs: [u([7], 0.3, 3)] },
  tanh: { fn: T.tanh, inputs: [u([2, 3, 5], -2, 2)] },
  sigmoid: { fn: T.sigmoid, inputs: [u([7], -3, 3)] },
  relu: { fn: T.relu, inputs: [nz([3, 5])] },
  erf: { fn: T.erf, inputs: [u([3, 5], -2, 2)] },
  gelu: { fn: T.gelu, inputs: [u([3, 5], -3, 3)] },
  geluTanh: { fn: T.geluTanh, inputs: [u([3, 5], -3, 3)] },
  silu: { fn: T.silu, inputs: [u([3, 5], -3, 3)] },
  sin: { fn: T.sin, inputs: [u([7], -3, 3)] },
  cos: { fn: T.cos, inputs: [u([7], -3, 3)] },
  sign: { fn: T.sign, inputs: [nz([7])] },
  square: { fn: T.square, inputs: [u([7])] },
  reciprocal: { fn: T.reciprocal, inputs: [nz([7], 0.5, 2)] },
  floor: { fn: (x) => T.floor(x), inputs: [{ data: new Float32Array([0.3, -1.7, 2.5, 1.1, -0.2]), shape: [5] }] },
  'add [3,1]+[1,5]': { fn: T.add, inputs: [u([3, 1]), u([1, 5])] },
  'sub [4,1,3]-[3]': { fn: T.sub, inputs: [u([4, 1, 3]), u([3])] },
  'mul []*[2,3]': { fn: T.mul, inputs: [u([]), u([2, 3])] },
  'div [2,1,4]/[3,1] (reshaped operand)': { fn: (a, b) => T.div(a, T.reshape(b, [3, 1])), inputs: [u([2, 1, 4]), nz([3])] },
  'pow a^b': { fn: T.pow, inputs: [u([3, 4], 0.3, 2), u([4], -1.5, 1.5)] },
  'maximum [3,5] [5]': { fn: T.maximum, inputs: [u([3, 5]), u([5])] },
  'minimum [3,1] [3,4]': { fn: T.minimum, inputs: [u([3, 1]), u([3, 4])] },
  where: { fn: (c, a, b) => T.where(T.greater(c, 0), a, b), inputs: [u([3, 1]), u([3, 4]), u([4])], constant: [0] },
  'add with an empty dim': { fn: T.add, inputs: [u([2, 0, 3]), u([3])] },
  'sum axes [0,2]': { fn: (x) => T.sum(x, [0, 2]), inputs: [u([2, 3, 4])] },
  'sum all keepDims': { fn: (x) => T.sum(x, undefined, true), inputs: [u([3, 5])] },
  'mean axis 1': { fn: (x) => T.mean(x, 1), inputs: [u([3, 5])] },
  'max axis 1': { fn: (x) => T.max(x, 1, true), inputs: [u([3, 7])] },
  'max all': { fn: (x) => T.max(x), inputs: [u([2, 3, 5])] },
  'cumsum axis 1': { fn: (x) => T.cumsum(x, 1), inputs: [u([3, 5, 2])] },
  'cumsum axis 0': { fn: (x) => T.cumsum(x, 0), inputs: [u([7])] },
  reshape: { fn: (x) => T.reshape(x, [5, 3]), inputs: [u([3, 5])] },
  permute: { fn: (x) => T.permute(x, [2, 0, 1]), inputs: [u([2, 3, 4])] },
  transpose: { fn: (x) => T.transpose(x), inputs: [u([3, 5])] },
  slice: { fn: (x) => T.slice(x, [1, 1], [2, 3]), inputs: [u([4, 5])] },
  pad: { fn: (x) => T.pad(x, [[1, 2], [0, 1]], 3), inputs: [u([2, 3])] },
  expand: { fn: (x) => T.expand(x, [2, 3, 4]), inputs: [u([3, 1])] },
  'expand scalar': { fn: (x) => T.expand(x, [3, 2]), inputs: [u([])] },
  concat: { fn: (a, b) => T.concat([a, b], 1), inputs: [u([2, 3]), u([2, 2])] },
  stack: { fn: (a, b) => T.stack([a, b], 0), inputs: [u([2, 3]), u([2, 3])] },
  'split then mul': { fn: (x) => { const [p, q] = T.split(x, [1, 2], 0); return T.mul(p, q); }, inputs: [u([3, 4])] },
  gather: { fn: (x, i) => T.gather(x, i), inputs: [u([5, 3]), { data: new Int32Array([4, 0, 4, 2]), shape: [2, 2] }], constant: [1] },
  scatterAdd: { fn: (s, i) => T.scatterAdd(s, i, 4), inputs: [u([3, 2]), { data: new Int32Array([1, 3, 1]), shape: [3] }], constant: [1] },
  triu: { fn: (x) => T.triu(x, 1), inputs: [u([2, 3, 4])] },
  'matmul [3,5]x[5,4]': { fn: (a, b) => T.matmul(a, b), inputs: [u([3, 5]), u([5, 4])] },
  'matmul transposeA': { fn: (a, b) => T.matmul(a, b, { transposeA: true }), inputs: [u([5, 3]), u([5, 4])] },
  'matmul transposeB': { fn: (a, b) => T.matmul(a, b, { transposeB: true }), inputs: [u([3, 5]), u([4, 5])] },
  'matmul both transposed': { fn: (a, b) => T.matmul(a, b, { transposeA: true, transposeB: true }), inputs: [u([5, 3]), u([4, 5])] },
  'matmul batch broadcast': { fn: (a, b) => T.matmul(a, b), inputs: [u([2, 1, 3, 4]), u([3, 4, 2])] },
  'matmul batched transposeB vs 2-D': { fn: (a, b) => T.matmul(a, b, { transposeB: true }), inputs: [u([2, 3, 4]), u([5, 4])] },
  softmax: { fn: T.softmax, inputs: [u([3, 5], -2, 2)] },
  logSoftmax: { fn: T.logSoftmax, inputs: [u([2, 3, 4], -2, 2)] },
  'crossEntropy mean': {
    fn: (x, l) => T.crossEntropy(x, l),
    inputs: [u([5, 4], -2, 2), { data: new Int32Array([1, -100, 3, 0, 3]), shape: [5] }],
    constant: [1],
  },
  'crossEntropy none': { fn: (x, l) => T.crossEntropy(x, l, { reduction: 'none' }), inputs: [u([4, 6], -2, 2), ints([4], 7, 0, 6)], constant: [1] },
  layerNorm: { fn: (x, w, b) => T.layerNorm(x, w, b), inputs: [u([3, 6], -2, 2), u([6], 0.5, 1.5), u([6])], fd: { rtol: 1e-4, atol: 1e-6 } },
  'layerNorm plain': { fn: (x) => T.layerNorm(x, null, null), inputs: [u([2, 2, 5], -2, 2)], fd: { rtol: 1e-4, atol: 1e-6 } },
  rmsNorm: { fn: (x, w) => T.rmsNorm(x, w), inputs: [u([3, 6], -2, 2), u([6], 0.5, 1.5)], fd: { rtol: 1e-4, atol: 1e-6 } },
  // The mask is a function of the seed: reseeding makes every evaluation use the same mask.
  dropout: {
    fn: (x) => {
      manualSeed(99);
      return T.dropout(x, 0.4);
    },
    inputs: [u([4, 7])],
  },
  'composite mlp': {
    fn: (x, w1, w2) => T.logSoftmax(T.matmul(T.tanh(T.matmul(x, w1)), w2, { transposeB: true })),
    inputs: [u([4, 3]), u([3, 5]), u([2, 5])],
  },
  'a tensor used twice': { fn: (x) => T.mul(T.exp(x), T.sin(x)), inputs: [u([6])] },
};

describe('gradients: float64 finite differences on cpu', () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(name, async () => {
      await gradcheck(c.fn, c.inputs.map(toF64) as { data: Float64Array | Int32Array; shape: number[] }[], {
        constant: c.constant,
        label: name,
        ...(c.fd ?? {}),
      });
    });
  }
});

describe('gradients: webgpu vs cpu in f32', () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(name, async ({ skip }) => {
      if (!backendsUnderTest().includes('webgpu')) skip();
      const cpu = await gradsOn('cpu', c.fn, c.inputs, c.constant);
      const gpu = await gradsOn('webgpu', c.fn, c.inputs, c.constant);
      for (let i = 0; i < cpu.length; i++) {
        if (!cpu[i]) continue;
        // Gradients chain several f32 kernels (and sums in other orders): 1e-4 relative.
        expectClose(gpu[i]!, cpu[i]!, { rtol: 1e-4, atol: 1e-5, label: `${name} grad ${i}` });
      }
    });
  }
});
