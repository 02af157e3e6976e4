import * as T from '@webpeft/tensor';
import { ShapeError, DTypeError, tensor } from '@webpeft/tensor';
import { expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type HostInput, expectBackendsAgree, uniform } from './conformance.js';

beforeAll(async () => {
  await initBackends();
});

/** Float64 reference of `op(a) op(b)` with batch broadcasting. */
function matmulRef(a: HostInput, b: HostInput, ta: boolean, tb: boolean): { shape: number[]; values: number[] } {
  const [a0, a1] = a.shape.slice(-2);
  const [b0, b1] = b.shape.slice(-2);
  const m = ta ? a1 : a0;
  const k = ta ? a0 : a1;
  const n = tb ? b0 : b1;
  const ba = a.shape.slice(0, -2);
  const bb = b.shape.slice(0, -2);
  const rank = Math.max(ba.length, bb.length);
  const batch: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = ba[ba.length - rank + i] ?? 1;
    const y = bb[bb.length - rank + i] ?? 1;
    batch.push(x === 1 ? y : x);
  }
  const nb = batch.reduce((p, d) => p * d, 1);
  const flatBatch = (t: number, own: readonly number[]) => {
    let idx = 0;
    let rem = t;
    const coords: number[] = [];
    for (let d = rank - 1; d >= 0; d--) {
      coords[d] = rem % batch[d];
      rem = Math.floor(rem / batch[d]);
    }
    const off = rank - own.length;
    for (let d = 0; d < own.length; d++) idx = idx * own[d] + (own[d] === 1 ? 0 : coords[d + off]);
    return idx;
  };
  const values: number[] = [];
  for (let t = 0; t < nb; t++) {
    const ao = flatBatch(t, ba) * m * k;
    const bo = flatBatch(t, bb) * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a.data[ao + (ta ? p * m + i : i * k + p)] * b.data[bo + (tb ? j * k + p : p * n + j)];
        values.push(s);
      }
    }
  }
  return { shape: [...batch, m, n], values };
}

/** [a shape, b shape] for op(a) op(b) with no transposes; transposed variants are derived. */
const CASES: [number[], number[]][] = [
  [[1, 1], [1, 1]],
  [[3, 5], [5, 7]],
  [[7, 1], [1, 9]],
  [[1, 13], [13, 1]],
  [[17, 33], [33, 19]],
  [[2, 3, 5], [2, 5, 4]],
  [[2, 3, 5], [5, 4]],
  [[4, 1, 3, 5], [3, 5, 2]],
  [[65, 70], [70, 66]],
  [[0, 5], [5, 3]],
  [[3, 0], [0, 4]],
  [[3, 5], [5, 0]],
  [[0, 3, 5], [5, 2]],
];

const tr = (s: number[]) => [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]];

describe('matmul: webgpu vs cpu, cpu vs float64 reference', () => {
  for (const [ta, tb] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const) {
    it(`transposeA ${ta}, transposeB ${tb}`, async () => {
      let seed = 1;
      for (const [sa, sb] of CASES) {
        const a = uniform(ta ? tr(sa) : sa, seed++);
        const b = uniform(tb ? tr(sb) : sb, seed++);
        const label = `matmul ${JSON.stringify(a.shape)}${ta ? 'ᵀ' : ''} x ${JSON.stringify(b.shape)}${tb ? 'ᵀ' : ''}`;
        // Dot products of up to 70 f32 terms in different orders: 1e-4 relative, 1e-5 absolute.
        const [out] = await expectBackendsAgree((x, y) => T.matmul(x, y, { transposeA: ta, transposeB: tb }), [a, b], { rtol: 1e-4, atol: 1e-5 }, label);
        const ref = matmulRef(a, b, ta, tb);
        expect(out.shape, label).toEqual(ref.shape);
        expectClose(out.values, ref.values, { rtol: 1e-6, atol: 1e-6, label: `${label} cpu` });
      }
    });
  }

  it('an inner-dim mismatch is a ShapeError naming both shapes; dtypes must match', () => {
    const a = tensor(new Float32Array(6), [2, 3], { backend: 'cpu' });
    const b = tensor(new Float32Array(8), [4, 2], { backend: 'cpu' });
    expect(() => T.matmul(a, b)).toThrow(ShapeError);
    expect(() => T.matmul(a, b)).toThrow(/matmul.*\[2,3\].*\[4,2\]/);
    const c = tensor(new Int32Array(6), [3, 2], { backend: 'cpu' });
    expect(() => T.matmul(a, c)).toThrow(DTypeError);
    const v = tensor(new Float32Array(3), [3], { backend: 'cpu' });
    expect(() => T.matmul(a, v)).toThrow(/rank/);
    const x = tensor(new Float32Array(2 * 2 * 3), [2, 2, 3], { backend: 'cpu' });
    const y = tensor(new Float32Array(3 * 3 * 1), [3, 3, 1], { backend: 'cpu' });
    expect(() => T.matmul(x, y)).toThrow(ShapeError);
    for (const t of [a, b, c, v, x, y]) t.dispose();
  });
});
