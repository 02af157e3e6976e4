/**
 * Every f16 kernel on webgpu against the cpu backend's f16 reference semantics (inputs
 * widened to f32, f32 or wider accumulation, each output rounded once to f16) on fresh
 * seeded inputs. Bounds, in f16 ulps: 0 (bitwise) where no rounding but the final one
 * can differ (copies, casts, add/sub/mul, comparisons, dropout); 1 where the backends'
 * f32 math or summation order differs (transcendentals, division, reductions, matmul,
 * softmax, norms): both results are then within half an f16 ulp plus a tiny f32 error
 * of the same real number, so they can straddle one rounding boundary, never two.
 */
import {
  type DType,
  type Tensor,
  cast,
  concat,
  crossEntropy,
  cumsum,
  div,
  dropout,
  gather,
  layerNorm,
  logSoftmax,
  matmul,
  max,
  argmax,
  permute,
  rmsNorm,
  scatterAdd,
  slice,
  softmax,
  sum,
  tensor,
  tidy,
  where,
  greater,
  pad,
  triu,
} from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import * as T from '@webpeft/tensor';
import { DTypeError } from '@webpeft/tensor';
import type { WebGpuKernelContext } from '@webpeft/tensor/kernel';
import { checkF16 } from '../backends/webgpu/f16.js';
import { expectUlpsWithin, webgpuHasF16 } from './f16-helpers.js';

beforeAll(async () => {
  await initBackends();
});

let seed = 7000;

/** A host input: values (rounded to `dtype` when the tensor is made) and a shape. */
interface In {
  data: Float32Array | Int32Array;
  shape: number[];
  dtype: DType;
}

function f16In(shape: number[], lo = -2, hi = 2): In {
  return { data: randomArray(shape.reduce((p, d) => p * d, 1), seed++, lo, hi) as Float32Array, shape, dtype: 'f16' };
}

function intIn(shape: number[], maxValue: number): In {
  return { data: randomInts(shape.reduce((p, d) => p * d, 1), maxValue, seed++), shape, dtype: 'i32' };
}

/** Runs `fn` on one backend and returns each output's dtype and raw data. */
async function runOn(backend: 'cpu' | 'webgpu', fn: (...xs: Tensor[]) => Tensor | Tensor[], inputs: readonly In[]) {
  const xs = inputs.map((x) => tensor(x.data, x.shape, { backend, dtype: x.dtype }));
  const outs = tidy(() => {
    const r = fn(...xs);
    return Array.isArray(r) ? r : [r];
  });
  const res = [];
  for (const o of outs) res.push({ dtype: o.dtype, shape: [...o.shape], data: await o.data() });
  for (const t of [...outs, ...xs]) t.dispose();
  return res;
}

/** webgpu vs cpu: f16 outputs within `maxUlps`, f32 outputs within `rtol`, others equal. */
async function agree(label: string, fn: (...xs: Tensor[]) => Tensor | Tensor[], inputs: readonly In[], maxUlps: number, rtol = 1e-5, atol = 0): Promise<void> {
  if (!backendsUnderTest().includes('webgpu')) return;
  // An adapter without shader-f16 must refuse f16 tensors with a clear error (checked below).
  if (!webgpuHasF16()) return;
  const cpu = await runOn('cpu', fn, inputs);
  const gpu = await runOn('webgpu', fn, inputs);
  expect(gpu.length).toBe(cpu.length);
  for (let i = 0; i < cpu.length; i++) {
    expect(gpu[i].dtype, `${label}: dtype`).toBe(cpu[i].dtype);
    expect(gpu[i].shape, `${label}: shape`).toEqual(cpu[i].shape);
    if (cpu[i].dtype === 'f16') expectUlpsWithin(gpu[i].data as Uint16Array, cpu[i].data as Uint16Array, maxUlps, label, atol);
    else if (cpu[i].dtype === 'f32') expectClose(gpu[i].data, cpu[i].data, { rtol, atol: rtol, label });
    else expect(Array.from(gpu[i].data), label).toEqual(Array.from(cpu[i].data));
  }
}

describe('f16 elementwise kernels (webgpu vs cpu reference)', () => {
  const exact = ['neg', 'abs', 'relu', 'square', 'floor', 'sign'] as const;
  const inexact = ['exp', 'tanh', 'sigmoid', 'erf', 'sin', 'cos', 'gelu', 'silu', 'reciprocal'] as const;
  const positive = ['log', 'sqrt', 'rsqrt'] as const;
  it('unary ops', async () => {
    for (const op of exact) await agree(op, (x) => T[op](x), [f16In([3, 257])], 0);
    for (const op of inexact) await agree(op, (x) => T[op](x), [f16In([3, 257], -4, 4)], 1);
    for (const op of positive) await agree(op, (x) => T[op](x), [f16In([3, 257], 0.01, 8)], 1);
    // GELU-tanh's f32 formula cancels in 1 + tanh(...) for x < -3, where its results are
    // tiny: there the f32 kernel's own absolute error (below 2^-22) bounds the difference.
    await agree('geluTanh', (x) => T.geluTanh(x), [f16In([3, 257], -4, 4)], 1, 0, 2 ** -22);
  });
  it('binary ops, same shapes, broadcast and scalars', async () => {
    for (const op of ['add', 'sub', 'mul', 'maximum', 'minimum'] as const) {
      await agree(op, (a, b) => T[op](a, b), [f16In([5, 33]), f16In([5, 33])], 0);
      await agree(`${op} broadcast`, (a, b) => T[op](a, b), [f16In([4, 1, 7]), f16In([3, 1])], 0);
      await agree(`${op} scalar`, (a) => T[op](a, 0.3), [f16In([70])], 0);
    }
    await agree('div', (a, b) => div(a, b), [f16In([5, 33]), f16In([5, 33], 0.25, 3)], 1);
    await agree('pow', (a, b) => T.pow(a, b), [f16In([200], 0.1, 3), f16In([200], -2, 2)], 1);
  });
  it('comparisons and where', async () => {
    for (const op of ['equal', 'notEqual', 'less', 'lessEqual', 'greater', 'greaterEqual'] as const) {
      // Coarse values so that equal elements occur.
      const a: In = { data: Float32Array.from(randomArray(60, seed++, -2, 2), (v) => Math.round(v * 2) / 2), shape: [6, 10], dtype: 'f16' };
      await agree(op, (x, y) => T[op](x, y), [a, { ...a, data: Float32Array.from(a.data).reverse() }], 0);
    }
    await agree('where', (c, a, b) => where(greater(c, 0), a, b), [f16In([4, 9]), f16In([4, 9]), f16In([9])], 0);
  });
  it('dropout (the same Philox mask on both backends)', async () => {
    T.manualSeed(11);
    const inputs = [f16In([1000])];
    if (!webgpuHasF16()) return;
    T.manualSeed(11);
    const cpu = await runOn('cpu', (x) => dropout(x, 0.3), inputs);
    T.manualSeed(11);
    const gpu = await runOn('webgpu', (x) => dropout(x, 0.3), inputs);
    expectUlpsWithin(gpu[0].data as Uint16Array, cpu[0].data as Uint16Array, 0, 'dropout');
  });
});

describe('f16 layout kernels are bit copies', () => {
  it('permute, slice, concat, pad, triu, gather', async () => {
    await agree('permute', (x) => permute(x, [2, 0, 1]), [f16In([3, 5, 7])], 0);
    await agree('slice', (x) => slice(x, [1, 2], [3, 6]), [f16In([4, 9])], 0);
    await agree('concat', (a, b) => concat([a, b], 1), [f16In([3, 5]), f16In([3, 2])], 0);
    await agree('pad', (x) => pad(x, [[1, 2], [0, 3]], 1.5), [f16In([3, 5])], 0);
    await agree('triu', (x) => triu(x, 1, -Infinity), [f16In([2, 5, 5])], 0);
    await agree('gather', (x, i) => gather(x, i), [f16In([11, 6]), intIn([4, 3], 11)], 0);
  });
  it('scatter-add accumulates duplicates in f32 and rounds once', async () => {
    await agree('scatterAdd', (s, i) => scatterAdd(s, i, 5), [f16In([40, 3]), intIn([40], 5)], 1);
  });
});

describe('f16 casts round to nearest even', () => {
  it('f32 -> f16 -> f32 and ints, with special values', async () => {
    const special = [0, -0, 1, -1, 65504, -65504, 65519, 65520, 1e6, -1e6, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 6e-5, 1 + 2 ** -11, 1 + 3 * 2 ** -11, NaN, Infinity, -Infinity];
    const data = Float32Array.from([...special, ...randomArray(200, seed++, -3000, 3000)]);
    const x: In = { data, shape: [data.length], dtype: 'f32' };
    await agree('cast f32->f16', (t) => cast(t, 'f16'), [x], 0);
    await agree('cast f16->f32', (t) => cast(t, 'f32'), [{ ...x, dtype: 'f16' }], 0, 0);
    await agree('cast f16->i32', (t) => cast(t, 'i32'), [{ data: randomArray(50, seed++, -300, 300) as Float32Array, shape: [50], dtype: 'f16' }], 0);
  });
});

describe('f16 reductions accumulate in f32', () => {
  it('sum, max, argmax, cumsum over short and long extents', async () => {
    for (const shape of [[3, 17], [4, 600], [2, 300, 3]]) {
      await agree(`sum ${shape}`, (x) => sum(x, -1), [f16In(shape)], 1);
      await agree(`sum all ${shape}`, (x) => sum(x), [f16In(shape)], 1);
      await agree(`max ${shape}`, (x) => max(x, 0), [f16In(shape)], 0);
      await agree(`argmax ${shape}`, (x) => argmax(x, -1), [f16In(shape)], 0);
    }
    await agree('cumsum', (x) => cumsum(x, 1), [f16In([3, 40])], 1);
  });
});

describe('f16 matmul (f32 accumulation) with the variants this adapter picks', () => {
  it('aligned, unaligned, small k, transposed, batched', async () => {
    await agree('aligned', (a, b) => matmul(a, b), [f16In([16, 32]), f16In([32, 24])], 1);
    await agree('unaligned', (a, b) => matmul(a, b), [f16In([7, 13]), f16In([13, 5])], 1);
    await agree('small k', (a, b) => matmul(a, b), [f16In([33, 8]), f16In([8, 20])], 1);
    await agree('transposed', (a, b) => matmul(a, b, { transposeA: true, transposeB: true }), [f16In([12, 8]), f16In([16, 12])], 1);
    await agree('batched', (a, b) => matmul(a, b), [f16In([2, 3, 8, 12]), f16In([3, 12, 4])], 1);
  });
});

describe('f16 softmax, cross-entropy and norms', () => {
  it('softmax and log-softmax (f32 statistics), narrow and wide rows', async () => {
    for (const w of [7, 300]) {
      await agree(`softmax ${w}`, (x) => softmax(x), [f16In([5, w], -4, 4)], 1);
      await agree(`logSoftmax ${w}`, (x) => logSoftmax(x), [f16In([5, w], -4, 4)], 1);
    }
  });
  it('cross-entropy of f16 logits is an f32 loss', async () => {
    for (const c of [9, 130]) {
      await agree(`crossEntropy ${c}`, (x, l) => crossEntropy(x, l), [f16In([6, c], -4, 4), intIn([6], c)], 0, 1e-5);
      await agree(`crossEntropy none ${c}`, (x, l) => crossEntropy(x, l, { reduction: 'none' }), [f16In([6, c], -4, 4), intIn([6], c)], 0, 1e-5);
    }
  });
  it('layer norm and RMS norm (f32 statistics)', async () => {
    for (const w of [10, 200]) {
      await agree(`layerNorm ${w}`, (x, g, b) => layerNorm(x, g, b, 1e-5), [f16In([4, w]), f16In([w], 0.5, 1.5), f16In([w])], 1);
      await agree(`rmsNorm ${w}`, (x, g) => rmsNorm(x, g, 1e-6), [f16In([4, w]), f16In([w], 0.5, 1.5)], 1);
    }
  });
});

describe('mixed dtypes are refused (no silent promotion)', () => {
  it('binary ops, matmul and norms name the op and both dtypes', () => {
    const a = tensor(new Float32Array([1, 2, 3, 4]), [2, 2], { backend: 'cpu', dtype: 'f16' });
    const b = tensor(new Float32Array([1, 2, 3, 4]), [2, 2], { backend: 'cpu' });
    expect(() => T.add(a, b)).toThrow(DTypeError);
    expect(() => T.add(a, b)).toThrow(/add: dtypes differ \(f16 \[2,2\] vs f32 \[2,2\]\)/);
    expect(() => T.mul(b, a)).toThrow(/mul: dtypes differ \(f32 \[2,2\] vs f16 \[2,2\]\)/);
    expect(() => matmul(a, b)).toThrow(/matmul: expected two float tensors of one dtype .* got f16 \[2,2\] and f32 \[2,2\]/);
    const w = tensor(new Float32Array([1, 1]), [2], { backend: 'cpu' });
    expect(() => layerNorm(a, w, null)).toThrow(/layerNorm: dtypes differ \(f16 \[2,2\], f32 \[2\], f16 \[2\]\)/);
    expect(() => rmsNorm(a, w)).toThrow(/rmsNorm: dtypes differ \(f16 \[2,2\], f32 \[2\]\)/);
    for (const t of [a, b, w]) t.dispose();
  });
});

describe('f16 without shader-f16', () => {
  it('an adapter without the feature refuses f16, naming the op', () => {
    const noF16 = { capabilities: { f16: false, f64: false, subgroups: false, deviceMemory: true } } as unknown as WebGpuKernelContext;
    expect(() => checkF16(noF16, 'matmul', ['f16', 'f16'])).toThrow(DTypeError);
    expect(() => checkF16(noF16, 'matmul', ['f16', 'f16'])).toThrow(/matmul: f16 needs a WebGPU adapter with the 'shader-f16' feature/);
    expect(() => checkF16(noF16, 'matmul', ['f32', 'f32'])).not.toThrow();
    if (backendsUnderTest().includes('webgpu') && !webgpuHasF16()) {
      expect(() => tensor(new Float32Array(4), [4], { backend: 'webgpu', dtype: 'f16' })).toThrow(/cannot hold dtype f16/);
    }
  });
});
