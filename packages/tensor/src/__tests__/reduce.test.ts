import * as T from '@webpeft/tensor';
import { type Tensor } from '@webpeft/tensor';
import { expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type HostInput, coarse, coordsOf, expectBackendsAgree, uniform } from './conformance.js';

beforeAll(async () => {
  await initBackends();
});

/** Float64 reference reduction of `x` over `axes` with `op`, keeping dims as `keepDims`. */
function reduceRef(x: HostInput, axes: number[], keepDims: boolean, op: 'sum' | 'max' | 'argmax'): { shape: number[]; values: number[] } {
  const shape = x.shape;
  const outFull = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const n = outFull.reduce((p, d) => p * d, 1);
  const acc = new Array<number>(n).fill(op === 'sum' ? 0 : -Infinity);
  const arg = new Array<number>(n).fill(0);
  const redStrideCoords = (c: number[]) => {
    // Flat index of the coordinate within the reduced block (row-major over `axes`).
    let k = 0;
    for (const a of axes) k = k * shape[a] + c[a];
    return k;
  };
  const total = shape.reduce((p, d) => p * d, 1);
  for (let i = 0; i < total; i++) {
    const c = coordsOf(i, shape);
    let o = 0;
    for (let d = 0; d < shape.length; d++) o = o * outFull[d] + (axes.includes(d) ? 0 : c[d]);
    const v = x.data[i];
    if (op === 'sum') acc[o] += v;
    else if (v > acc[o]) {
      acc[o] = v;
      arg[o] = redStrideCoords(c);
    }
  }
  const outShape = keepDims ? outFull : shape.filter((_, i) => !axes.includes(i));
  return { shape: outShape, values: op === 'argmax' ? arg : acc };
}

const CASES: { shape: number[]; axes: number[] }[] = [
  { shape: [7], axes: [0] },
  { shape: [3, 5], axes: [0] },
  { shape: [3, 5], axes: [1] },
  { shape: [3, 5], axes: [0, 1] },
  { shape: [2, 3, 5], axes: [1] },
  { shape: [2, 3, 5], axes: [0, 2] },
  { shape: [4, 1, 3], axes: [1] },
  { shape: [1, 1], axes: [0, 1] },
  { shape: [2, 0, 3], axes: [2] },
  { shape: [2, 0, 3], axes: [1] },
  { shape: [0], axes: [0] },
  { shape: [37, 129], axes: [1] },
];

describe('reductions: webgpu vs cpu, cpu vs float64 reference', () => {
  // Sums of up to a few hundred f32 terms: the summation order differs between the
  // backends (cpu accumulates in float64), so 1e-4 relative with a small absolute floor.
  const SUM_TOL = { rtol: 1e-4, atol: 1e-5 };
  for (const keepDims of [false, true]) {
    it(`sum and mean (keepDims ${keepDims})`, async () => {
      let seed = 1;
      for (const { shape, axes } of CASES) {
        const x = uniform(shape, seed++);
        const label = `sum ${JSON.stringify(shape)} axes ${JSON.stringify(axes)}`;
        const [s, m] = await expectBackendsAgree((t) => [T.sum(t, axes, keepDims), T.mean(t, axes, keepDims)], [x], SUM_TOL, label);
        const ref = reduceRef(x, axes, keepDims, 'sum');
        expect(s.shape, label).toEqual(ref.shape);
        expectClose(s.values, ref.values, { rtol: 1e-6, atol: 1e-6, label: `${label} cpu` });
        const count = axes.reduce((p, a) => p * shape[a], 1);
        expectClose(m.values, ref.values.map((v) => v / count), { rtol: 1e-6, atol: 1e-6, label: `mean ${label} cpu` });
      }
    });

    it(`max and argmax are exact (keepDims ${keepDims})`, async () => {
      let seed = 50;
      for (const { shape, axes } of CASES) {
        if (shape.some((d, i) => d === 0 && axes.includes(i))) continue; // max of nothing: see below
        const x = uniform(shape, seed++);
        const label = `max ${JSON.stringify(shape)} axes ${JSON.stringify(axes)}`;
        const [mx] = await expectBackendsAgree((t) => T.max(t, axes, keepDims), [x], { rtol: 0, atol: 0 }, label);
        const ref = reduceRef(x, axes, keepDims, 'max');
        expect(mx.shape, label).toEqual(ref.shape);
        expect(Array.from(mx.values), label).toEqual(ref.values.map((v) => Math.fround(v)));
        if (axes.length === 1) {
          const [am] = await expectBackendsAgree((t) => T.argmax(t, axes[0], keepDims), [x], { rtol: 0, atol: 0 }, `arg${label}`);
          expect(am.dtype).toBe('i32');
          expect(Array.from(am.values), `arg${label}`).toEqual(reduceRef(x, axes, keepDims, 'argmax').values);
        }
      }
    });
  }

  it('argmax returns the first of tied maxima on both backends', async () => {
    const x = { data: new Float32Array([1, 3, 3, 0, 2, 2, 2, 2, -1, 5, 5, -1]), shape: [3, 4] };
    const [am] = await expectBackendsAgree((t) => T.argmax(t, 1), [x], { rtol: 0, atol: 0 }, 'argmax ties');
    expect(Array.from(am.values)).toEqual([1, 0, 1]);
    const ties = coarse([6, 9], 3);
    await expectBackendsAgree((t) => [T.argmax(t, 0), T.argmax(t, 1), T.max(t, 0)], [ties], { rtol: 0, atol: 0 }, 'argmax coarse');
  });

  it('max over an empty axis is -Infinity on both backends; sum is 0', async () => {
    const x = { data: new Float32Array(0), shape: [3, 0] };
    const [mx, s] = await expectBackendsAgree((t) => [T.max(t, 1), T.sum(t, 1)], [x], { rtol: 0, atol: 0 }, 'empty axis');
    expect(Array.from(mx.values)).toEqual([-Infinity, -Infinity, -Infinity]);
    expect(Array.from(s.values)).toEqual([0, 0, 0]);
  });

  it('cumsum along every axis', async () => {
    const cases: [number[], number][] = [
      [[7], 0],
      [[3, 5], 0],
      [[3, 5], 1],
      [[2, 3, 5], 1],
      [[2, 0, 3], 2],
      [[1, 1], -1],
    ];
    let seed = 70;
    for (const [shape, axis] of cases) {
      const x = uniform(shape, seed++);
      const label = `cumsum ${JSON.stringify(shape)} axis ${axis}`;
      const [c] = await expectBackendsAgree((t: Tensor) => T.cumsum(t, axis), [x], { rtol: 1e-5, atol: 1e-6 }, label);
      const a = axis < 0 ? axis + shape.length : axis;
      const strides = shape.map((_, i) => shape.slice(i + 1).reduce((p, d) => p * d, 1));
      const expected = Array.from(x.data, (_, i) => {
        const co = coordsOf(i, shape);
        let s = 0;
        for (let k = 0; k <= co[a]; k++) s += x.data[i - (co[a] - k) * strides[a]];
        return s;
      });
      expectClose(c.values, expected, { rtol: 1e-6, atol: 1e-6, label: `${label} cpu` });
    }
  });
});
