import * as T from '@webpeft/tensor';
import { getBackend, memory, resetPeakMemory, tensor, tidy, withMemoryTag } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, liveCounts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

describe('memory accounting', () => {
  it('withMemoryTag and setMemoryTag move bytes between tags; grads are tagged grads', async () => {
    for (const backend of backendsUnderTest()) {
      const base = memory(backend).bytesByTag;
      const w = withMemoryTag('weights', () => tensor(new Float32Array(100).fill(0.5), [10, 10], { backend, requiresGrad: true }));
      expect(w.memoryTag).toBe('weights');
      expect(memory(backend).bytesByTag.weights - base.weights).toBe(400);
      const s = T.zeros([25], { backend }).setMemoryTag('optimizer');
      expect(memory(backend).bytesByTag.optimizer - base.optimizer).toBe(100);
      expect(memory(backend).bytesByTag.activations - base.activations).toBe(0);
      tidy(() => T.sum(T.mul(w, w)).backward());
      expect(w.grad!.memoryTag).toBe('grads');
      expect(memory(backend).bytesByTag.grads - base.grads).toBe(400);
      expect(await w.grad!.toArray()).toEqual(new Array(100).fill(1));
      w.dispose();
      s.dispose();
      expect(memory(backend).bytesByTag).toEqual(base);
    }
  });

  it('peak bytes cover a temporary and reset to the live bytes', () => {
    for (const backend of backendsUnderTest()) {
      resetPeakMemory(backend);
      const live = memory(backend).liveBytes;
      expect(memory(backend).peakBytes).toBe(live);
      const big = T.zeros([1000], { backend });
      big.dispose();
      const m = memory(backend);
      expect(m.liveBytes).toBe(live);
      expect(m.peakBytes).toBe(live + 4000);
      resetPeakMemory(backend);
      expect(memory(backend).peakBytes).toBe(live);
    }
  });

  it('empty tensors allocate 0 bytes, run every kernel family and read back', async () => {
    for (const backend of backendsUnderTest()) {
      const before = liveCounts(backend);
      const out = tidy(() => {
        const e = T.zeros([2, 0, 3], { backend });
        const f = T.add(T.exp(e), 1);
        const g = T.matmul(T.zeros([0, 4], { backend }), T.zeros([4, 2], { backend }));
        const h = T.softmax(T.cast(T.greater(f, 0), 'f32'));
        return [f, g, h, T.sum(e, 1), T.transpose(e), T.rand([0], { backend })];
      });
      for (const t of out) {
        expect(await t.toArray()).toEqual(t.shape.includes(0) ? [] : new Array(t.size).fill(0));
        t.dispose();
      }
      expect(liveCounts(backend)).toEqual(before);
      await T.sync(backend);
    }
  });

  it('tensors move between backends with toBackend', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const a = tensor([1, 2, 3, 4], [2, 2], { backend: 'cpu' });
    const b = await T.toBackend(a, 'webgpu');
    expect(b.backend.name).toBe('webgpu');
    expect(await b.toArray()).toEqual([1, 2, 3, 4]);
    expect(() => T.add(a, b)).toThrow(/different backends/);
    a.dispose();
    b.dispose();
  });
});

describe('webgpu execution model', () => {
  it('pipelines are cached by shape class, not by exact shape', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const gpu = getBackend('webgpu');
    const run = (shapeA: number[], shapeB: number[]) =>
      tidy(() => {
        const a = T.rand(shapeA, { backend: 'webgpu' });
        const b = T.rand(shapeB, { backend: 'webgpu' });
        // matmul is left out: it picks kernel variants by problem size on purpose.
        return [T.add(a, b), T.exp(a), T.sum(a, -1), T.transpose(a), T.softmax(a), T.where(T.greater(a, b), a, 0)];
      }).forEach((t) => t.dispose());
    run([3, 5], [3, 5]);
    run([3, 1], [1, 5]);
    const compiled = gpu.pipelineCount;
    run([7, 9], [7, 9]);
    run([8, 1], [1, 2]);
    run([65, 33], [65, 33]);
    expect(gpu.pipelineCount).toBe(compiled);
    await T.sync('webgpu');
  });

  it('many small ops are batched into few submits (lazy submission)', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const gpu = getBackend('webgpu');
    const x = T.rand([16], { backend: 'webgpu' });
    await T.sync('webgpu');
    const submits = gpu.totalSubmits;
    const dispatches = gpu.totalDispatches;
    let y = T.mul(x, 1);
    for (let i = 0; i < 200; i++) {
      const half = T.mul(y, 0.5);
      const next = T.add(half, x);
      half.dispose();
      y.dispose();
      y = next;
    }
    // 401 dispatches (plus their temporaries) and nothing read yet: at most the periodic submits.
    expect(gpu.totalDispatches - dispatches).toBeGreaterThanOrEqual(401);
    expect(gpu.totalSubmits - submits).toBeLessThanOrEqual(1);
    const v = await y.toArray();
    expect(gpu.totalSubmits - submits).toBeLessThanOrEqual(2);
    const xs = await x.toArray();
    // y converges to 2x: y_{n+1} = y_n / 2 + x.
    v.forEach((e, i) => expect(e).toBeCloseTo(2 * xs[i], 5));
    x.dispose();
    y.dispose();
  });

  it('the pool reuses device buffers: a steady loop does not grow device memory', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const gpu = getBackend('webgpu');
    const w = T.rand([32, 32], { backend: 'webgpu' });
    const step = () => tidy(() => T.sum(T.tanh(T.matmul(w, w))).toString());
    for (let i = 0; i < 5; i++) step();
    await T.sync('webgpu');
    const bytes = gpu.deviceBytes;
    for (let i = 0; i < 100; i++) step();
    await T.sync('webgpu');
    expect(gpu.deviceBytes).toBe(bytes);
    w.dispose();
  });
});
