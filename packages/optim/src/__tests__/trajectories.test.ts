import { expectClose, backendsUnderTest, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { golden, makeOptimizer, makeParams, readAll, setGrads } from './helpers.js';

beforeAll(async () => {
  await initBackends();
});

// Bounds vs torch float32: the cpu reference rounds to f32 where torch stores a tensor, and
// WGSL may contract a*b+c into an fma, so values differ by a few f32 ulps after 10 steps.
const RTOL = 1e-5;
const ATOL = 1e-6;

describe('golden trajectories from PyTorch: 10 steps, two parameter groups, weight decay', () => {
  for (const name of Object.keys(golden.configs)) {
    it(`${name} matches torch step by step on every backend`, async () => {
      for (const backend of backendsUnderTest()) {
        const params = makeParams(backend);
        const opt = makeOptimizer(name, params);
        for (let step = 0; step < golden.grads.length; step++) {
          setGrads(params, step, backend);
          const report = await opt.step();
          expect(report.skipped).toBe(false);
          expect(report.updated).toBe(3);
          opt.zeroGrad();
          const got = await readAll(params);
          got.forEach((v, i) => expectClose(v, golden.configs[name].params[step][i], { rtol: RTOL, atol: ATOL, label: `${backend} ${name} step ${step + 1} p${i}` }));
        }
        opt.disposeState();
        for (const p of params) p.dispose();
      }
    });
  }
});
