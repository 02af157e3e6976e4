import { tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { clipGradNorm } from '../index.js';

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
});
