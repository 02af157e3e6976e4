/**
 * Arithmetic and comparisons with a number operand: one dispatch (the scalar in the
 * uniforms), values against a float64 reference written here, and gradients.
 */
import * as T from '@webpeft/tensor';
import { profile, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

const f = Math.fround;

describe('scalar operands', () => {
  it('x op c and c op x match a float64 reference (f32 rounding of each step)', async () => {
    for (const backend of backendsUnderTest()) {
      const xs = randomArray(37, 41, -2, 2);
      const x = tensor(xs, [37], { backend });
      const cases: [string, (t: T.Tensor) => T.Tensor, (v: number) => number][] = [
        ['x + 1.3', (t) => T.add(t, 1.3), (v) => f(v + f(1.3))],
        ['0.7 - x', (t) => T.sub(0.7, t), (v) => f(f(0.7) - v)],
        ['x - 0.25', (t) => T.sub(t, 0.25), (v) => f(v - 0.25)],
        ['-1.9 * x', (t) => T.mul(-1.9, t), (v) => f(f(-1.9) * v)],
        ['x / 3', (t) => T.div(t, 3), (v) => f(v / 3)],
        ['3 / x (tensor path)', (t) => T.div(3, t), (v) => f(3 / v)],
        ['x ** 2 (tensor path)', (t) => T.pow(t, 2), (v) => f(v * v)],
      ];
      for (const [label, op, ref] of cases) {
        const y = op(x);
        expectClose(await y.toArray(), Array.from(xs, ref), { rtol: 2e-6, atol: 1e-6, label: `${label} on ${backend}` });
        y.dispose();
      }
      const g = T.greater(x, 0.5);
      const l = T.lessEqual(-0.5, x);
      expect(g.dtype).toBe('bool');
      expect(await g.toArray()).toEqual(Array.from(xs, (v) => (v > 0.5 ? 1 : 0)));
      expect(await l.toArray()).toEqual(Array.from(xs, (v) => (-0.5 <= v ? 1 : 0)));
      g.dispose();
      l.dispose();
      x.dispose();
    }
  });

  it('i32 tensors take integer scalars like Fill does (truncated)', async () => {
    for (const backend of backendsUnderTest()) {
      const ints = randomInts(20, 100, 42).map((v) => v - 50);
      const x = tensor(ints, [20], { backend, dtype: 'i32' });
      const y = T.add(x, 7);
      const z = T.mul(-3, x);
      expect(await y.toArray()).toEqual(Array.from(ints, (v) => v + 7));
      // 0 - 3v, not -3v: integer results have no negative zero.
      expect(await z.toArray()).toEqual(Array.from(ints, (v) => 0 - 3 * v));
      for (const t of [x, y, z]) t.dispose();
    }
  });

  it('is one dispatch on webgpu, and gradients are c, -1 and 1/c', async () => {
    for (const backend of backendsUnderTest()) {
      const xs = randomArray(12, 43);
      const x = tensor(xs, [3, 4], { backend, requiresGrad: true });
      const p = await profile(() => T.add(x, 1));
      expect(p.dispatches).toBe(backend === 'webgpu' ? 1 : 0);
      p.result.dispose();
      const dys = randomArray(12, 44);
      T.tidy(() => {
        const y = T.add(T.add(T.mul(x, 2.5), T.sub(1, x)), T.div(x, 4));
        y.backward(tensor(dys, [3, 4], { backend }));
      });
      expectClose(await x.grad!.toArray(), Array.from(dys, (d) => d * 2.5 - d + d / 4), { rtol: 1e-5, atol: 1e-6, label: `grad on ${backend}` });
      x.dispose();
    }
  });

  it('still rejects a number with a storage-only dtype, naming the op', () => {
    for (const backend of backendsUnderTest()) {
      const m = tensor(new Uint32Array([1, 0, 1]), [3], { backend, dtype: 'bool' });
      expect(() => T.add(m, 1)).toThrow(/add: dtype bool is storage-only/);
      m.dispose();
    }
  });
});
