import * as T from '@webpeft/tensor';
import { type Tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type HostInput, expectBackendsAgree, ints, uniform } from './conformance.js';

beforeAll(async () => {
  await initBackends();
});

/** Rows of the last axis of `x` as plain arrays. */
function rows(x: HostInput): number[][] {
  const w = x.shape[x.shape.length - 1] ?? 1;
  const out: number[][] = [];
  for (let o = 0; w > 0 && o < x.data.length; o += w) out.push(Array.from(x.data.subarray(o, o + w)));
  return out;
}

function softmaxRow(r: number[]): number[] {
  const m = Math.max(...r);
  const e = r.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

// exp/log per element plus a row sum in f32: 1e-4 relative between backends.
const TOL = { rtol: 1e-4, atol: 1e-6 };
const SHAPES: number[][] = [[7], [3, 5], [2, 3, 5], [4, 1], [1, 1], [2, 0, 3], [0, 4], [5, 129]];

describe('fused ops: webgpu vs cpu, cpu vs float64 reference', () => {
  it('softmax and logSoftmax over the last axis', async () => {
    let seed = 1;
    for (const shape of SHAPES) {
      const x = uniform(shape, seed++, -5, 5);
      const label = `softmax ${JSON.stringify(shape)}`;
      const [sm, lsm] = await expectBackendsAgree((t) => [T.softmax(t), T.logSoftmax(t)], [x], TOL, label);
      const ref = rows(x).flatMap(softmaxRow);
      expectClose(sm.values, ref, { rtol: 1e-6, atol: 1e-7, label: `${label} cpu` });
      expectClose(lsm.values, ref.map(Math.log), { rtol: 1e-6, atol: 1e-6, label: `log${label} cpu` });
    }
  });

  it('softmax is stable for large logits', async () => {
    const x = { data: new Float32Array([1000, 1001, 999, -1000, 0, 1000]), shape: [2, 3] };
    const [sm] = await expectBackendsAgree(T.softmax, [x], TOL, 'softmax large');
    expect(sm.values.every(Number.isFinite)).toBe(true);
  });

  it('crossEntropy with ignoreIndex and every reduction', async () => {
    for (const [n, c] of [
      [5, 7],
      [1, 3],
      [9, 130],
    ]) {
      const x = uniform([n, c], n * 31 + c, -4, 4);
      const labels = ints([n], n + c, 0, c);
      labels.data[0] = -100; // ignored row
      const fn = (t: Tensor, l: Tensor) => [
        T.crossEntropy(t, l, { reduction: 'none' }),
        T.crossEntropy(t, l, { reduction: 'sum' }),
        T.crossEntropy(t, l),
      ];
      const label = `crossEntropy [${n},${c}]`;
      const [none, sum, mean] = await expectBackendsAgree(fn, [x, labels], TOL, label);
      const per = rows(x).map((r, i) => (labels.data[i] === -100 ? 0 : -Math.log(softmaxRow(r)[labels.data[i]])));
      expectClose(none.values, per, { rtol: 1e-5, atol: 1e-6, label: `${label} cpu` });
      const total = per.reduce((a, b) => a + b, 0);
      expectClose(sum.values, [total], { rtol: 1e-5, atol: 1e-6, label: `${label} sum` });
      const valid = Array.from(labels.data).filter((l) => l !== -100).length;
      expectClose(mean.values, [valid === 0 ? 0 : total / valid], { rtol: 1e-5, atol: 1e-6, label: `${label} mean` });
    }
  });

  it('crossEntropy of zero rows', async () => {
    const x = { data: new Float32Array(0), shape: [0, 4] };
    const l = { data: new Int32Array(0), shape: [0] };
    const [none, sum] = await expectBackendsAgree((t, y) => [T.crossEntropy(t, y, { reduction: 'none' }), T.crossEntropy(t, y, { reduction: 'sum' })], [x, l], TOL, 'ce empty');
    expect(none.shape).toEqual([0]);
    expect(Array.from(sum.values)).toEqual([0]);
  });

  it('crossEntropy mean over no counted row (every label ignored) is 0 with zero gradients, never NaN', async () => {
    for (const backend of backendsUnderTest()) {
      const x = uniform([6, 5], 77, -4, 4);
      const logits = T.tensor(x.data, x.shape, { backend, requiresGrad: true });
      const labels = T.tensor(new Int32Array(6).fill(-100), [6], { dtype: 'i32', backend });
      const loss = T.crossEntropy(logits, labels);
      loss.backward();
      expect(await loss.item()).toBe(0);
      expect(Array.from((await logits.grad!.data()) as Float32Array).every((g) => g === 0)).toBe(true);
      const noRows = T.tensor(new Float32Array(0), [0, 5], { backend });
      const noLabels = T.tensor(new Int32Array(0), [0], { dtype: 'i32', backend });
      const empty = T.crossEntropy(noRows, noLabels);
      expect(await empty.item()).toBe(0);
      for (const t of [logits.grad!, logits, labels, loss, noRows, noLabels, empty]) t.dispose();
    }
  });

  it('layerNorm and rmsNorm with and without affine parameters', async () => {
    let seed = 40;
    for (const shape of [[7], [3, 5], [2, 3, 5], [4, 1], [2, 0, 3], [3, 100]]) {
      const d = shape[shape.length - 1];
      const x = uniform(shape, seed++, -3, 3);
      const w = uniform([d], seed++, 0.5, 1.5);
      const b = uniform([d], seed++);
      const label = `norms ${JSON.stringify(shape)}`;
      const fn = (t: Tensor, wt: Tensor, bt: Tensor) => [T.layerNorm(t, wt, bt), T.layerNorm(t, null, null), T.rmsNorm(t, wt), T.rmsNorm(t, null, 1e-5)];
      // Variance of near-constant rows amplifies rounding: 1e-4 relative, 1e-5 absolute.
      const [ln, ln0, rms, rms0] = await expectBackendsAgree(fn, [x, w, b], { rtol: 1e-4, atol: 1e-5 }, label);
      const lnRef: number[] = [];
      const rmsRef: number[] = [];
      const rms0Ref: number[] = [];
      const ln0Ref: number[] = [];
      for (const r of rows(x)) {
        const mean = r.reduce((a, v) => a + v, 0) / d;
        const v = r.reduce((a, x2) => a + (x2 - mean) ** 2, 0) / d;
        const ms = r.reduce((a, x2) => a + x2 * x2, 0) / d;
        r.forEach((xv, j) => {
          ln0Ref.push((xv - mean) / Math.sqrt(v + 1e-5));
          lnRef.push(((xv - mean) / Math.sqrt(v + 1e-5)) * w.data[j] + b.data[j]);
          rmsRef.push((xv / Math.sqrt(ms + 1e-6)) * w.data[j]);
          rms0Ref.push(xv / Math.sqrt(ms + 1e-5));
        });
      }
      expectClose(ln.values, lnRef, { rtol: 1e-5, atol: 1e-6, label: `${label} layerNorm cpu` });
      expectClose(ln0.values, ln0Ref, { rtol: 1e-5, atol: 1e-6, label: `${label} layerNorm plain cpu` });
      expectClose(rms.values, rmsRef, { rtol: 1e-5, atol: 1e-6, label: `${label} rmsNorm cpu` });
      expectClose(rms0.values, rms0Ref, { rtol: 1e-5, atol: 1e-6, label: `${label} rmsNorm plain cpu` });
    }
  });

  it('dropout off (eval or p = 0) returns the input values', async () => {
    const x = uniform([3, 5], 77);
    const [a, b] = await expectBackendsAgree((t) => [T.dropout(t, 0.5, false), T.dropout(t, 0)], [x], { rtol: 0, atol: 0 }, 'dropout off');
    expect(Array.from(a.values)).toEqual(Array.from(x.data));
    expect(Array.from(b.values)).toEqual(Array.from(x.data));
  });
});
