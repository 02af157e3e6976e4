import { TensorBusyError, add, sum, tensor } from '@webpeft/tensor';
import { backendsUnderTest, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { NonFiniteGradientError, type SchedulerStateDict, StepInFlightError, cosineWithWarmup } from '../index.js';
import { golden, makeOptimizer, makeParams, readAll, setGrads } from './helpers.js';

beforeAll(async () => {
  await initBackends();
});

/** Replaces element 4 of parameter 2's gradient with `bad`. */
function poison(params: ReturnType<typeof makeParams>, step: number, bad: number, backend: Parameters<typeof setGrads>[2]) {
  setGrads(params, step, backend);
  const g = Float32Array.from(golden.grads[step][2]);
  g[4] = bad;
  params[2].grad!.dispose();
  params[2].grad = tensor(g, params[2].shape, { backend });
}

async function snapshot(opt: ReturnType<typeof makeOptimizer>, params: ReturnType<typeof makeParams>) {
  const sd = await opt.stateDict();
  return { params: (await readAll(params)).map((a) => Array.from(a)), state: Object.values(sd.state).map((s) => [s.step, ...Object.values(s.buffers).map((b) => Array.from(b.data))]) };
}

describe('hyperparameters are checked at every step', () => {
  for (const [name, field, value] of [
    ['adamw', 'lr', NaN],
    ['adam', 'lr', -1e-3],
    ['sgd_momentum', 'momentum', Infinity],
    ['lion', 'weightDecay', NaN],
    ['adamw', 'eps', -1],
  ] as const) {
    it(`${name}: ${field} = ${value} set on a group fails the step naming optimizer, group and field; nothing changes`, async () => {
      for (const backend of backendsUnderTest()) {
        const params = makeParams(backend);
        const opt = makeOptimizer(name, params);
        setGrads(params, 0, backend);
        await opt.step();
        const before = await snapshot(opt, params);
        setGrads(params, 1, backend);
        (opt.paramGroups[1] as unknown as Record<string, number>)[field] = value;
        const ctor = golden.configs[name].optimizer;
        await expect(opt.step()).rejects.toThrow(new RegExp(`^${ctor} group 1: ${field} must be a finite number >= 0, got ${value}$`));
        await expect(opt.step()).rejects.toBeInstanceOf(RangeError);
        expect(await snapshot(opt, params)).toEqual(before);
        opt.zeroGrad();
        opt.disposeState();
        for (const p of params) p.dispose();
      }
    });
  }

  it('a NaN base lr in a scheduler state is refused on load; a lambda giving NaN fails the scheduler step', async () => {
    const backend = backendsUnderTest()[0];
    const params = makeParams(backend);
    const opt = makeOptimizer('adamw', params);
    const sched = cosineWithWarmup(opt, { warmupSteps: 2, totalSteps: 6 });
    sched.step();
    const lrs = sched.getLastLr();
    const good = sched.stateDict();
    for (const [bad, msg] of [
      [{ ...good, baseLrs: [NaN, 0.003] }, /baseLrs\[0\] must be a finite number >= 0, got NaN/],
      [{ ...good, baseLrs: [0.01, -1] }, /baseLrs\[1\] must be a finite number >= 0, got -1/],
      [{ ...good, baseLrs: [Infinity, 0.003] }, /baseLrs\[0\] must be a finite number >= 0, got Infinity/],
      [{ ...good, lastStep: -1 }, /lastStep must be a non-negative integer, got -1/],
      [{ ...good, lastStep: 1.5 }, /lastStep must be a non-negative integer, got 1.5/],
      [{ ...good, lastStep: NaN }, /lastStep must be a non-negative integer, got NaN/],
      [{ ...good, baseLrs: [0.01] }, /baseLrs has 1 entries, the optimizer has 2 groups/],
    ] as [SchedulerStateDict, RegExp][]) {
      expect(() => sched.loadStateDict(bad)).toThrow(msg);
      expect(sched.getLastLr()).toEqual(lrs);
      expect(sched.stateDict()).toEqual(good);
    }
    // A lambda that gives NaN (here: a base lr set to NaN by hand and a fresh scheduler) is refused at construction.
    opt.paramGroups[0].initialLr = NaN;
    expect(() => cosineWithWarmup(opt, { warmupSteps: 2, totalSteps: 6 })).toThrow(/group 0 lr at step 0 is NaN/);
    for (const p of params) p.dispose();
  });
});

describe('non-finite policy', () => {
  it("'throw': a NonFiniteGradientError names the parameters and nothing changes", async () => {
    for (const backend of backendsUnderTest()) {
      const params = makeParams(backend);
      const opt = makeOptimizer('adamw', params, { nonFinite: 'throw' });
      setGrads(params, 0, backend);
      await opt.step();
      const before = await snapshot(opt, params);
      poison(params, 1, NaN, backend);
      const err = await opt.step().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NonFiniteGradientError);
      expect((err as NonFiniteGradientError).params).toEqual([{ group: 1, index: 0, name: 'p2' }]);
      expect((err as Error).message).toBe('AdamW: non-finite gradients in p2 (group 1 param 0); nothing was updated');
      expect(await snapshot(opt, params)).toEqual(before);
      expect(opt.skippedSteps).toBe(0);
      opt.zeroGrad();
      opt.disposeState();
      for (const p of params) p.dispose();
    }
  });

  it("'warn' warns after N consecutive skips naming the parameters, and the count restarts after an applied step", async () => {
    for (const backend of backendsUnderTest()) {
      const params = makeParams(backend);
      const warnings: string[] = [];
      const opt = makeOptimizer('sgd', params, { nonFinite: 'warn', warnAfterSkips: 3, onWarning: (m) => warnings.push(m) });
      for (let i = 0; i < 2; i++) {
        poison(params, 0, Infinity, backend);
        expect((await opt.step()).skipped).toBe(true);
      }
      expect(warnings).toEqual([]);
      poison(params, 0, -Infinity, backend);
      await opt.step();
      expect(warnings).toEqual(['SGD: 3 consecutive steps skipped for non-finite gradients, last in p2 (group 1 param 0)']);
      setGrads(params, 0, backend);
      expect((await opt.step()).skipped).toBe(false);
      expect(opt.consecutiveSkips).toBe(0);
      for (let i = 0; i < 5; i++) {
        poison(params, 1, NaN, backend);
        await opt.step();
      }
      expect(warnings).toHaveLength(2);
      expect(opt.skippedSteps).toBe(8);
      opt.zeroGrad();
      opt.disposeState();
      for (const p of params) p.dispose();
    }
  });

  it("the default is 'warn' after 10 skips through console.warn; 'skip' never warns", async () => {
    const backend = backendsUnderTest()[0];
    const spy = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const params = makeParams(backend);
      const byDefault = makeOptimizer('sgd', params);
      const quiet = makeOptimizer('sgd', params, { nonFinite: 'skip' });
      for (let i = 0; i < 10; i++) {
        poison(params, 0, NaN, backend);
        await byDefault.step();
        await quiet.step();
      }
      expect(spy).toHaveBeenCalledTimes(1);
      expect(spy.mock.calls[0][0]).toMatch(/^SGD: 10 consecutive steps skipped for non-finite gradients, last in p2/);
      opt0(byDefault, quiet);
      for (const p of params) p.dispose();
    } finally {
      spy.mockRestore();
    }
  });

  it('rejects a bad policy option naming it', () => {
    const params = makeParams('cpu');
    expect(() => makeOptimizer('sgd', params, { nonFinite: 'ignore' as 'skip' })).toThrow(/SGD: option nonFinite must be 'skip', 'warn' or 'throw', got "ignore"/);
    expect(() => makeOptimizer('sgd', params, { warnAfterSkips: 0 })).toThrow(/SGD: option warnAfterSkips must be a positive integer, got 0/);
    for (const p of params) p.dispose();
  });
});

function opt0(...opts: ReturnType<typeof makeOptimizer>[]) {
  for (const o of opts) {
    o.zeroGrad();
    o.disposeState();
  }
}

describe('overlapping steps', () => {
  for (const name of ['adamw', 'sgd_momentum', 'lion']) {
    it(`${name}: a second step, or an op reading a parameter, while one is in flight throws naming the optimizer; the first applies exactly once`, async () => {
      for (const backend of backendsUnderTest()) {
        const ref = makeParams(backend);
        const refOpt = makeOptimizer(name, ref);
        setGrads(ref, 0, backend);
        await refOpt.step();

        const params = makeParams(backend);
        const opt = makeOptimizer(name, params);
        setGrads(params, 0, backend);
        const ctor = golden.configs[name].optimizer;
        // Every call below is made before the first step's promise can settle.
        const first = opt.step();
        const second = opt.step().catch((e: unknown) => e);
        const saving = opt.stateDict().catch((e: unknown) => e);
        expect(() => opt.loadStateDict({ optimizer: ctor, state: {}, paramGroups: [] })).toThrow(StepInFlightError);
        // A forward overlapping the step is refused (it would read old or half-updated values).
        expect(() => sum(params[1])).toThrow(TensorBusyError);
        expect(() => add(params[0], params[0])).toThrow(new RegExp(`^Add: tensor #${params[0].id} \\[[0-9, ]+\\] f32 is being updated by ${ctor}\\.step\\(\\) in flight; await it`));
        const err = await second;
        expect(err).toBeInstanceOf(StepInFlightError);
        expect((err as Error).message).toMatch(new RegExp(`^${ctor}\\.step: a step of this optimizer is still in flight`));
        expect(await saving).toBeInstanceOf(StepInFlightError);
        expect((await first).updated).toBe(3);
        // After the first settles, steps work again.
        const a = await readAll(ref);
        const b = await readAll(params);
        a.forEach((v, i) => expect(Array.from(b[i])).toEqual(Array.from(v)));
        expect([...opt.state.values()].map((s) => s.step)).toEqual([1, 1, 1]);
        expect((await opt.step()).skipped).toBe(false);
        const total = sum(params[1]);
        expect(Number.isFinite(await total.item())).toBe(true);
        total.dispose();
        opt0(opt, refOpt);
        for (const p of [...ref, ...params]) p.dispose();
      }
    });
  }
});
