import { tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { NonFiniteGradientError, clipGradNorm, clipGradNormReport } from '../index.js';

beforeAll(async () => {
  await initBackends();
});

const SIZES = [12, 5, 7];

/** Float64 reference of torch.nn.utils.clip_grad_norm_: norm of per-tensor norms, coef clamped to 1. */
function reference(grads: Float32Array[], maxNorm: number, p: number): { norm: number; clipped: number[][] } {
  const norm1 = (xs: ArrayLike<number>) => {
    const a = Array.from(xs, Math.abs);
    return p === Infinity ? Math.max(...a) : a.reduce((s, x) => s + x ** p, 0) ** (1 / p);
  };
  const norm = norm1(grads.map(norm1));
  const coef = Math.min(maxNorm / (norm + 1e-6), 1);
  return { norm, clipped: grads.map((g) => Array.from(g, (x) => Math.fround(x) * Math.fround(coef))) };
}

describe('clipGradNorm', () => {
  for (const [p, maxNorm] of [[2, 1], [1, 2], [Infinity, 0.5], [3, 1.5], [2, 100]] as const) {
    it(`norm type ${p}, max ${maxNorm}: returns the total norm and scales the gradients`, async () => {
      for (const backend of backendsUnderTest()) {
        const grads = SIZES.map((n, i) => Float32Array.from(randomArray(n, 40 + i, -1, 1)));
        const params = SIZES.map((n) => tensor(new Float32Array(n).fill(0.5), [n], { backend, requiresGrad: true }));
        params.forEach((q, i) => (q.grad = tensor(grads[i], [SIZES[i]], { backend })));
        const keep = params.map((q) => q.grad);
        const extra = tensor([1, 2], [2], { backend, requiresGrad: true }); // no gradient: ignored
        const norm = await clipGradNorm([...params, extra], maxNorm, p);
        const ref = reference(grads, maxNorm, p);
        expectClose([norm], [ref.norm], { rtol: 1e-5, label: `${backend} norm` });
        for (let i = 0; i < params.length; i++) {
          expect(params[i].grad, 'gradient tensor kept in place').toBe(keep[i]);
          expectClose(await params[i].grad!.data(), ref.clipped[i], { rtol: 2e-6, atol: 1e-7, label: `${backend} grad ${i}` });
        }
        if (maxNorm === 100) expect(ref.norm).toBeLessThan(100);
        for (const q of [...params, extra]) q.dispose();
      }
    });
  }

  it('returns 0 when no parameter has a gradient and rejects a negative max', async () => {
    const q = tensor([1], [1], { backend: 'cpu', requiresGrad: true });
    expect(await clipGradNorm([q], 1)).toBe(0);
    await expect(clipGradNorm([q], -1)).rejects.toThrow(/maxNorm must be >= 0/);
    q.dispose();
  });

  for (const [bad, p] of [[NaN, 2], [Infinity, 2], [-Infinity, 1], [NaN, Infinity], [Infinity, Infinity]] as const) {
    it(`a ${bad} gradient with norm type ${p}: NaN norm on every backend, flagged and named, gradients unchanged`, async () => {
      for (const backend of backendsUnderTest()) {
        const grads = SIZES.map((n, i) => Float32Array.from(randomArray(n, 60 + i, -1, 1)));
        grads[1][3] = bad;
        const params = SIZES.map((n, i) => {
          const q = tensor(new Float32Array(n).fill(0.5), [n], { backend, requiresGrad: true });
          q.grad = tensor(grads[i], [n], { backend });
          return q;
        });
        const names = ['a', 'b', 'c'];
        const report = await clipGradNormReport(params, 1, { normType: p, names });
        expect(report.norm, backend).toBeNaN();
        expect(report).toMatchObject({ finite: false, clipped: false, nonFinite: [{ group: 0, index: 1, name: 'b' }] });
        for (let i = 0; i < params.length; i++) expect(Array.from(await params[i].grad!.data()), `${backend} grad ${i}`).toEqual(Array.from(grads[i]));
        expect(await clipGradNorm(params, 1, p)).toBeNaN();
        const err = await clipGradNorm(params, 1, { normType: p, names, errorIfNonFinite: true }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(NonFiniteGradientError);
        expect((err as Error).message).toBe('clipGradNorm: non-finite gradients in b (group 0 param 1); nothing was updated');
        for (const q of params) q.dispose();
      }
    });
  }

  it('finite gradients whose 2-norm overflows f32: Infinity on every backend, gradients unchanged', async () => {
    for (const backend of backendsUnderTest()) {
      // Each square (1e30^2 = 1e60) overflows f32 (max about 3.4e38); float64 reference: sqrt(12) * 1e30 is finite, f32 is not.
      const g = new Float32Array(12).fill(1e30);
      const q = tensor(new Float32Array(12).fill(0.5), [12], { backend, requiresGrad: true });
      q.grad = tensor(g, [12], { backend });
      const report = await clipGradNormReport([q], 1);
      expect(report).toEqual({ norm: Infinity, finite: false, clipped: false, nonFinite: [] });
      expect(Array.from(await q.grad.data())).toEqual(Array.from(g));
      await expect(clipGradNorm([q], 1, { errorIfNonFinite: true })).rejects.toThrow(/clipGradNorm: the total 2-norm of finite gradients overflows to Infinity; gradients unchanged/);
      q.dispose();
    }
  });

  it('reports whether it clipped', async () => {
    for (const backend of backendsUnderTest()) {
      const q = tensor([1, 2], [2], { backend, requiresGrad: true });
      q.grad = tensor([3, 4], [2], { backend });
      // |(3, 4)| = 5 exactly.
      expect(await clipGradNormReport([q], 10)).toEqual({ norm: 5, finite: true, clipped: false, nonFinite: [] });
      expect(await clipGradNormReport([q], 1)).toEqual({ norm: 5, finite: true, clipped: true, nonFinite: [] });
      expectClose(await q.grad.data(), [0.6, 0.8], { rtol: 1e-6 });
      q.dispose();
    }
  });
});
