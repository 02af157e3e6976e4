import { type BackendName, type Tensor, getBackend, memory, tensor } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, randomArray } from '@webpeft/test-utils';
import { AdamW } from '@webpeft/optim';
import { beforeAll, describe, expect, it } from 'vitest';
import { AdamW8bit, PagedAdamW, PagedAdamW8bit } from '../optim/index.js';
import { uploadCodeTables } from './code-cache.js';

beforeAll(async () => {
  await uploadCodeTables(await initBackends());
});

const SIZES = [150_000, 300, 120_001];

function makeParams(backend: BackendName): Tensor[] {
  return SIZES.map((n, i) => tensor(Float32Array.from(randomArray(n, 10 + i, -1, 1)), [n], { backend, requiresGrad: true }));
}

function setGrads(ps: Tensor[], step: number): void {
  ps.forEach((p, i) => {
    p.grad?.dispose();
    p.grad = tensor(Float32Array.from(randomArray(p.size, 100 * step + i, -1, 1)), p.shape, { backend: p.backend.name });
  });
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

async function same(a: Tensor[], b: Tensor[]): Promise<void> {
  for (let i = 0; i < a.length; i++) {
    const x = bits((await a[i].data()) as Float32Array);
    const y = bits((await b[i].data()) as Float32Array);
    let diff = 0;
    for (let j = 0; j < x.length; j++) if (x[j] !== y[j]) diff++;
    expect(diff, `param ${i}`).toBe(0);
  }
}

const BUDGET = 400_000; // bytes: far below the 2.2 MB of fp32 state of the large parameters

describe('paged optimizers: same updates as unpaged, bit for bit; device state within the budget', () => {
  for (const [name, Paged, Plain] of [
    ['PagedAdamW vs AdamW', PagedAdamW, AdamW],
    ['PagedAdamW8bit vs AdamW8bit', PagedAdamW8bit, AdamW8bit],
  ] as const) {
    it(name, async () => {
      for (const backend of backendsUnderTest()) {
        const a = makeParams(backend);
        const b = makeParams(backend);
        const hyper = { lr: 1e-2, weightDecay: 0.1 };
        const paged = new (Paged as typeof PagedAdamW)(a, { ...hyper, deviceBudgetBytes: BUDGET, pageBytes: BUDGET / 4 });
        const plain = new (Plain as typeof AdamW)(b, hyper);
        for (let step = 0; step < 3; step++) {
          setGrads(a, step);
          setGrads(b, step);
          const before = memory(backend).bytesByTag.optimizer ?? 0;
          await paged.step();
          await plain.step();
          if (getBackend(backend).capabilities.deviceMemory) {
            const stats = (paged as unknown as { lastPagedStats: { peakOptimizerBytes: number; slots: number; pages: number } }).lastPagedStats;
            expect(stats.slots).toBe(4);
            expect(stats.pages).toBeGreaterThan(4);
            // Only the small parameter's state may sit on the device besides the slot pool.
            const small = 300 * 4 * 2;
            expect(stats.peakOptimizerBytes - before).toBeLessThanOrEqual(BUDGET + small);
          }
        }
        await same(a, b);
        paged.disposeState();
        plain.disposeState();
        for (const p of [...a, ...b]) p.dispose();
      }
    });
  }

  it('PagedAdamW state dict has AdamW\'s format and resumes exactly', async () => {
    for (const backend of backendsUnderTest()) {
      const a = makeParams(backend);
      const b = makeParams(backend);
      const paged = new PagedAdamW(a, { deviceBudgetBytes: BUDGET });
      const plain = new AdamW(b);
      setGrads(a, 0);
      setGrads(b, 0);
      await paged.step();
      await plain.step();
      const sd = await paged.stateDict();
      const ref = await plain.stateDict();
      expect(Object.keys(sd.state)).toEqual(Object.keys(ref.state));
      for (const [i, st] of Object.entries(ref.state)) {
        expect(bits(sd.state[Number(i)].buffers.expAvgSq.data as Float32Array)).toEqual(bits(st.buffers.expAvgSq.data as Float32Array));
      }
      const resumed = new PagedAdamW(a, { deviceBudgetBytes: BUDGET });
      resumed.loadStateDict(sd);
      setGrads(a, 1);
      setGrads(b, 1);
      await resumed.step();
      await plain.step();
      await same(a, b);
      for (const o of [paged, plain, resumed]) o.disposeState();
      for (const p of [...a, ...b]) p.dispose();
    }
  });
});
