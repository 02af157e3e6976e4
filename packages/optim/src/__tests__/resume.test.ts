import { type BackendName, tensor } from '@webpeft/tensor';
import { backendsUnderTest, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { cosineWithWarmup } from '../index.js';
import { golden, makeOptimizer, makeParams, readAll, setGrads } from './helpers.js';

beforeAll(async () => {
  await initBackends();
});

const TOTAL = 6;
const SAVE_AT = 3;

/** Runs steps [from, to) with a cosine schedule; returns nothing (params change in place). */
async function run(opt: ReturnType<typeof makeOptimizer>, sched: ReturnType<typeof cosineWithWarmup>, params: ReturnType<typeof makeParams>, backend: BackendName, from: number, to: number) {
  for (let step = from; step < to; step++) {
    setGrads(params, step, backend);
    await opt.step();
    sched.step();
    opt.zeroGrad();
  }
}

describe('save at step 3, resume into a fresh optimizer, bit-identical parameters at step 6', () => {
  for (const name of ['adamw_amsgrad', 'adam', 'sgd_momentum', 'sgd_nesterov', 'lion']) {
    it(`${name}`, async () => {
      for (const backend of backendsUnderTest()) {
        // Uninterrupted run.
        const ref = makeParams(backend);
        const refOpt = makeOptimizer(name, ref);
        const refSched = cosineWithWarmup(refOpt, { warmupSteps: 2, totalSteps: TOTAL });
        await run(refOpt, refSched, ref, backend, 0, SAVE_AT);
        const saved = await refOpt.stateDict();
        const savedSched = refSched.stateDict();
        const savedParams = await readAll(ref);
        await run(refOpt, refSched, ref, backend, SAVE_AT, TOTAL);

        // The state dict is plain data apart from typed arrays.
        expect((JSON.parse(JSON.stringify({ ...saved, state: {} })) as { paramGroups: unknown[] }).paramGroups).toHaveLength(2);

        // Fresh parameters with the saved values, a fresh optimizer and scheduler.
        const resumed = savedParams.map((v, i) => tensor(Float32Array.from(v), golden.shapes[i], { backend, requiresGrad: true }));
        const opt = makeOptimizer(name, resumed);
        const sched = cosineWithWarmup(opt, { warmupSteps: 2, totalSteps: TOTAL });
        opt.loadStateDict(saved);
        sched.loadStateDict(savedSched);
        expect(opt.paramGroups.map((g) => g.lr)).toEqual(refOpt.paramGroups.map((g) => g.lr).map((_, g) => saved.paramGroups[g].lr));
        await run(opt, sched, resumed, backend, SAVE_AT, TOTAL);

        const a = await readAll(ref);
        const b = await readAll(resumed);
        // Exact equality of every bit, not closeness.
        a.forEach((v, i) => expect(Array.from(b[i]), `${backend} p${i}`).toEqual(Array.from(v)));
        for (const [p, st] of refOpt.state) {
          const other = opt.state.get(resumed[ref.indexOf(p)])!;
          expect(other.step).toBe(st.step);
          for (const [k, t] of Object.entries(st.buffers)) expect(Array.from(await other.buffers[k].data()), `${backend} ${k}`).toEqual(Array.from(await t.data()));
        }
        for (const o of [refOpt, opt]) o.disposeState();
        for (const p of [...ref, ...resumed]) p.dispose();
      }
    });
  }

  it('loadStateDict names the mismatched key and changes nothing', async () => {
    const backend = backendsUnderTest()[0];
    const params = makeParams(backend);
    const opt = makeOptimizer('adamw', params);
    setGrads(params, 0, backend);
    await opt.step();
    opt.zeroGrad();
    const sd = await opt.stateDict();

    const other = makeParams(backend);
    const wrongShape = [other[0], other[1], tensor(new Float32Array(7), [7], { backend, requiresGrad: true })];
    const fresh = makeOptimizer('adamw', wrongShape);
    expect(() => fresh.loadStateDict(sd)).toThrow(/state\[2\] \(parameter p2\)\.expAvg is f32 \[2,3\] \(6 values\), expected f32 \[7\]/);
    expect(fresh.state.size).toBe(0);

    // Hyperparameters come from the state dict (as in PyTorch), so buffers must match them.
    const partial = makeOptimizer('adamw', other);
    const missing = { ...sd, state: { ...sd.state, 0: { step: 1, buffers: { expAvg: sd.state[0].buffers.expAvg } } } };
    expect(() => partial.loadStateDict(missing)).toThrow(/state\[0\] \(parameter p0\) has buffers \[expAvg\], expected \[expAvg,expAvgSq\]/);
    expect(() => makeOptimizer('lion', other).loadStateDict(sd)).toThrow(/state dict is for optimizer 'AdamW'/);
    for (const o of [opt, fresh, partial]) o.disposeState();
    for (const p of [...params, ...wrongShape, other[2]]) p.dispose();
  });
});
