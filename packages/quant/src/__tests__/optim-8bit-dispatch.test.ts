/**
 * The 8-bit and paged 8-bit optimizer steps dispatch one kernel for all their 8-bit
 * parameters (per batch that fits a storage binding; per page when paged), counted
 * exactly with `profile()`, and the batched kernel gives the cpu reference's updates
 * (the host loops of `adam-8bit-host.ts`, checked bit for bit against bitsandbytes'
 * algorithm in `optim-8bit.test.ts`) for parameters of different sizes, partial last
 * blocks, two groups with different hyperparameters and step counts, and parameters
 * split across batches and storage chunks.
 */
import { type BackendName, type Tensor, getBackend, profile, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AdamW8bit, OPTIM_BLOCK, PagedAdamW8bit } from '../optim/index.js';
import { uploadCodeTables } from './code-cache.js';

beforeAll(async () => {
  await uploadCodeTables(await initBackends());
});
afterEach(() => {
  if (backendsUnderTest().includes('webgpu')) getBackend('webgpu').setMaxBindingBytes(null);
});

/** 8-bit parameters (>= 4096 elements; last blocks partial) and one fp32-state parameter. */
const SHAPES = [[20, 250], [49, 251], [280, 250], [10, 10]];

function makeParams(backend: BackendName, seed: number): Tensor[] {
  return SHAPES.map(([r, c], i) => tensor(randomArray(r * c, seed + i, -1, 1), [r, c], { backend, requiresGrad: true }));
}

function setGrads(ps: Tensor[], step: number): void {
  ps.forEach((p, i) => {
    p.grad?.dispose();
    p.grad = tensor(randomArray(p.size, 500 + 10 * step + i, -1, 1), p.shape, { backend: p.backend.name });
  });
}

/** Two groups: the second has its own lr and weight decay and skips the first step. */
function makeOptimizer(ps: Tensor[]): AdamW8bit {
  return new AdamW8bit([{ params: [ps[0], ps[3]] }, { params: [ps[1], ps[2]], lr: 3e-3, weightDecay: 0.2 }], { lr: 1e-2 });
}

async function threeSteps(backend: BackendName, countStep: number): Promise<{ params: Float32Array[]; dispatches: number; calls: number }> {
  const ps = makeParams(backend, 70);
  const opt = makeOptimizer(ps);
  let dispatches = -1;
  let calls = -1;
  for (let step = 0; step < 3; step++) {
    setGrads(ps, step);
    // Step 0 leaves the second group without gradients: its step count lags by one.
    if (step === 0) {
      for (const p of [ps[1], ps[2]]) {
        p.grad!.dispose();
        p.grad = null;
      }
    }
    if (step === countStep) {
      const prof = await profile(() => opt.step());
      dispatches = prof.ops.Adam8bitStep?.dispatches ?? 0;
      calls = prof.ops.Adam8bitStep?.calls ?? 0;
    } else await opt.step();
  }
  const params = await Promise.all(ps.map(async (p) => Float32Array.from((await p.data()) as Float32Array)));
  opt.disposeState();
  for (const p of ps) {
    p.grad?.dispose();
    p.dispose();
  }
  return { params, dispatches, calls };
}

const blocks = (n: number) => Math.ceil(n / OPTIM_BLOCK);

describe('8-bit optimizer steps: one dispatch for all 8-bit parameters', () => {
  it('AdamW8bit: one Adam8bitStep dispatch per step, the cpu reference updates', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const cpu = await threeSteps('cpu', -1);
    const gpu = await threeSteps('webgpu', 2);
    expect(gpu.calls).toBe(1);
    expect(gpu.dispatches).toBe(1);
    // WGSL division and sqrt may be 2.5 ulp off, so a state can land one code away (see optim-8bit.test.ts).
    gpu.params.forEach((p, i) => expectClose(p, cpu.params[i], { rtol: 1e-5, atol: 1e-6, label: `param ${i}` }));
  });

  it('AdamW8bit with parameters larger than a binding: one dispatch per batch of bindable blocks', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const cpu = await threeSteps('cpu', -1);
    // 160 KiB bindings: 160 blocks of 256 f32 per batch; the [280, 250] parameter (and its
    // gradient) is stored in chunks, its 8-bit state (139 KiB) still fits one binding.
    getBackend('webgpu').setMaxBindingBytes(160 * 1024);
    const gpu = await threeSteps('webgpu', 2);
    const total = blocks(5000) + blocks(49 * 251) + blocks(70_000);
    expect(gpu.calls).toBe(1);
    expect(gpu.dispatches).toBe(Math.ceil(total / 160));
    gpu.params.forEach((p, i) => expectClose(p, cpu.params[i], { rtol: 1e-5, atol: 1e-6, label: `param ${i}` }));
  });

  it('PagedAdamW8bit: one dispatch per page, pages shared by parameters', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const sizes = [150_000, 120_001];
    const run = async (pageBlocks: number) => {
      const ps = sizes.map((n, i) => tensor(randomArray(n, 40 + i, -1, 1), [n], { backend: 'webgpu', requiresGrad: true }));
      const pageBytes = pageBlocks * 130 * 4;
      const opt = new PagedAdamW8bit(ps, { lr: 1e-2, deviceBudgetBytes: 2 * pageBytes, pageBytes });
      setGrads(ps, 0);
      await opt.step();
      setGrads(ps, 1);
      const prof = await profile(() => opt.step());
      const stats = opt.lastPagedStats!;
      const out = await Promise.all(ps.map(async (p) => Float32Array.from((await p.data()) as Float32Array)));
      opt.disposeState();
      for (const p of ps) {
        p.grad?.dispose();
        p.dispose();
      }
      return { dispatches: prof.ops.Adam8bitStep?.dispatches ?? 0, pages: stats.pages, out };
    };
    const all = blocks(150_000) + blocks(120_001);
    // Every block in one page: one dispatch for both parameters.
    const one = await run(all);
    expect(one.pages).toBe(1);
    expect(one.dispatches).toBe(1);
    // 500 blocks a page: the first parameter's last 86 blocks share a page with the second's first 414.
    const split = await run(500);
    expect(split.pages).toBe(Math.ceil(all / 500));
    expect(split.dispatches).toBe(split.pages);
    // The same updates, bit for bit, however the blocks are paged.
    split.out.forEach((p, i) => expect(Array.from(new Uint32Array(p.buffer))).toEqual(Array.from(new Uint32Array(one.out[i].buffer))));
  });
});
