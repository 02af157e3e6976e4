import * as T from '@webpeft/tensor';
import { type Tensor, ShapeError } from '@webpeft/tensor';
import { initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type HostInput, coordsOf, expectBackendsAgree, ints, runOn, uniform } from './conformance.js';

beforeAll(async () => {
  await initBackends();
});

// Layout ops only move values: both backends must agree bit for bit with the reference.
const EXACT = { rtol: 0, atol: 0 };

/** Reference: element at output coordinate c is the input at `src(c)` (or `fill` when null). */
function gatherRef(x: HostInput, outShape: number[], src: (c: number[]) => number[] | null, fill = 0): number[] {
  const n = outShape.reduce((p, d) => p * d, 1);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = src(coordsOf(i, outShape));
    if (!s) out.push(fill);
    else out.push(x.data[s.reduce((acc, v, d) => acc * x.shape[d] + v, 0)]);
  }
  return out;
}

async function check(fn: (x: Tensor) => Tensor, x: HostInput, outShape: number[], src: (c: number[]) => number[] | null, label: string, fill = 0) {
  const [out] = await expectBackendsAgree(fn, [x], EXACT, label);
  expect(out.shape, label).toEqual(outShape);
  expect(Array.from(out.values), label).toEqual(gatherRef(x, outShape, src, fill).map(Math.fround));
}

describe('layout ops: webgpu vs cpu vs reference (exact)', () => {
  it('reshape, unsqueeze, squeeze share values', async () => {
    const x = uniform([2, 3, 5], 1);
    const [r, u, s] = await expectBackendsAgree((t) => [T.reshape(t, [5, -1]), T.unsqueeze(t, 1), T.squeeze(T.unsqueeze(t, -1))], [x], EXACT, 'reshape');
    expect(r.shape).toEqual([5, 6]);
    expect(u.shape).toEqual([2, 1, 3, 5]);
    expect(s.shape).toEqual([2, 3, 5]);
    expect(Array.from(r.values)).toEqual(Array.from(x.data));
  });

  it('permute and transpose', async () => {
    const x = uniform([2, 3, 5], 2);
    await check((t) => T.permute(t, [2, 0, 1]), x, [5, 2, 3], (c) => [c[1], c[2], c[0]], 'permute 201');
    await check((t) => T.transpose(t), x, [2, 5, 3], (c) => [c[0], c[2], c[1]], 'transpose');
    const y = uniform([3, 1, 4, 2], 3);
    await check((t) => T.permute(t, [3, 2, 1, 0]), y, [2, 4, 1, 3], (c) => [c[3], c[2], c[1], c[0]], 'permute rank4');
    const e = uniform([2, 0, 3], 4);
    await check((t) => T.transpose(t, 0, 2), e, [3, 0, 2], (c) => [c[2], c[1], c[0]], 'transpose empty');
  });

  it('slice, narrow and split', async () => {
    const x = uniform([5, 7], 5);
    await check((t) => T.slice(t, [1, 2], [3, 4]), x, [3, 4], (c) => [c[0] + 1, c[1] + 2], 'slice');
    await check((t) => T.slice(t, [-2]), x, [2, 7], (c) => [c[0] + 3, c[1]], 'slice negative begin');
    await check((t) => T.narrow(t, 1, 6, 1), x, [5, 1], (c) => [c[0], 6], 'narrow');
    await check((t) => T.narrow(t, 1, 3, 0), x, [5, 0], () => null, 'narrow to empty');
    const parts = await runOn('cpu', (t) => T.split(t, [2, 0, 3], 0), [x]);
    expect(parts.map((p) => p.shape)).toEqual([[2, 7], [0, 7], [3, 7]]);
    await expectBackendsAgree((t) => T.split(t, [2, 5], 1), [x], EXACT, 'split');
  });

  it('pad with a value', async () => {
    const x = uniform([2, 3], 6);
    await check((t) => T.pad(t, [[1, 0], [2, 3]], -7), x, [3, 8], (c) => (c[0] >= 1 && c[1] >= 2 && c[1] < 5 ? [c[0] - 1, c[1] - 2] : null), 'pad', -7);
    await check((t) => T.pad(t, [[0, 0], [0, 0]]), x, [2, 3], (c) => c, 'pad nothing');
    const e = uniform([0, 3], 7);
    await check((t) => T.pad(t, [[1, 1]], 2.5), e, [2, 3], () => null, 'pad empty', 2.5);
  });

  it('expand', async () => {
    const x = uniform([3, 1], 8);
    await check((t) => T.expand(t, [2, 3, 4]), x, [2, 3, 4], (c) => [c[1], 0], 'expand');
    const s = uniform([], 9);
    await check((t) => T.expand(t, [5]), s, [5], () => [], 'expand scalar');
    await check((t) => T.expand(t, [0, 3, 1]), x, [0, 3, 1], () => null, 'expand to empty');
  });

  it('concat and stack', async () => {
    const a = uniform([2, 3], 10);
    const b = uniform([2, 4], 11);
    const c = uniform([2, 0], 12);
    const [cat] = await expectBackendsAgree((x, y, z) => T.concat([x, y, z], 1), [a, b, c], EXACT, 'concat');
    expect(cat.shape).toEqual([2, 7]);
    const expected = [...a.data.slice(0, 3), ...b.data.slice(0, 4), ...a.data.slice(3), ...b.data.slice(4)];
    expect(Array.from(cat.values)).toEqual(expected);
    const p = uniform([3, 2], 13);
    const q = uniform([3, 2], 14);
    const [st] = await expectBackendsAgree((x, y) => T.stack([x, y], 1), [p, q], EXACT, 'stack');
    expect(st.shape).toEqual([3, 2, 2]);
    expect(Array.from(st.values)).toEqual([p.data[0], p.data[1], q.data[0], q.data[1], p.data[2], p.data[3], q.data[2], q.data[3], p.data[4], p.data[5], q.data[4], q.data[5]]);
  });

  it('gather rows and scatterAdd (duplicates accumulate)', async () => {
    const x = uniform([6, 5], 15);
    const idx = ints([2, 3], 16, 0, 6);
    const [g] = await expectBackendsAgree((t, i) => T.gather(t, i), [x, idx], EXACT, 'gather');
    expect(g.shape).toEqual([2, 3, 5]);
    expect(Array.from(g.values)).toEqual(Array.from({ length: 30 }, (_, k) => x.data[idx.data[Math.floor(k / 5)] * 5 + (k % 5)]));
    const empty = { data: new Int32Array(0), shape: [0] };
    const [ge] = await expectBackendsAgree((t, i) => T.gather(t, i), [x, empty], EXACT, 'gather empty');
    expect(ge.shape).toEqual([0, 5]);

    const src = uniform([4, 3], 17);
    const dup = { data: new Int32Array([2, 0, 2, 2]), shape: [4] };
    // Duplicate rows are summed in an unspecified order on webgpu (atomics): f32 rounding only.
    const [s] = await expectBackendsAgree((t, i) => T.scatterAdd(t, i, 5), [src, dup], { rtol: 1e-6, atol: 1e-7 }, 'scatterAdd');
    const ref = new Array<number>(15).fill(0);
    for (let r = 0; r < 4; r++) for (let k = 0; k < 3; k++) ref[dup.data[r] * 3 + k] += src.data[r * 3 + k];
    expect(s.shape).toEqual([5, 3]);
    s.values.forEach((v, i) => expect(v).toBeCloseTo(ref[i], 6));
  });

  it('triu with a diagonal and a fill value, batched', async () => {
    const x = uniform([2, 3, 4], 18);
    for (const diagonal of [0, 1, -1]) {
      await check((t) => T.triu(t, diagonal, -1e9), x, [2, 3, 4], (c) => (c[2] - c[1] >= diagonal ? c : null), `triu ${diagonal}`, -1e9);
    }
  });

  it('cast between f32, i32, u32 and bool', async () => {
    const x = { data: new Float32Array([-2.7, -0.5, 0, 0.5, 1.9, 3, 100.25]), shape: [7] };
    const [toI, toB] = await expectBackendsAgree((t) => [T.cast(t, 'i32'), T.cast(t, 'bool')], [x], EXACT, 'cast f32');
    expect(toI.dtype).toBe('i32');
    expect(Array.from(toI.values)).toEqual([-2, 0, 0, 0, 1, 3, 100]);
    expect(Array.from(toB.values)).toEqual([1, 1, 0, 1, 1, 1, 1]);
    const i = ints([3, 5], 19, -9, 9);
    const [f, u] = await expectBackendsAgree((t) => [T.cast(t, 'f32'), T.cast(T.abs(T.cast(t, 'f32')), 'u32')], [i], EXACT, 'cast i32');
    expect(Array.from(f.values)).toEqual(Array.from(i.data));
    expect(Array.from(u.values)).toEqual(Array.from(i.data, Math.abs));
  });

  it('bad layouts throw ShapeError naming the op', () => {
    const x = T.zeros([2, 3], { backend: 'cpu' });
    expect(() => T.reshape(x, [4, 2])).toThrow(ShapeError);
    expect(() => T.permute(x, [0, 0])).toThrow(/permute/);
    expect(() => T.slice(x, [1], [2])).toThrow(/slice/);
    expect(() => T.expand(x, [2, 4])).toThrow(/expand/);
    const y = T.zeros([3, 3], { backend: 'cpu' });
    expect(() => T.concat([x, y], 1)).toThrow(/concat/);
    x.dispose();
    y.dispose();
  });
});
