import { type BackendName, type Tensor, TensorBusyError, add, mul, tensor } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, randomArray } from '@webpeft/test-utils';
import {
  type AdamHyper,
  NonFiniteGradientError,
  type Optimizer,
  type OptimizerStateDict,
  StepInFlightError,
  cosineWithWarmup,
  flattenOptimizerState,
  unflattenOptimizerState,
} from '@webpeft/optim';
import { beforeAll, describe, expect, it } from 'vitest';
import { Adam8bit, AdamW8bit, PagedAdamW, PagedAdamW8bit } from '../optim/index.js';
import { uploadCodeTables } from './code-cache.js';

beforeAll(async () => {
  await uploadCodeTables(await initBackends());
});

// 150k: 8-bit and (on webgpu) paged; 300: fp32 state; 5000: 8-bit, not paged.
const SIZES = [150_000, 300, 5000];
const NAMES = ['model.embed', 'model.norm', 'lm_head'];
const TOTAL = 5;
const SAVE_AT = 2;
const BUDGET = 400_000;

const FACTORIES: Record<string, (groups: { params: Tensor[]; names: string[]; lr: number }[]) => Optimizer<AdamHyper>> = {
  AdamW8bit: (g) => new AdamW8bit(g, { weightDecay: 0.02 }),
  Adam8bit: (g) => new Adam8bit(g, { weightDecay: 0.01 }),
  PagedAdamW: (g) => new PagedAdamW(g, { weightDecay: 0.02, deviceBudgetBytes: BUDGET }),
  PagedAdamW8bit: (g) => new PagedAdamW8bit(g, { weightDecay: 0.02, deviceBudgetBytes: BUDGET }),
};

function makeParams(backend: BackendName, values?: Float32Array[]): Tensor[] {
  return SIZES.map((n, i) => tensor(values ? Float32Array.from(values[i]) : Float32Array.from(randomArray(n, 20 + i, -1, 1)), [n], { backend, requiresGrad: true }));
}

function make(name: string, ps: Tensor[]): Optimizer<AdamHyper> {
  return FACTORIES[name]([
    { params: [ps[0], ps[1]], names: [NAMES[0], NAMES[1]], lr: 1e-3 },
    { params: [ps[2]], names: [NAMES[2]], lr: 2e-3 },
  ]);
}

function setGrads(ps: Tensor[], step: number): void {
  ps.forEach((p, i) => {
    p.grad?.dispose();
    p.grad = tensor(Float32Array.from(randomArray(p.size, 300 * step + i, -1, 1)), p.shape, { backend: p.backend.name });
  });
}

async function run(opt: Optimizer<AdamHyper>, sched: ReturnType<typeof cosineWithWarmup>, ps: Tensor[], from: number, to: number) {
  for (let t = from; t < to; t++) {
    setGrads(ps, t);
    expect((await opt.step()).skipped).toBe(false);
    sched.step();
    opt.zeroGrad();
  }
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

function expectSameState(a: OptimizerStateDict, b: OptimizerStateDict, label: string): void {
  expect(Object.keys(b.state), label).toEqual(Object.keys(a.state));
  for (const [k, st] of Object.entries(a.state)) {
    const other = b.state[Number(k)];
    expect(other.step, `${label} state[${k}].step`).toBe(st.step);
    for (const [n, buf] of Object.entries(st.buffers)) {
      expect(other.buffers[n].dtype).toBe(buf.dtype);
      const x = buf.data instanceof Float32Array ? bits(buf.data) : Array.from(buf.data);
      const y = other.buffers[n].data instanceof Float32Array ? bits(other.buffers[n].data) : Array.from(other.buffers[n].data);
      expect(y, `${label} state[${k}].${n}`).toEqual(x);
    }
  }
}

describe('8-bit and paged optimizers: save, restore into a fresh optimizer, continue bit-identically', () => {
  for (const name of Object.keys(FACTORIES)) {
    it(name, async () => {
      for (const backend of backendsUnderTest()) {
        const ref = makeParams(backend);
        const refOpt = make(name, ref);
        const refSched = cosineWithWarmup(refOpt, { warmupSteps: 1, totalSteps: TOTAL });
        await run(refOpt, refSched, ref, 0, SAVE_AT);
        const saved = await refOpt.stateDict();
        const savedSched = refSched.stateDict();
        const savedParams = await Promise.all(ref.map(async (p) => (await p.data()) as Float32Array));
        await run(refOpt, refSched, ref, SAVE_AT, TOTAL);

        // The 8-bit states are saved as their packed words (codes, then absmax per block).
        if (name.includes('8bit')) {
          expect(saved.state[0].buffers.state8bit).toMatchObject({ dtype: 'u32', shape: [Math.ceil(150_000 / 256) * 130] });
          expect(Object.keys(saved.state[1].buffers)).toEqual(['state1', 'state2']);
        }

        const resumed = makeParams(backend, savedParams);
        const opt = make(name, resumed);
        const sched = cosineWithWarmup(opt, { warmupSteps: 1, totalSteps: TOTAL });
        // Through the checkpoint form: named tensors (copied, as a file would) and JSON.
        const flat = flattenOptimizerState(saved);
        expect(Object.keys(flat.tensors).sort()).toEqual(
          name.includes('8bit') ? ['lm_head.state8bit', 'model.embed.state8bit', 'model.norm.state1', 'model.norm.state2'] : NAMES.flatMap((n) => [`${n}.expAvg`, `${n}.expAvgSq`]).sort(),
        );
        const copied = Object.fromEntries(Object.entries(flat.tensors).map(([k, t]) => [k, { ...t, data: t.data.slice() }]));
        opt.loadStateDict(unflattenOptimizerState({ tensors: copied, meta: JSON.parse(JSON.stringify(flat.meta)) as typeof flat.meta }));
        sched.loadStateDict(JSON.parse(JSON.stringify(savedSched)) as typeof savedSched);
        expect(opt.paramGroups.map((g) => g.lr)).toEqual(saved.paramGroups.map((g) => g.lr));
        await run(opt, sched, resumed, SAVE_AT, TOTAL);

        for (let i = 0; i < ref.length; i++) {
          expect(bits((await resumed[i].data()) as Float32Array), `${name} ${backend} ${NAMES[i]}`).toEqual(bits((await ref[i].data()) as Float32Array));
        }
        expectSameState(await refOpt.stateDict(), await opt.stateDict(), `${name} ${backend}`);
        for (const o of [refOpt, opt]) o.disposeState();
        for (const p of [...ref, ...resumed]) p.dispose();
      }
    });
  }

  it('AdamW8bit: a state saved with another min8bitSize is refused naming the buffer, and nothing changes', async () => {
    const backend = backendsUnderTest()[0];
    const ps = makeParams(backend);
    const opt = make('AdamW8bit', ps);
    setGrads(ps, 0);
    await opt.step();
    opt.zeroGrad();
    const sd = await opt.stateDict();
    const other = new AdamW8bit([{ params: [ps[0], ps[1]], names: [NAMES[0], NAMES[1]] }, { params: [ps[2]], names: [NAMES[2]] }], { min8bitSize: 10_000 });
    expect(() => other.loadStateDict(sd)).toThrow(/AdamW8bit.loadStateDict: state\[2\] \(parameter lm_head\) has buffers \[state8bit\], expected \[state1,state2\]/);
    expect(other.quantState.size + other.state.size).toBe(0);
    const truncated = { ...sd, state: { ...sd.state, 0: { step: 1, buffers: { state8bit: { ...sd.state[0].buffers.state8bit, data: sd.state[0].buffers.state8bit.data.slice(1) } } } } };
    expect(() => opt.loadStateDict(truncated)).toThrow(/state\[0\] \(parameter model.embed\)\.state8bit is u32 \[76180\] \(76179 values\), expected u32 \[76180\]/);
    expectSameState(sd, await opt.stateDict(), 'unchanged');
    expect(() => make('Adam8bit', ps).loadStateDict(sd)).toThrow(/state dict is for optimizer 'AdamW8bit', this is Adam8bit/);
    for (const o of [opt, other]) o.disposeState();
    for (const p of ps) p.dispose();
  });
});

describe('8-bit and paged optimizers: guarded steps', () => {
  for (const name of Object.keys(FACTORIES)) {
    it(`${name}: overlapping steps, a NaN lr and a 'throw' policy fail naming the optimizer; nothing is half-applied`, async () => {
      for (const backend of backendsUnderTest()) {
        const ps = makeParams(backend);
        const opt = make(name, ps);
        setGrads(ps, 0);
        await opt.step();
        const before = await opt.stateDict();
        const values = await Promise.all(ps.map(async (p) => bits((await p.data()) as Float32Array)));

        opt.paramGroups[1].lr = NaN;
        setGrads(ps, 1);
        await expect(opt.step()).rejects.toThrow(new RegExp(`^${name} group 1: lr must be a finite number >= 0, got NaN$`));
        opt.paramGroups[1].lr = 2e-3;

        opt.nonFinite = 'throw';
        const g = Float32Array.from(randomArray(SIZES[0], 5, -1, 1));
        g[1234] = Infinity;
        ps[0].grad!.dispose();
        ps[0].grad = tensor(g, [SIZES[0]], { backend });
        const err = await opt.step().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(NonFiniteGradientError);
        expect((err as Error).message).toBe(`${name}: non-finite gradients in model.embed (group 0 param 0); nothing was updated`);
        expectSameState(before, await opt.stateDict(), `${name} ${backend} after refused steps`);
        for (let i = 0; i < ps.length; i++) expect(bits((await ps[i].data()) as Float32Array)).toEqual(values[i]);

        setGrads(ps, 1);
        const first = opt.step();
        const second = opt.step().catch((e: unknown) => e);
        // A forward overlapping the step is refused: it would read half-updated weights.
        expect(() => mul(ps[0], 2)).toThrow(TensorBusyError);
        expect(() => add(ps[2], ps[2])).toThrow(new RegExp(`^Add: tensor #${ps[2].id} .* is being updated by ${name}\\.step\\(\\) in flight`));
        const err2 = await second;
        expect(err2).toBeInstanceOf(StepInFlightError);
        expect((err2 as Error).message).toMatch(new RegExp(`^${name}\\.step: a step of this optimizer is still in flight`));
        expect((await first).updated).toBe(3);
        const after = await opt.stateDict();
        expect(Object.values(after.state).map((s) => s.step)).toEqual([2, 2, 2]);
        opt.zeroGrad();
        opt.disposeState();
        for (const p of ps) p.dispose();
      }
    });
  }
});
