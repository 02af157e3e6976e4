import { type Tensor, argmax, max, sum, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray, takeArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

let seed = 500;

function pair(data: Float32Array, shape: number[]): [Tensor, Tensor] {
  return [tensor(data, shape, { backend: 'cpu' }), tensor(data, shape, { backend: 'webgpu' })];
}

/** Compares sum/max/argmax over `axes` on both backends. */
async function compareAll(data: Float32Array, shape: number[], axes: number[], label: string): Promise<void> {
  const [xc, xg] = pair(data, shape);
  const count = axes.reduce((p, a) => p * shape[a], 1);
  const cases: [string, (x: Tensor) => Tensor][] = [
    ['sum', (x) => sum(x, axes)],
    ['max', (x) => max(x, axes, true)],
  ];
  if (axes.length === 1) cases.push(['argmax', (x) => argmax(x, axes[0])]);
  for (const [name, f] of cases) {
    const e = f(xc);
    const a = f(xg);
    expect(a.shape).toEqual(e.shape);
    // Different summation orders: error ~ sqrt(count) ulps of the partial sums.
    expectClose(await a.data(), await e.data(), { rtol: 1e-4, atol: 1e-6 * Math.sqrt(count) + 1e-6, label: `${name} ${label}` });
    e.dispose();
    a.dispose();
  }
  xc.dispose();
  xg.dispose();
}

describe('webgpu reductions match cpu', () => {
  it('long extents (workgroup variant): rows, columns and multi-axis', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    await compareAll(randomArray(3 * 4096, seed++) as Float32Array, [3, 4096], [1], 'rows of 4096');
    await compareAll(randomArray(1024 * 24, seed++) as Float32Array, [1024, 24], [0], 'bias grad [1024, 24] axis 0');
    await compareAll(randomArray(2 * 300 * 5, seed++) as Float32Array, [2, 300, 5], [0, 1], '[2, 300, 5] axes 0,1');
    await compareAll(randomArray(257, seed++) as Float32Array, [257], [0], '[257]');
  });

  it('short extents (thread variant)', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    await compareAll(randomArray(130 * 7, seed++) as Float32Array, [130, 7], [1], '[130, 7] axis 1');
    await compareAll(randomArray(5 * 6 * 4, seed++) as Float32Array, [5, 6, 4], [0, 2], '[5, 6, 4] axes 0,2');
  });

  it('argmax keeps the first maximum and the first NaN, max propagates NaN', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    for (const w of [10, 1000]) {
      const data = new Float32Array(4 * w).fill(-1);
      // Row 0: ties at 5.0 at positions 3 and w-2; row 1: NaN at w-3 and w-1 after a max;
      // row 2: all -Infinity; row 3: a tie at the very first and last positions.
      data[3] = 5;
      data[w - 2] = 5;
      data[w + 1] = 9;
      data[w + w - 3] = NaN;
      data[w + w - 1] = NaN;
      data.fill(-Infinity, 2 * w, 3 * w);
      data[3 * w] = 2;
      data[4 * w - 1] = 2;
      const [xc, xg] = pair(data, [4, w]);
      expect(await takeArray(argmax(xg, 1))).toEqual(await takeArray(argmax(xc, 1)));
      expect(await takeArray(argmax(xg, 1))).toEqual([3, w - 3, 0, 0]);
      const mg = await takeArray(max(xg, 1));
      expect(mg[0]).toBe(5);
      expect(Number.isNaN(mg[1])).toBe(true);
      expect(mg[2]).toBe(-Infinity);
      xc.dispose();
      xg.dispose();
    }
  });
});
