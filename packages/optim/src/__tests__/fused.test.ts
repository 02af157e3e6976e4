import { type BackendName, type Tensor, getBackend, memory, resetPeakMemory, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, liveCounts, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { AdamW, Lion, SGD } from '../index.js';
import { DIRECT_CHECK_ELEMENTS, MAX_BATCH_ELEMENTS, planBatches } from '../fused-webgpu.js';

let hasGpu = false;
beforeAll(async () => {
  await initBackends();
  hasGpu = backendsUnderTest().includes('webgpu');
});

const SIZES = [1, 3, 70_001, 256, 255, 1000, 17, 4096, 5, 300];

function params(backend: BackendName, seed: number): Tensor[] {
  return SIZES.map((n, i) => tensor(Float32Array.from(randomArray(n, seed + i, -1, 1)), [n], { backend, requiresGrad: true }));
}

function grads(ps: Tensor[], step: number, skip: (i: number) => boolean): void {
  ps.forEach((p, i) => {
    p.grad?.dispose();
    p.grad = skip(i) ? null : tensor(Float32Array.from(randomArray(p.size, 1000 * step + i, -2, 2)), p.shape, { backend: p.backend.name });
  });
}

describe('fused WebGPU update', () => {
  it('one dispatch per step (plus the non-finite check) for many parameters', async () => {
    if (!hasGpu) return;
    const gpu = getBackend('webgpu');
    const ps = params('webgpu', 1);
    const opt = new AdamW(ps, { lr: 1e-2, weightDecay: 0.1, skipNonFinite: false });
    grads(ps, 0, () => false);
    await opt.step(); // creates state (fills)
    grads(ps, 1, () => false);
    gpu.flush();
    const before = gpu.totalDispatches;
    await opt.step();
    expect(gpu.totalDispatches - before).toBe(1);
    opt.skipNonFinite = true;
    grads(ps, 2, () => false);
    const b2 = gpu.totalDispatches;
    await opt.step();
    expect(gpu.totalDispatches - b2).toBe(2);
    opt.disposeState();
    for (const p of ps) p.dispose();
  });

  it('matches the cpu reference across mixed step counts (some parameters without gradients)', async () => {
    if (!hasGpu) return;
    const make = [
      (ps: Tensor[]) => new AdamW([{ params: ps.slice(0, 6), lr: 1e-2, amsgrad: true }, { params: ps.slice(6), lr: 3e-3, weightDecay: 0 }]),
      (ps: Tensor[]) => new SGD([{ params: ps.slice(0, 6), lr: 0.1, momentum: 0.9, dampening: 0.2 }, { params: ps.slice(6), lr: 0.05, momentum: 0.5, nesterov: true }]),
      (ps: Tensor[]) => new Lion(ps, { lr: 1e-3, weightDecay: 0.5 }),
    ];
    for (const ctor of make) {
      const [a, b] = [params('cpu', 5), params('webgpu', 5)];
      const [oa, ob] = [ctor(a), ctor(b)];
      for (let step = 0; step < 4; step++) {
        // Parameter 3 has no gradient on steps 1 and 2, so its step count lags behind.
        const skip = (i: number) => i === 3 && (step === 1 || step === 2);
        grads(a, step, skip);
        grads(b, step, skip);
        await oa.step();
        await ob.step();
      }
      for (let i = 0; i < SIZES.length; i++) {
        expect(ob.state.get(b[i])!.step).toBe(oa.state.get(a[i])!.step);
        expectClose(await b[i].data(), await a[i].data(), { rtol: 1e-5, atol: 1e-6, label: `${oa.constructor.name} p${i}` });
      }
      for (const o of [oa, ob]) {
        o.zeroGrad();
        o.disposeState();
      }
      for (const p of [...a, ...b]) p.dispose();
    }
  });

  it('updates parameters in place, tags state as optimizer memory and leaks nothing per step', async () => {
    for (const backend of backendsUnderTest()) {
      const ps = params(backend, 9);
      const storages = ps.map((p) => p.storage);
      const opt = new AdamW(ps, { amsgrad: true });
      const optimizerBytes = memory(backend).bytesByTag.optimizer;
      grads(ps, 0, () => false);
      await opt.step();
      const total = SIZES.reduce((s, n) => s + n, 0);
      expect(memory(backend).bytesByTag.optimizer - optimizerBytes).toBe(3 * 4 * total);
      grads(ps, 1, () => false);
      const before = liveCounts(backend);
      await opt.step();
      expect(liveCounts(backend)).toEqual(before);
      expect(ps.map((p) => p.storage)).toEqual(storages);
      opt.zeroGrad();
      opt.disposeState();
      for (const p of ps) p.dispose();
    }
  });

  it('updates large parameters where they lie and bounds the scratch of a step', async () => {
    if (!hasGpu) return;
    const gpu = getBackend('webgpu');
    // One parameter above the in-place size, five below it that overflow one flat batch.
    const sizes = [DIRECT_CHECK_ELEMENTS + 5, ...Array.from({ length: 5 }, () => 900_001), 7];
    const packedTotal = 5 * 900_001 + 7;
    expect(packedTotal).toBeGreaterThan(MAX_BATCH_ELEMENTS);
    const make = (backend: BackendName) => sizes.map((n, i) => tensor(Float32Array.from(randomArray(n, 40 + i, -1, 1)), [n], { backend, requiresGrad: true }));
    const [a, b] = [make('cpu'), make('webgpu')];
    const [oa, ob] = [new AdamW(a, { lr: 1e-2, weightDecay: 0.1, skipNonFinite: false }), new AdamW(b, { lr: 1e-2, weightDecay: 0.1, skipNonFinite: false })];
    for (let step = 0; step < 2; step++) {
      grads(a, step, () => false);
      grads(b, step, () => false);
      await oa.step();
      gpu.flush();
      resetPeakMemory('webgpu');
      const live = memory('webgpu').liveBytes;
      const before = gpu.totalDispatches;
      await ob.step();
      if (step === 1) {
        // The large one in place, the small ones in two batches (the first fills its cap).
        expect(gpu.totalDispatches - before).toBe(3);
        // Scratch: gradient, parameter and the two moments of one capped batch, never the large parameter's.
        expect(memory('webgpu').peakBytes - live).toBeLessThanOrEqual(4 * 4 * MAX_BATCH_ELEMENTS);
      }
    }
    for (let i = 0; i < sizes.length; i++) expectClose(await b[i].data(), await a[i].data(), { rtol: 1e-5, atol: 1e-6, label: `p${i} (${sizes[i]} elements)` });
    for (const o of [oa, ob]) {
      o.zeroGrad();
      o.disposeState();
    }
    for (const p of [...a, ...b]) p.dispose();
  });

  it('splits batches at the binding size limit', () => {
    const batches = planBatches([5, 4, 2, 10], 10, (n) => n);
    expect(batches.map((b) => [b.offsets, b.size])).toEqual([
      [[0, 5], 9],
      [[0], 2],
      [[0], 10],
    ]);
  });
});
