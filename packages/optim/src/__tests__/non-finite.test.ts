import { AdamW } from '../index.js';
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

describe('a parameter on a backend without an update kernel', () => {
  it('fails the step before any parameter changes, naming the parameter and the backend', async () => {
    const onCpu = tensor(new Float32Array([0.5, -1.5, 2]), [3], { backend: 'cpu', requiresGrad: true });
    const onMeta = tensor(new Float32Array(4), [4], { backend: 'meta', requiresGrad: true });
    onCpu.grad = tensor(new Float32Array([0.1, 0.2, -0.3]), [3], { backend: 'cpu' });
    onMeta.grad = tensor(new Float32Array(4), [4], { backend: 'meta' });
    const opt = new AdamW([onCpu, onMeta], { lr: 0.1 });
    await expect(opt.step()).rejects.toThrow(/AdamW: parameter .* is on backend 'meta', which has no optimizer update kernel/i);
    expect(Array.from(await onCpu.data())).toEqual(Array.from(new Float32Array([0.5, -1.5, 2])));
    opt.zeroGrad();
    for (const t of [onCpu, onMeta]) t.dispose();
    opt.disposeState();
  });
});
