/**
 * Gradients through matmul on every webgpu variant (forced, so each runs on any
 * adapter) against the cpu backend: `dA = dY op(B)^T` and `dB = op(A)^T dY` are
 * matmuls with other transpose flags, so each forward layout's backward runs the forced
 * variant in the transposed layouts too. Node only, like `matmul-kernels.node.test.ts`.
 */
import * as T from '@webpeft/tensor';
import { getBackend } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends } from '@webpeft/test-utils';
import { afterEach, beforeAll, describe, it } from 'vitest';
import { type MatmulVariant, setMatmulVariantOverride } from '../backends/webgpu/kernels/matmul.js';
import { gradsOn, uniform } from './conformance.js';

beforeAll(async () => {
  await initBackends();
});

afterEach(() => setMatmulVariantOverride(null));

/** [a shape, b shape, transposeA, transposeB] per variant: odd sizes, batches, both transposes. */
const CASES: { variant: MatmulVariant; cases: [number[], number[], boolean, boolean][] }[] = [
  { variant: 'shared', cases: [[[2, 33, 29], [29, 41], false, false], [[40, 68], [2, 1, 40, 72], true, false], [[3, 20, 36], [3, 44, 36], false, true]] },
  { variant: 'tile', cases: [[[2, 33, 29], [29, 41], false, false], [[3, 20, 36], [3, 44, 36], false, true]] },
  { variant: 'splitk', cases: [[[64, 512], [8, 512], false, true]] },
  { variant: 'subgroup', cases: [[[64, 512], [8, 512], false, true]] },
];

describe('matmul gradients on the webgpu variants match cpu', () => {
  for (const { variant, cases } of CASES) {
    it(`${variant}`, { timeout: 600_000 }, async () => {
      if (!backendsUnderTest().includes('webgpu')) return;
      if (variant === 'subgroup' && !getBackend('webgpu').capabilities.subgroups) return;
      let seed = 400;
      for (const [sa, sb, tA, tB] of cases) {
        const inputs = [uniform(sa, seed++), uniform(sb, seed++)];
        const fn = (a: T.Tensor, b: T.Tensor) => T.matmul(a, b, { transposeA: tA, transposeB: tB });
        const cpu = await gradsOn('cpu', fn, inputs);
        setMatmulVariantOverride(variant);
        const gpu = await gradsOn('webgpu', fn, inputs);
        setMatmulVariantOverride(null);
        // Sums of up to ~512 products of terms <= 1 in f32: relative 1e-4, absolute 1e-5 sqrt(k).
        for (let i = 0; i < 2; i++) {
          expectClose(gpu[i]!, cpu[i]!, { rtol: 1e-4, atol: 3e-4, label: `${variant} d${'ab'[i]} ${JSON.stringify(sa)}${tA ? 'ᵀ' : ''} x ${JSON.stringify(sb)}${tB ? 'ᵀ' : ''}` });
        }
      }
    });
  }
});
