import { type Tensor, matmul, mean, square, sub, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { GradientAccumulator } from '../index.js';

beforeAll(async () => {
  await initBackends();
});

const N = 8;
const D = 3;

/** Mean squared error of a linear model on rows [from, to). */
function loss(w: Tensor, x: Float32Array, y: Float32Array, from: number, to: number): Tensor {
  const backend = w.backend.name;
  const xs = tensor(x.slice(from * D, to * D), [to - from, D], { backend });
  const ys = tensor(y.slice(from, to), [to - from, 1], { backend });
  return mean(square(sub(matmul(xs, w), ys)));
}

/** Float64 reference gradient of the full-batch mean squared error: (2/N) X^T (Xw - y). */
function referenceGrad(w: Float32Array, x: Float32Array, y: Float32Array): number[] {
  const g = new Array<number>(D).fill(0);
  for (let r = 0; r < N; r++) {
    let pred = 0;
    for (let c = 0; c < D; c++) pred += x[r * D + c] * w[c];
    for (let c = 0; c < D; c++) g[c] += (2 / N) * (pred - y[r]) * x[r * D + c];
  }
  return g;
}

describe('GradientAccumulator over 4 micro batches equals the full-batch gradient', () => {
  const x = Float32Array.from(randomArray(N * D, 7, -1, 1));
  const y = Float32Array.from(randomArray(N, 8, -1, 1));
  const w0 = Float32Array.from(randomArray(D, 9, -1, 1));
  const ref = referenceGrad(w0, x, y);

  for (const mode of ['scaleLoss', 'averageGrads'] as const) {
    it(mode, async () => {
      for (const backend of backendsUnderTest()) {
        const w = tensor(w0, [D, 1], { backend, requiresGrad: true });
        const acc = new GradientAccumulator(4);
        const ready: boolean[] = [];
        for (let mb = 0; mb < 4; mb++) {
          tidy(() => {
            const l = loss(w, x, y, mb * 2, mb * 2 + 2);
            (mode === 'scaleLoss' ? acc.scaleLoss(l) : l).backward();
          });
          ready.push(acc.microStep());
        }
        if (mode === 'averageGrads') acc.averageGrads([w]);
        expect(ready).toEqual([false, false, false, true]);
        expect(acc.count).toBe(0);
        expectClose(await w.grad!.data(), ref, { rtol: 1e-5, atol: 1e-6, label: `${backend} ${mode}` });
        w.dispose();
      }
    });
  }

  it('rejects a non-positive step count', () => {
    expect(() => new GradientAccumulator(0)).toThrow(/positive integer/);
  });
});
