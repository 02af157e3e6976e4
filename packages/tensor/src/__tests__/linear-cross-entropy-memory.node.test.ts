/**
 * The peak bytes of a fused linear + cross-entropy step with [1024, 32000] logits
 * against the unfused path (`matmul` + `crossEntropy`). Node only: the peak is the
 * runtime's own accounting, the same in a browser, where SwiftShader takes 27 s for it.
 */
import * as T from '@webpeft/tensor';
import { type Tensor, memory, resetPeakMemory, tensor } from '@webpeft/tensor';
import { backendsUnderTest, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { uniform } from './conformance.js';
import { type Problem, labelsWith } from './linear-cross-entropy-problems.js';

beforeAll(async () => {
  await initBackends();
});

type Loss = (h: Tensor, w: Tensor, l: Tensor, b: Tensor | undefined) => Tensor;

const fusedLoss = (opts: T.LinearCrossEntropyOptions): Loss => (h, w, l) => T.linearCrossEntropy(h, w, l, opts);
const unfusedLoss = (reduction: 'mean' | 'sum'): Loss => (h, w, l) => T.crossEntropy(T.matmul(h, w, { transposeB: true }), l, { reduction });

describe('linearCrossEntropy memory', () => {
  it('peak bytes of a step with [1024, 32000] logits stay below the unfused path', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const [n, d, v] = [1024, 16, 32000];
    const p: Problem = { hidden: uniform([n, d], 700), weight: uniform([v, d], 701, -0.2, 0.2), labels: labelsWith(n, v, 702, [0, 17]) };
    const peak = async (loss: Loss): Promise<number> => {
      const h = tensor(p.hidden.data, p.hidden.shape, { backend: 'webgpu', requiresGrad: true });
      // A frozen head (LoRA): the step forms dHidden only, which keeps the test short.
      const w = tensor(p.weight.data, p.weight.shape, { backend: 'webgpu' });
      const l = tensor(p.labels.data, [n], { backend: 'webgpu', dtype: 'i32' });
      resetPeakMemory('webgpu');
      const out = T.tidy(() => loss(h, w, l, undefined));
      out.backward();
      await out.item();
      const bytes = memory('webgpu').peakBytes;
      for (const t of [h.grad!, h, w, l, out]) t.dispose();
      return bytes;
    };
    const fused = await peak(fusedLoss({}));
    const unfused = await peak(unfusedLoss('mean'));
    // The unfused step holds logits and their gradient, 2 x 131 MB; the fused one a
    // 16 MiB chunk of logits (overwritten by its gradient), its weight rows and partial products.
    const logitsBytes = n * v * 4;
    expect(unfused).toBeGreaterThan(2 * logitsBytes);
    expect(fused).toBeLessThan(unfused / 4);
    expect(fused).toBeLessThan(logitsBytes / 2);
  }, 300_000);
});
