import * as T from '@webpeft/tensor';
import { type BackendName, DisposedTensorError, type Tensor, keep, memory, noGrad, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, liveCounts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { ints, uniform } from './conformance.js';

beforeAll(async () => {
  await initBackends();
});

/** Parameters of a 4 -> 16 -> 3 MLP as leaves that require grad. */
function makeMlp(backend: BackendName): Tensor[] {
  const shapes = [[4, 16], [16], [16, 3], [3]];
  return shapes.map((s, i) => {
    const h = uniform(s, 500 + i, -0.5, 0.5);
    return tensor(h.data, s, { backend, requiresGrad: true });
  });
}

describe('lifetimes', () => {
  for (const backend of ['cpu', 'webgpu'] as const) {
    it(`1,000 SGD steps of a small MLP on ${backend} keep live tensors and buffers flat`, async ({ skip }) => {
      if (!backendsUnderTest().includes(backend)) skip();
      const x = tensor(uniform([8, 4], 1).data, [8, 4], { backend });
      const y = tensor(ints([8], 2, 0, 3).data, [8], { backend });
      let params = makeMlp(backend);
      const losses: number[] = [];
      let atStep10: ReturnType<typeof liveCounts> | null = null;
      for (let step = 1; step <= 1000; step++) {
        const loss = tidy(() => {
          const [w1, b1, w2, b2] = params;
          const h = T.relu(T.add(T.matmul(x, w1), b1));
          const l = T.crossEntropy(T.add(T.matmul(h, w2), b2), y);
          l.backward();
          return l;
        });
        params = noGrad(() =>
          tidy(() =>
            params.map((p) => {
              const next = keep(T.sub(p, T.mul(p.grad!, 0.1)));
              next.requiresGrad = true;
              p.dispose();
              return next;
            }),
          ),
        );
        if (step === 1 || step === 1000) losses.push(await loss.item());
        loss.dispose();
        if (step === 10) atStep10 = liveCounts(backend);
      }
      expect(liveCounts(backend)).toEqual(atStep10);
      expect(losses[1]).toBeLessThan(losses[0] * 0.5);
      for (const t of [x, y, ...params]) t.dispose();
    });
  }

  it('a disposed tensor used again throws DisposedTensorError naming the op', async () => {
    for (const backend of backendsUnderTest()) {
      const x = tensor([1, 2, 3], [3], { backend });
      x.dispose();
      x.dispose(); // idempotent
      expect(x.isDisposed).toBe(true);
      expect(() => T.exp(x)).toThrow(DisposedTensorError);
      expect(() => T.exp(x)).toThrow(/Exp.*disposed/);
      expect(() => T.add(x, 1)).toThrow(/add.*disposed/);
      expect(() => T.matmul(T.reshape(x, [3, 1]), x)).toThrow(DisposedTensorError);
      expect(() => T.sum(x)).toThrow(/Sum.*disposed/);
      expect(() => T.layerNorm(x, null, null)).toThrow(/layerNorm.*disposed/);
      expect(() => x.backward()).toThrow(/backward.*disposed/);
      await expect(x.data()).rejects.toThrow(/data.*disposed/);
    }
  });

  it('tidy disposes intermediates, returns results (nested, arrays, objects) and respects keep()', () => {
    for (const backend of backendsUnderTest()) {
      const before = liveCounts(backend);
      const a = tensor([1, 2, 3], [3], { backend });
      let inner: Tensor | null = null;
      let kept: Tensor | null = null;
      const out = tidy(() => {
        const b = T.exp(a);
        const nested = tidy(() => {
          inner = T.mul(b, 2);
          const c = T.add(inner, 1);
          return { c };
        });
        expect(inner!.isDisposed).toBe(true);
        expect(nested.c.isDisposed).toBe(false);
        kept = keep(T.neg(b));
        return [nested.c, T.sqrt(a)];
      });
      expect(out.every((t) => !t.isDisposed)).toBe(true);
      expect(kept!.isDisposed).toBe(false);
      expect(a.isDisposed).toBe(false);
      for (const t of [...out, kept!, a]) t.dispose();
      expect(liveCounts(backend)).toEqual(before);
    }
  });

  it('backward inside tidy leaves the gradients alive (tagged grads); graph memory is freed', async () => {
    for (const backend of backendsUnderTest()) {
      const before = liveCounts(backend);
      const w = tensor([0.5, -1, 2], [3], { backend, requiresGrad: true });
      tidy(() => T.sum(T.mul(T.square(w), 3)).backward());
      expect(w.grad).not.toBeNull();
      expect(w.grad!.isDisposed).toBe(false);
      expect(w.grad!.memoryTag).toBe('grads');
      expect(await w.grad!.toArray()).toEqual([3, -6, 12]);
      w.dispose(); // disposes its grad too
      expect(liveCounts(backend)).toEqual(before);
    }
  });

  it('a second backward needs retainGraph on the first; with it gradients accumulate', async () => {
    for (const backend of backendsUnderTest()) {
      const before = liveCounts(backend);
      const w = tensor([1, 2], [2], { backend, requiresGrad: true });
      const loss = tidy(() => T.sum(T.mul(w, w)));
      loss.backward(undefined, { retainGraph: true });
      loss.backward();
      expect(await w.grad!.toArray()).toEqual([4, 8]);
      expect(() => loss.backward()).toThrow(/already freed.*retainGraph/);
      loss.dispose();
      w.dispose();
      expect(liveCounts(backend)).toEqual(before);
    }
  });

  it('a freed shared subgraph fails the second loss clearly without leaking', () => {
    for (const backend of backendsUnderTest()) {
      const before = liveCounts(backend);
      const w = tensor([1, 2], [2], { backend, requiresGrad: true });
      const h = T.exp(w);
      const l1 = T.sum(h);
      const l2 = tidy(() => T.sum(T.mul(h, h)));
      l1.backward();
      expect(() => l2.backward()).toThrow(/already freed/);
      for (const t of [h, l1, l2, w]) t.dispose();
      expect(liveCounts(backend)).toEqual(before);
    }
  });

  it('disposing the outputs of an unused graph releases saved tensors; noGrad records nothing', () => {
    for (const backend of backendsUnderTest()) {
      const before = liveCounts(backend);
      const w = tensor([1, 2, 3], [3], { backend, requiresGrad: true });
      const y = tidy(() => T.tanh(T.mul(T.exp(w), w)));
      tidy(() => {
        T.sum(y); // more graph, never backpropagated
      });
      y.dispose();
      const z = noGrad(() => T.exp(w));
      expect(z.requiresGrad).toBe(false);
      z.dispose();
      const d = T.detach(w);
      expect(d.requiresGrad).toBe(false);
      d.dispose();
      w.dispose();
      expect(liveCounts(backend)).toEqual(before);
    }
  });

  it('backward with an explicit gradient leaves only the leaf gradients alive', () => {
    for (const backend of backendsUnderTest()) {
      const x = tensor(uniform([3, 2], 510).data, [3, 2], { backend, requiresGrad: true });
      const dy = tensor(uniform([3, 2], 511).data, [3, 2], { backend });
      const before = liveCounts(backend);
      const y = T.neg(x);
      y.backward(dy);
      y.dispose();
      // x.grad is the one new tensor (the seed copy of dy and its zero are freed).
      expect(liveCounts(backend)).toEqual({ ...before, tensors: before.tensors + 1, buffers: before.buffers + 1, bytes: before.bytes + 24 });
      for (const t of [x, dy]) t.dispose();
    }
  });

  it('an error inside an op leaves no temporaries behind', () => {
    for (const backend of backendsUnderTest()) {
      const before = liveCounts(backend);
      const x = tensor([1, -1], [2], { backend });
      const b = T.greater(x, 0);
      const c = tensor([1, 2, 3], [3], { backend });
      expect(() => T.add(2, b)).toThrow(T.DTypeError);
      expect(() => T.where(b, 1, c)).toThrow(T.ShapeError);
      for (const t of [x, b, c]) t.dispose();
      expect(memory(backend).liveTensors).toBe(before.tensors); // nothing the failed ops made survives
    }
  });
});
