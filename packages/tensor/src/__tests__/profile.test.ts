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
      // Browsers coarsen performance.now() (100 us in Chromium without cross-origin
      // isolation), so one tiny cpu op may read 0 ms there: finite and non-negative.
      expect(Number.isFinite(p.ops.Add.hostMs) && p.ops.Add.hostMs >= 0).toBe(true);
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
  it('counts a GPT-2 MLP with layer norm forward and backward: fused bias, GELU-tanh and norm gradients', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const backend = 'webgpu';
    const x = tensor(randomArray(2 * 8 * 16, 5), [2, 8, 16], { backend });
    const g = tensor(randomArray(16, 6), [16], { backend, requiresGrad: true });
    const beta = tensor(randomArray(16, 7), [16], { backend, requiresGrad: true });
    const w1 = tensor(randomArray(16 * 32, 8), [16, 32], { backend, requiresGrad: true });
    const b1 = tensor(randomArray(32, 9), [32], { backend, requiresGrad: true });
    const w2 = tensor(randomArray(32 * 16, 10), [32, 16], { backend, requiresGrad: true });
    const b2 = tensor(randomArray(16, 11), [16], { backend, requiresGrad: true });
    const mlp = () => T.matmulAdd(T.geluTanh(T.matmulAdd(T.layerNorm(x, g, beta), w1, b1)), w2, b2);
    try {
      const p = await profile(() => T.tidy(() => T.sum(mlp()).backward()));
      // Forward: LayerNorm, two MatMulAdd (bias in the store), GeluTanh, Sum.
      // Backward: seed Fill, Sum's expand (StridedCopy); per MatMulAdd the bias row sum
      // (Sum), the weight gradient as one product over the 16 flattened rows (no per-batch
      // product and Sum) and the input gradient (MatMul); GeluTanhGrad (one kernel for
      // what were 18 primitives); LayerNormWeightGrad and a Sum for beta; x needs none,
      // so no LayerNormGrad.
      expect(dispatchesByOp(p)).toEqual({ LayerNorm: 1, MatMulAdd: 2, GeluTanh: 1, Sum: 4, Fill: 1, Reshape: 0, StridedCopy: 1, MatMul: 4, GeluTanhGrad: 1, LayerNormWeightGrad: 1 });
      expect(p.dispatches).toBe(16);
    } finally {
      for (const t of [x, g, beta, w1, b1, w2, b2]) {
        t.grad?.dispose();
        t.dispose();
      }
    }
  });
});
