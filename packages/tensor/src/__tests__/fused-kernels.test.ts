import { type FusedOpName, type OpAttrs, type Tensor, runOp, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

let seed = 100;

/** The same seeded data on cpu and webgpu. */
function pair(shape: number[], lo = -3, hi = 3): [Tensor, Tensor] {
  const data = randomArray(shape.reduce((p, d) => p * d, 1), seed++, lo, hi);
  return [tensor(data, shape, { backend: 'cpu' }), tensor(data, shape, { backend: 'webgpu' })];
}

/** Runs `op` on both backends and compares (f32 rounding of sums over a row). */
async function compare<K extends FusedOpName>(op: K, cpuIn: Tensor[], gpuIn: Tensor[], attrs: OpAttrs[K], label: string): Promise<void> {
  const expected = runOp(op, cpuIn, attrs);
  const actual = runOp(op, gpuIn, attrs);
  expect(actual.shape).toEqual(expected.shape);
  expectClose(await actual.data(), await expected.data(), { rtol: 1e-4, atol: 2e-5, label: `${op} ${label}` });
  expected.dispose();
  actual.dispose();
}

const WIDTHS = [1, 7, 64, 65, 1000, 5000];
const ROWS = [1, 3, 130];

describe('webgpu fused row kernels match cpu', () => {
  for (const w of WIDTHS) {
    it(`rows of width ${w}`, async () => {
      if (!backendsUnderTest().includes('webgpu')) return;
      for (const rows of ROWS) {
        if (rows * w > 200_000) continue;
        const label = `[${rows}, ${w}]`;
        const [xc, xg] = pair([rows, w]);
        const [dyc, dyg] = pair([rows, w], -1, 1);
        const [wc, wg] = pair([w], 0.5, 1.5);
        const [bc, bg] = pair([w]);
        await compare('Softmax', [xc], [xg], {}, label);
        await compare('LogSoftmax', [xc], [xg], {}, label);
        const yc = runOp('Softmax', [xc], {});
        const yg = runOp('Softmax', [xg], {});
        await compare('SoftmaxGrad', [dyc, yc], [dyg, yg], {}, label);
        const lc = runOp('LogSoftmax', [xc], {});
        const lg = runOp('LogSoftmax', [xg], {});
        await compare('LogSoftmaxGrad', [dyc, lc], [dyg, lg], {}, label);
        await compare('LayerNorm', [xc, wc, bc], [xg, wg, bg], { eps: 1e-5 }, label);
        await compare('LayerNormGrad', [dyc, xc, wc], [dyg, xg, wg], { eps: 1e-5 }, label);
        await compare('RmsNorm', [xc, wc], [xg, wg], { eps: 1e-6 }, label);
        await compare('RmsNormGrad', [dyc, xc, wc], [dyg, xg, wg], { eps: 1e-6 }, label);
        // Labels in range, with one row ignored (ignoreIndex) when there are several.
        const labels = randomInts(rows, w, seed++);
        if (rows > 1) labels[1] = -100;
        const lcpu = tensor(labels, [rows], { dtype: 'i32', backend: 'cpu' });
        const lgpu = tensor(labels, [rows], { dtype: 'i32', backend: 'webgpu' });
        await compare('CrossEntropy', [xc, lcpu], [xg, lgpu], { ignoreIndex: -100 }, label);
        const [gc, gg] = pair([rows], -1, 1);
        await compare('CrossEntropyGrad', [gc, xc, lcpu], [gg, xg, lgpu], { ignoreIndex: -100 }, label);
        for (const t of [xc, xg, dyc, dyg, wc, wg, bc, bg, yc, yg, lc, lg, lcpu, lgpu, gc, gg]) t.dispose();
      }
    });
  }

  it('propagates NaN through the row max like the cpu kernel', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    for (const w of [7, 1000]) {
      const data = randomArray(2 * w, seed++);
      data[w + 3] = NaN;
      const xc = tensor(data, [2, w], { backend: 'cpu' });
      const xg = tensor(data, [2, w], { backend: 'webgpu' });
      await compare('Softmax', [xc], [xg], {}, `NaN [2, ${w}]`);
      await compare('LogSoftmax', [xc], [xg], {}, `NaN [2, ${w}]`);
      xc.dispose();
      xg.dispose();
    }
  });
});
