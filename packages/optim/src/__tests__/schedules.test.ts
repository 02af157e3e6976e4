import { tensor } from '@webpeft/tensor';
import { expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { SGD, type LambdaLr, constantSchedule, cosineWithWarmup, linearWithWarmup } from '../index.js';
import fixture from './fixtures/schedules.json' with { type: 'json' };

beforeAll(async () => {
  await initBackends();
});

const make = {
  constant: constantSchedule,
  linear: linearWithWarmup,
  cosine: cosineWithWarmup,
} as Record<string, (opt: SGD, o: never) => LambdaLr>;

function optimizer(): SGD {
  const [a, b] = [tensor([1], [1], { backend: 'cpu' }), tensor([2], [1], { backend: 'cpu' })];
  // Schedules only read the groups' lr: the parameters end with the test.
  onTestFinished(() => {
    a.dispose();
    b.dispose();
  });
  return new SGD([{ params: [a], lr: fixture.baseLrs[0] }, { params: [b], lr: fixture.baseLrs[1] }]);
}

describe('lr schedules match torch LambdaLR with the Hugging Face lambdas, step by step', () => {
  for (const [name, s] of Object.entries(fixture.schedules)) {
    it(name, () => {
      const opt = optimizer();
      const sched = make[s.kind](opt, s.options as never);
      const got: number[][] = [];
      for (let t = 0; t < s.lrs.length; t++) {
        got.push(sched.getLastLr());
        sched.step();
      }
      // Same float64 formulas; only Math.cos may differ from C's cos in the last ulp.
      expectClose(got.flat(), s.lrs.flat(), { rtol: 1e-14, atol: 1e-17, label: name });
    });
  }

  it('a scheduler attached after a resume keeps the original base lr (initialLr)', () => {
    const opt = optimizer();
    const first = linearWithWarmup(opt, { warmupSteps: 0, totalSteps: 10 });
    for (let i = 0; i < 5; i++) first.step();
    expect(opt.paramGroups[0].lr).toBeCloseTo(fixture.baseLrs[0] / 2, 15);
    const second = linearWithWarmup(opt, { warmupSteps: 0, totalSteps: 10 });
    expect(second.baseLrs).toEqual(fixture.baseLrs);
    second.loadStateDict(first.stateDict());
    expect(second.getLastLr()).toEqual(first.getLastLr());
  });

  it('rejects bad step counts', () => {
    expect(() => cosineWithWarmup(optimizer(), { warmupSteps: -1, totalSteps: 3 })).toThrow(/warmupSteps must be a non-negative integer/);
  });
});
