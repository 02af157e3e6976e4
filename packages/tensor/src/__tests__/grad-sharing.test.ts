/**
 * Add's and Sub's gradients pass `dy` on without a copy (a handle on the same
 * storage), and a leaf's `.grad` always owns its storage, so writing one gradient in
 * place (clipping, accumulation) never changes another.
 */
import * as T from '@webpeft/tensor';
import { assign, profile, tensor } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

describe('gradients passed through', () => {
  it("Add's gradient costs no dispatch", async () => {
    for (const backend of backendsUnderTest()) {
      const x = tensor(randomArray(6, 11), [2, 3], { backend });
      const w = tensor(randomArray(6, 12), [2, 3], { backend, requiresGrad: true });
      const p = await profile(() => T.tidy(() => T.sum(T.add(x, w)).backward()));
      // Forward Add and Sum; backward: the seed, Sum's expand; Add passes dy through.
      const gpu = backend === 'webgpu';
      expect(p.ops.Add).toMatchObject({ calls: 1, dispatches: gpu ? 1 : 0 });
      expect(p.dispatches).toBe(gpu ? 4 : 0);
      expect(await w.grad!.toArray()).toEqual([1, 1, 1, 1, 1, 1]);
      x.dispose();
      w.dispose();
    }
  });

  it('two leaves of one Add: one copy (one dispatch) so each grad owns its storage', async () => {
    for (const backend of backendsUnderTest()) {
      const a = tensor(randomArray(6, 17), [6], { backend, requiresGrad: true });
      const b = tensor(randomArray(6, 18), [6], { backend, requiresGrad: true });
      const p = await profile(() => T.tidy(() => T.sum(T.add(a, b)).backward()));
      // Add, Sum; the seed, Sum's expand, and a's copy `g + 0` (b keeps the shared storage).
      expect(p.dispatches).toBe(backend === 'webgpu' ? 5 : 0);
      expect(p.ops.BinaryScalar.calls).toBe(1);
      expect(await a.grad!.toArray()).toEqual([1, 1, 1, 1, 1, 1]);
      expect(await b.grad!.toArray()).toEqual([1, 1, 1, 1, 1, 1]);
      a.dispose();
      b.dispose();
    }
  });

  it('leaves fed by one Add (and one Sub) get grads that do not alias', async () => {
    for (const backend of backendsUnderTest()) {
      const a = tensor(randomArray(4, 13), [4], { backend, requiresGrad: true });
      const b = tensor(randomArray(4, 14), [4], { backend, requiresGrad: true });
      const c = tensor(randomArray(4, 15), [4], { backend, requiresGrad: true });
      const dy = randomArray(4, 16);
      T.tidy(() => T.sub(T.add(a, b), c).backward(tensor(dy, [4], { backend })));
      // Scale a's gradient in place, as clipping does: b's and c's must not change.
      T.tidy(() => assign(a.grad!, T.mul(a.grad!, 2)));
      const [ga, gb, gc] = await Promise.all([a.grad!.toArray(), b.grad!.toArray(), c.grad!.toArray()]);
      dy.forEach((d, i) => {
        expect(ga[i]).toBeCloseTo(2 * d, 6);
        expect(gb[i]).toBeCloseTo(d, 6);
        expect(gc[i]).toBeCloseTo(-d, 6);
      });
      for (const t of [a, b, c]) t.dispose();
    }
  });
});
