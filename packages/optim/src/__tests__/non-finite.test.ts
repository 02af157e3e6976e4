import { tensor } from '@webpeft/tensor';
import { backendsUnderTest, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { golden, makeOptimizer, makeParams, readAll, setGrads } from './helpers.js';

beforeAll(async () => {
  await initBackends();
});

describe('skip-step on non-finite gradients', () => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    it(`a ${bad} in one gradient skips the whole step, names the parameter, and changes nothing`, async () => {
      for (const backend of backendsUnderTest()) {
        const params = makeParams(backend);
        const opt = makeOptimizer('adamw', params);
        setGrads(params, 0, backend);
        await opt.step();
        opt.zeroGrad();
        const before = await readAll(params);
        const stateBefore = await opt.stateDict();

        setGrads(params, 1, backend);
        const g = Float32Array.from(golden.grads[1][2]);
        g[4] = bad;
        params[2].grad!.dispose();
        params[2].grad = tensor(g, params[2].shape, { backend });
        const report = await opt.step();
        expect(report.skipped).toBe(true);
        expect(report.updated).toBe(0);
        expect(report.nonFinite).toEqual([{ group: 1, index: 0, name: 'p2' }]);
        expect(report.message).toMatch(/skipped step: non-finite gradients in p2 \(group 1 param 0\)/);
        expect(opt.skippedSteps).toBe(1);
        const after = await readAll(params);
        after.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(before[i])));
        const stateAfter = await opt.stateDict();
        expect(stateAfter.state[2].step).toBe(stateBefore.state[2].step);
        expect(Array.from(stateAfter.state[2].buffers.expAvg.data)).toEqual(Array.from(stateBefore.state[2].buffers.expAvg.data));

        // The next finite step continues the run as if the bad step never happened.
        setGrads(params, 1, backend);
        expect((await opt.step()).skipped).toBe(false);
        const got = await readAll(params);
        got.forEach((v, i) => expect(Math.abs(v[0] - golden.configs.adamw.params[1][i][0])).toBeLessThan(1e-5));
        opt.zeroGrad();
        opt.disposeState();
        for (const p of params) p.dispose();
      }
    });
  }

  it('with skipNonFinite off the update runs and propagates the NaN', async () => {
    for (const backend of backendsUnderTest()) {
      const params = makeParams(backend);
      const opt = makeOptimizer('sgd', params, { skipNonFinite: false });
      setGrads(params, 0, backend);
      params[1].grad!.dispose();
      params[1].grad = tensor(new Float32Array(5).fill(NaN), [5], { backend });
      const report = await opt.step();
      expect(report.skipped).toBe(false);
      expect(Number.isNaN((await params[1].data())[0])).toBe(true);
      opt.zeroGrad();
      for (const p of params) p.dispose();
    }
  });
});
