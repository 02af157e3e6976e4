/**
 * profile(): exact counts for small graphs whose dispatches are counted by hand from
 * the kernels (one dispatch per elementwise op, reduction, strided copy and matmul of
 * these sizes; reshapes share storage and dispatch nothing).
 */
import * as T from '@webpeft/tensor';
import { OUTSIDE_OPS, profile, tensor } from '@webpeft/tensor';
import { runComposite } from '@webpeft/tensor/kernel';
import { backendsUnderTest, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

/** Dispatches per op name, only the ops that ran. */
function dispatchesByOp(p: T.Profile<unknown>): Record<string, number> {
  return Object.fromEntries(Object.entries(p.ops).map(([name, o]) => [name, o.dispatches]));
}

describe('profile', () => {
  it('counts one dispatch, its bytes and one submit for a binary op', async () => {
    for (const backend of backendsUnderTest()) {
      const x = tensor(randomArray(15, 1), [3, 5], { backend });
      const y = tensor(randomArray(15, 2), [3, 5], { backend });
      const p = await profile(() => T.add(x, y));
      const gpu = backend === 'webgpu';
      expect(p.ops.Add.calls).toBe(1);
      expect(p.ops.Add.dispatches).toBe(gpu ? 1 : 0);
      expect(p.dispatches).toBe(gpu ? 1 : 0);
      // Two [3, 5] f32 inputs bound read-only, one [3, 5] output written.
      expect(p.ops.Add.bytesRead).toBe(gpu ? 120 : 0);
      expect(p.ops.Add.bytesWritten).toBe(gpu ? 60 : 0);
      expect(p.submits).toBe(gpu ? 1 : 0);
      expect(p.ops.Add.hostMs).toBeGreaterThan(0);
      expect(p.hostMs).toBeGreaterThanOrEqual(p.ops.Add.hostMs);
      const xs = await x.toArray();
      const ys = await y.toArray();
      const out = await p.result.toArray();
      out.forEach((v, i) => expect(v).toBeCloseTo(xs[i] + ys[i], 6));
      p.result.dispose();
      x.dispose();
      y.dispose();
    }
  });

  it('counts forward and backward of sum(x @ w) per op', async () => {
    for (const backend of backendsUnderTest()) {
      const x = tensor(randomArray(12, 3), [4, 3], { backend });
      const w = tensor(randomArray(6, 4), [3, 2], { backend, requiresGrad: true });
      const p = await profile(() => T.tidy(() => T.sum(T.matmul(x, w)).backward()));
      const gpu = backend === 'webgpu';
      // Forward: MatMul, Sum. Backward: the seed (Fill), Sum's gradient (Reshape to
      // [1, 1], shared storage; then StridedCopy to expand to [4, 2]), and MatMul's
      // gradient for w only (x^T dy; x needs none).
      expect(Object.fromEntries(Object.entries(p.ops).map(([n, o]) => [n, o.calls]))).toEqual({ MatMul: 2, Sum: 1, Fill: 1, Reshape: 1, StridedCopy: 1 });
      expect(dispatchesByOp(p)).toEqual(gpu ? { MatMul: 2, Sum: 1, Fill: 1, Reshape: 0, StridedCopy: 1 } : { MatMul: 0, Sum: 0, Fill: 0, Reshape: 0, StridedCopy: 0 });
      expect(p.dispatches).toBe(gpu ? 5 : 0);
      // dw = x^T @ ones: column sums of x, repeated for both outputs.
      const xs = await x.toArray();
      const colSums = [0, 1, 2].map((i) => xs[i] + xs[3 + i] + xs[6 + i] + xs[9 + i]);
      const g = await w.grad!.toArray();
      colSums.forEach((s, i) => {
        expect(g[2 * i]).toBeCloseTo(s, 5);
        expect(g[2 * i + 1]).toBeCloseTo(s, 5);
      });
      x.dispose();
      w.dispose();
    }
  });

  it("attributes a kernel's composed kernels to their own op and self times add up", async () => {
    for (const backend of backendsUnderTest()) {
      // Softmax on a backend with a fused kernel is one op; through its composite (forced
      // here) the primitives are counted under their own names inside it.
      const x = tensor(randomArray(8, 5), [2, 4], { backend });
      const p = await profile(() => runComposite('Softmax', [x], {}));
      expect(p.ops.Softmax.calls).toBe(1);
      expect(p.ops.Softmax.dispatches).toBe(0);
      const others = Object.entries(p.ops).filter(([n]) => n !== 'Softmax');
      expect(others.length).toBeGreaterThan(0);
      const selfSum = Object.values(p.ops).reduce((s, o) => s + o.hostMs, 0);
      expect(selfSum).toBeLessThanOrEqual(p.hostMs + 1e-6);
      expect(p.ops[OUTSIDE_OPS]).toBeUndefined();
      p.result.dispose();
      x.dispose();
    }
  });

  it('refuses to nest, and stops recording when fn throws', async () => {
    const x = tensor(randomArray(4, 6), [4]);
    await expect(
      profile(async () => {
        await profile(() => 0);
      }),
    ).rejects.toThrow(/profiles do not nest/);
    await expect(
      profile(() => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    // A profile after the failures starts clean.
    const p = await profile(() => T.neg(x));
    expect(Object.keys(p.ops)).toEqual(['Neg']);
    p.result.dispose();
    x.dispose();
  });
});
