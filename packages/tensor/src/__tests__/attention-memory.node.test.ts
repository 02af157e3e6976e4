/**
 * The fused attention kernels' peak bytes at T = 1024 against the eager attention's (no
 * [B, H, T, L] scores held). Node only: the peak is the runtime's own accounting, the
 * same in a browser, where SwiftShader takes 20 s for this one step.
 */
import {
  ATTENTION_MASKED_SCORE,
  type Tensor,
  add,
  full,
  fusedAttention,
  matmul,
  memory,
  mul,
  randn,
  reshape,
  resetPeakMemory,
  softmax,
  sum,
  tidy,
  triu,
} from '@webpeft/tensor';
import { backendsUnderTest, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

describe('fusedAttention memory', () => {
  it('a T = 1024 forward + backward peaks below the eager attention (no [B, H, T, L] scores)', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const [b, h, t, dh] = [1, 2, 1024, 32];
    const peakOf = async (fn: (q: Tensor, k: Tensor, v: Tensor) => Tensor) => {
      const q = randn([b, h, t, dh], { backend: 'webgpu', requiresGrad: true });
      const k = randn([b, h, t, dh], { backend: 'webgpu', requiresGrad: true });
      const v = randn([b, h, t, dh], { backend: 'webgpu', requiresGrad: true });
      await q.data();
      resetPeakMemory('webgpu');
      const base = memory('webgpu').liveBytes;
      tidy(() => sum(fn(q, k, v)).backward());
      await q.grad!.data();
      const peak = memory('webgpu').peakBytes - base;
      for (const x of [q, k, v]) x.dispose();
      return peak;
    };
    const eager = (q: Tensor, k: Tensor, v: Tensor) => {
      const causal = reshape(triu(full([t, t], ATTENTION_MASKED_SCORE, { backend: 'webgpu' }), 1, 0), [1, 1, t, t]);
      return matmul(softmax(add(mul(matmul(q, k, { transposeB: true }), 1 / Math.sqrt(dh)), causal)), v);
    };
    const fused = await peakOf((q, k, v) => fusedAttention(q, k, v, { causal: true }));
    const unfused = await peakOf(eager);
    const scoresBytes = b * h * t * t * 4;
    // The eager path holds scores and probabilities (and their gradients) of 8 MiB each.
    expect(unfused).toBeGreaterThan(2 * scoresBytes);
    // The fused path's peak (inputs' gradients, the output and its statistics) stays below one score matrix.
    expect(fused, `fused peak ${fused} B vs eager ${unfused} B`).toBeLessThan(scoresBytes);
  });
});
