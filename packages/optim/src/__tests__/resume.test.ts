import { type BackendName, DTypeError, tensor } from '@webpeft/tensor';
import { backendsUnderTest, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { AdamW, cosineWithWarmup, flattenOptimizerState, unflattenOptimizerState } from '../index.js';
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
  for (const name of ['adamw', 'adamw_amsgrad', 'adam', 'sgd_momentum', 'sgd_nesterov', 'lion']) {
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

  it('state is keyed by parameter name: a fresh optimizer listing its parameters in another order resumes bit-identically', async () => {
    for (const backend of backendsUnderTest()) {
      const ref = makeParams(backend);
      const names = ['encoder.q', 'encoder.v', 'head'];
      const make = (ps: ReturnType<typeof makeParams>, order: number[]) =>
        new AdamW([{ params: order.map((i) => ps[i]), names: order.map((i) => names[i]), lr: 0.01 }], { weightDecay: 0.05 });
      const refOpt = make(ref, [0, 1, 2]);
      for (let t = 0; t < 2; t++) {
        setGrads(ref, t, backend);
        await refOpt.step();
      }
      const saved = await refOpt.stateDict();
      expect(saved.paramGroups[0].names).toEqual(names);
      const savedParams = await readAll(ref);
      setGrads(ref, 2, backend);
      await refOpt.step();

      const resumed = savedParams.map((v, i) => tensor(Float32Array.from(v), golden.shapes[i], { backend, requiresGrad: true }));
      const opt = make(resumed, [2, 0, 1]);
      opt.loadStateDict(saved);
      setGrads(resumed, 2, backend);
      await opt.step();
      const a = await readAll(ref);
      const b = await readAll(resumed);
      a.forEach((v, i) => expect(Array.from(b[i]), `${backend} ${names[i]}`).toEqual(Array.from(v)));

      // A renamed parameter is named in the error, and the optimizer keeps its state.
      const renamed = make(resumed, [0, 1, 2]);
      renamed.paramGroups[0].names[1] = 'encoder.k';
      setGrads(resumed, 3, backend);
      await renamed.step();
      const before = await renamed.stateDict();
      expect(() => renamed.loadStateDict(saved)).toThrow(/AdamW.loadStateDict: paramGroups\[0\] has parameter 'encoder.v', which group 0 of this optimizer does not have \(it has encoder.q, encoder.k, head\)/);
      const after = await renamed.stateDict();
      expect(Object.keys(after.state)).toEqual(Object.keys(before.state));
      for (const k of Object.keys(before.state)) {
        for (const [n, buf] of Object.entries(before.state[Number(k)].buffers)) expect(Array.from(after.state[Number(k)].buffers[n].data)).toEqual(Array.from(buf.data));
      }
      for (const o of [refOpt, opt, renamed]) {
        o.zeroGrad();
        o.disposeState();
      }
      for (const p of [...ref, ...resumed]) p.dispose();
    }
  });

  it('rejects a dtype mismatch, a bad step count and a non-finite hyperparameter, changing nothing', async () => {
    const f32 = makeParams('cpu');
    const opt = makeOptimizer('adamw', f32);
    setGrads(f32, 0, 'cpu');
    await opt.step();
    opt.zeroGrad();
    const sd = await opt.stateDict();
    const f64 = golden.init.map((v, i) => tensor(Float64Array.from(v), golden.shapes[i], { backend: 'cpu', dtype: 'f64', requiresGrad: true }));
    const other = makeOptimizer('adamw', f64);
    expect(() => other.loadStateDict(sd)).toThrow(DTypeError);
    expect(() => other.loadStateDict(sd)).toThrow(/state\[0\] \(parameter p0\)\.expAvg is f32, expected f64/);
    const badStep = { ...sd, state: { ...sd.state, 1: { ...sd.state[1], step: -2 } } };
    expect(() => opt.loadStateDict(badStep)).toThrow(/state\[1\] \(parameter p1\): step must be a non-negative integer, got -2/);
    const badLr = { ...sd, paramGroups: [{ ...sd.paramGroups[0], lr: NaN }, sd.paramGroups[1]] };
    expect(() => opt.loadStateDict(badLr)).toThrow(/AdamW paramGroups\[0\]: lr must be a finite number >= 0, got NaN/);
    const extra = { ...sd, state: { ...sd.state, 7: sd.state[0] } };
    expect(() => opt.loadStateDict(extra)).toThrow(/state\[7\] belongs to no parameter of paramGroups/);
    expect(other.state.size).toBe(0);
    expect(opt.paramGroups[0].lr).toBe(sd.paramGroups[0].lr);
    expect((await opt.stateDict()).state[1].step).toBe(1);
    for (const o of [opt, other]) o.disposeState();
    for (const p of [...f32, ...f64]) p.dispose();
  });

  it('flattened state: tensors named by parameter, JSON metadata; missing or extra tensors are named', async () => {
    const backend = backendsUnderTest()[0];
    const params = makeParams(backend);
    const opt = makeOptimizer('adamw_amsgrad', params);
    setGrads(params, 0, backend);
    await opt.step();
    opt.zeroGrad();
    const sd = await opt.stateDict();
    const { tensors, meta } = flattenOptimizerState(sd);
    expect(Object.keys(tensors)).toEqual(['p0', 'p1', 'p2'].flatMap((n) => [`${n}.expAvg`, `${n}.expAvgSq`, `${n}.maxExpAvgSq`]));
    expect(meta.params.p2).toEqual({ step: 1, buffers: ['expAvg', 'expAvgSq', 'maxExpAvgSq'] });
    const back = unflattenOptimizerState({ tensors, meta: JSON.parse(JSON.stringify(meta)) as typeof meta });
    expect(back.state[2].buffers.expAvg.data).toBe(sd.state[2].buffers.expAvg.data);
    const { 'p1.expAvgSq': _gone, ...missing } = tensors;
    expect(() => unflattenOptimizerState({ tensors: missing, meta })).toThrow(/unflattenOptimizerState: tensor 'p1.expAvgSq' is missing/);
    expect(() => unflattenOptimizerState({ tensors: { ...tensors, 'p9.expAvg': tensors['p0.expAvg'] }, meta })).toThrow(/tensor 'p9.expAvg' belongs to no parameter buffer/);
    expect(() => unflattenOptimizerState({ tensors, meta: { ...meta, params: { ...meta.params, q: { step: 1, buffers: [] } } } })).toThrow(/meta.params has 'q', which no group/);
    opt.disposeState();
    for (const p of params) p.dispose();
  });
});
