/**
 * The in-place op `Accumulate` (`dst[region] += src`) and the gradient sums built on it:
 * pending gradients of a tensor used several times, slices adding into their window of
 * one gradient, and `.grad` across backward calls. Each element is `dst + src` rounded
 * once, so it must equal the `Add` kernel bitwise; values are checked against float64
 * references written here.
 */
import * as T from '@webpeft/tensor';
import { DTypeError, ShapeError, type Tensor, f16BitsToF32, f32ToF16Bits, getBackend, memory, profile, resetPeakMemory, tensor, tidy } from '@webpeft/tensor';
import { runInPlace } from '@webpeft/tensor/kernel';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { expectUlpsWithin, f16Bits } from './f16-helpers.js';

beforeAll(async () => {
  await initBackends();
});

afterEach(() => {
  if (backendsUnderTest().includes('webgpu')) getBackend('webgpu').setMaxBindingBytes(null);
});

function accumulate(dst: Tensor, src: Tensor, region?: { offset: number; strides: number[] }): void {
  runInPlace('Accumulate', { dst, src, region }, dst.backend);
}

/** Float64 reference of `dst[region] += src`: the flat dst offsets of src's elements, in row-major order. */
function regionOffsets(shape: readonly number[], offset: number, strides: readonly number[]): number[] {
  const n = shape.reduce((p, d) => p * d, 1);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let rem = i;
    let o = offset;
    for (let d = shape.length - 1; d >= 0; d--) {
      o += (rem % shape[d]) * strides[d];
      rem = Math.floor(rem / shape[d]);
    }
    out.push(o);
  }
  return out;
}

function reference(dst: Float32Array, src: Float32Array, offsets: readonly number[]): Float32Array {
  const out = Float32Array.from(dst);
  offsets.forEach((o, i) => (out[o] = Math.fround(out[o] + src[i])));
  return out;
}

describe('Accumulate', () => {
  it('adds into all of dst, bitwise equal to Add (f32)', async () => {
    for (const backend of backendsUnderTest()) {
      const d = randomArray(30, 1, -4, 4) as Float32Array;
      const s = randomArray(30, 2, -4, 4) as Float32Array;
      const dst = tensor(d, [5, 6], { backend });
      const src = tensor(s, [5, 6], { backend });
      const sum = T.add(dst, src);
      accumulate(dst, src);
      const got = (await dst.data()) as Float32Array;
      expect(got, backend).toEqual(reference(d, s, regionOffsets([30], 0, [1])));
      expect(got, `${backend}: Accumulate vs Add`).toEqual(await sum.data());
      for (const t of [dst, src, sum]) t.dispose();
    }
  });

  it('adds into a strided window of dst', async () => {
    for (const backend of backendsUnderTest()) {
      const d = randomArray(48, 3) as Float32Array;
      const s = randomArray(12, 4) as Float32Array;
      // src [3, 2, 2] into dst [4, 12] at row 1, column 3: rows step 12, pairs step 4, columns step 2.
      const region = { offset: 15, strides: [12, 4, 2] };
      const dst = tensor(d, [4, 12], { backend });
      const src = tensor(s, [3, 2, 2], { backend });
      accumulate(dst, src, region);
      expect(await dst.data(), backend).toEqual(reference(d, s, regionOffsets([3, 2, 2], region.offset, region.strides)));
      dst.dispose();
      src.dispose();
    }
  });

  it('f16: summed in f32 and rounded once, as Add', async () => {
    const backends = backendsUnderTest().filter((b) => b === 'cpu' || getBackend('webgpu').capabilities.f16);
    for (const backend of backends) {
      const d = randomArray(40, 5, -8, 8) as Float32Array;
      const s = randomArray(40, 6, -8, 8) as Float32Array;
      const [dst, src] = tidy(() => [T.cast(tensor(d, [8, 5], { backend }), 'f16'), T.cast(tensor(s, [8, 5], { backend }), 'f16')]);
      const [dh, sh] = [await f16Bits(dst), await f16Bits(src)];
      const sum = T.add(dst, src);
      accumulate(dst, src, { offset: 0, strides: [5, 1] });
      const got = await f16Bits(dst);
      // float64 reference: the exact sum of the two f16 values, rounded to f16.
      const want = Uint16Array.from(dh, (h, i) => f32ToF16Bits(f16BitsToF32(h) + f16BitsToF32(sh[i])));
      expectUlpsWithin(got, want, 1, `${backend} f16 vs float64`);
      expect(got, `${backend}: Accumulate vs Add`).toEqual(await f16Bits(sum));
      for (const t of [dst, src, sum]) t.dispose();
    }
  });

  it('webgpu: into and from tensors split in row chunks', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const gpu = getBackend('webgpu');
    const d = randomArray(40 * 64, 7) as Float32Array;
    const s = randomArray(40 * 64, 8) as Float32Array;
    const w = randomArray(12 * 16, 9) as Float32Array;
    // 1024 f32 per binding: 16 rows of 64 per chunk, so [40, 64] is 3 chunks.
    gpu.setMaxBindingBytes(4096);
    const dst = tensor(d, [40, 64], { backend: 'webgpu' });
    const src = tensor(s, [40, 64], { backend: 'webgpu' });
    const win = tensor(w, [12, 16], { backend: 'webgpu' });
    gpu.setMaxBindingBytes(null);
    expect(dst.storage!.bindings).toBe(3);
    expect(src.storage!.bindings).toBe(3);
    accumulate(dst, src);
    // Rows 3, 6, ..., 36 (crossing both chunk boundaries), columns 5, 7, ..., 35.
    const region = { offset: 3 * 64 + 5, strides: [3 * 64, 2] };
    accumulate(dst, win, region);
    const want = reference(reference(d, s, regionOffsets([2560], 0, [1])), w, regionOffsets([12, 16], region.offset, region.strides));
    expect(await dst.data()).toEqual(want);
    for (const t of [dst, src, win]) t.dispose();
  });

  it('refuses mismatched shapes, dtypes, regions and aliasing, naming them', () => {
    for (const backend of backendsUnderTest()) {
      const dst = tensor(randomArray(12, 10), [3, 4], { backend });
      const src = tensor(randomArray(6, 11), [2, 3], { backend });
      const ints = tensor(new Int32Array(6), [2, 3], { backend, dtype: 'i32' });
      const view = T.reshape(dst, [12]);
      const alias = T.reshape(view, [3, 4]);
      try {
        expect(() => accumulate(dst, src)).toThrow(ShapeError);
        expect(() => accumulate(dst, src)).toThrow(/accumulate: src \[2,3\] must have dst's shape \[3,4\]/);
        expect(() => accumulate(dst, ints, { offset: 0, strides: [4, 1] })).toThrow(DTypeError);
        expect(() => accumulate(dst, ints, { offset: 0, strides: [4, 1] })).toThrow(/f32.*i32/);
        expect(() => accumulate(dst, src, { offset: 0, strides: [4] })).toThrow(/one stride per src dimension/);
        expect(() => accumulate(dst, src, { offset: 6, strides: [4, 1] })).toThrow(/past dst's 12/);
        expect(() => accumulate(dst, src, { offset: 0, strides: [1, 1] })).toThrow(/reaches some dst element twice/);
        expect(() => accumulate(dst, src, { offset: -1, strides: [4, 1] })).toThrow(/non-negative integers/);
        expect(() => accumulate(dst, alias)).toThrow(/share one storage/);
      } finally {
        for (const t of [dst, src, ints, view, alias]) t.dispose();
      }
    }
  });
});

describe('gradient sums in place', () => {
  it('a leaf read four times: float64 gradient, summed into .grad in place', async () => {
    for (const backend of backendsUnderTest()) {
      const xs = randomArray(12, 20) as Float32Array;
      const cs = randomArray(12, 21) as Float32Array;
      const as = randomArray(12, 22) as Float32Array;
      const x = tensor(xs, [3, 4], { backend, requiresGrad: true });
      const c = tensor(cs, [3, 4], { backend });
      const a = tensor(as, [3, 4], { backend });
      // h = x c (four products) read by h a, exp(h) and h h: dx = c (a + exp(h) + 2 h).
      const p = await profile(() => tidy(() => T.add(T.add(T.sum(T.mul(T.mul(x, c), a)), T.sum(T.exp(T.mul(x, c)))), T.sum(T.mul(T.mul(x, c), T.mul(x, c)))).backward()));
      const want = Array.from(xs, (xv, i) => {
        const h = xv * cs[i];
        return cs[i] * (as[i] + Math.exp(h) + 2 * h);
      });
      expectClose(await x.grad!.data(), want, { rtol: 1e-5, atol: 1e-6, label: `${backend} dx` });
      // x's first gradient becomes .grad and the other three add into it: 3 Accumulates, no Add.
      expect(p.ops.Accumulate?.calls, backend).toBe(3);
      expect(p.ops.Add?.calls, `${backend}: the forward's two Adds only`).toBe(2);
      for (const t of [x, c, a]) t.dispose();
    }
  });

  it('one intermediate used three times sums its pending gradient in place', async () => {
    for (const backend of backendsUnderTest()) {
      const xs = randomArray(12, 23) as Float32Array;
      const as = randomArray(12, 24) as Float32Array;
      const x = tensor(xs, [3, 4], { backend, requiresGrad: true });
      const a = tensor(as, [3, 4], { backend });
      const p = await profile(() =>
        tidy(() => {
          const h = T.mul(x, a);
          return T.add(T.add(T.sum(T.sin(h)), T.sum(T.exp(h))), T.sum(T.mul(h, a))).backward();
        }),
      );
      // dh = cos(h) + exp(h) + a; dx = a dh.
      const want = Array.from(xs, (xv, i) => {
        const h = xv * as[i];
        return as[i] * (Math.cos(h) + Math.exp(h) + as[i]);
      });
      expectClose(await x.grad!.data(), want, { rtol: 1e-5, atol: 1e-6, label: `${backend} dx` });
      // h's three gradients: the first is pending, the other two add into it (no Add of gradients).
      expect(p.ops.Accumulate?.calls, backend).toBe(2);
      expect(p.ops.Add?.calls, `${backend}: the forward's two Adds only`).toBe(2);
      x.dispose();
      a.dispose();
    }
  });

  it('slices of one tensor add into one gradient', async () => {
    for (const backend of backendsUnderTest()) {
      const xs = randomArray(36, 25) as Float32Array;
      const bs = randomArray(12, 26) as Float32Array;
      const x = tensor(xs, [4, 9], { backend, requiresGrad: true });
      const b = tensor(bs, [4, 3], { backend });
      const p = await profile(() =>
        tidy(() => {
          const h = T.mul(x, 2);
          const [q, k, v] = [T.narrow(h, 1, 0, 3), T.narrow(h, 1, 3, 3), T.narrow(h, 1, 6, 3)];
          return T.add(T.add(T.sum(T.sin(q)), T.sum(T.mul(k, k))), T.sum(T.mul(v, b))).backward();
        }),
      );
      // dh = [cos(q) | 2 k | b], dx = 2 dh.
      const want = Array.from(xs, (xv, i) => {
        const [r, col] = [Math.floor(i / 9), i % 9];
        const h = 2 * xv;
        return 2 * (col < 3 ? Math.cos(h) : col < 6 ? 2 * h : bs[r * 3 + col - 6]);
      });
      expectClose(await x.grad!.data(), want, { rtol: 1e-5, atol: 1e-6, label: `${backend} dx` });
      // Forward: 3 slices. Backward: 3 Sum gradients broadcast dy (StridedCopy), the first
      // slice visited pads its gradient into zeros of h's shape (one StridedCopy); the other
      // two add into their windows of it, and k k's two gradients sum in place: 3 Accumulates.
      expect(p.ops.StridedCopy.calls, backend).toBe(7);
      expect(p.ops.Accumulate?.calls, backend).toBe(3);
      x.dispose();
      b.dispose();
    }
  });

  it('webgpu: a tied table split in row chunks sums its lookup and head gradients in place', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const gpu = getBackend('webgpu');
    const [ws, hs, as] = [randomArray(40 * 64, 30), randomArray(5 * 64, 31), randomArray(7 * 64, 32)];
    const ids = Int32Array.from({ length: 7 }, (_, i) => (i * 13) % 40);
    const grads: Float32Array[] = [];
    for (const backend of ['cpu', 'webgpu'] as const) {
      // 16 rows of 64 per binding: W [40, 64] and both its gradients are 3 chunks on webgpu.
      if (backend === 'webgpu') gpu.setMaxBindingBytes(4096);
      try {
        const w = tensor(ws, [40, 64], { backend, requiresGrad: true });
        const [h, a, id] = [tensor(hs, [5, 64], { backend }), tensor(as, [7, 64], { backend }), tensor(ids, [7], { backend, dtype: 'i32' })];
        const p = await profile(() => tidy(() => T.add(T.sum(T.mul(T.gather(w, id), a)), T.sum(T.matmul(h, w, { transposeB: true }))).backward()));
        if (backend === 'webgpu') expect(w.grad!.storage!.bindings).toBe(3);
        // The head's dW and the lookup's scatter-add: the second adds into the first (whichever is reached first).
        expect(p.ops.Accumulate?.calls, backend).toBe(1);
        grads.push((await w.grad!.data()) as Float32Array);
        for (const t of [w, h, a, id]) t.dispose();
      } finally {
        gpu.setMaxBindingBytes(null);
      }
    }
    // float64 reference: dW[r] = sum of h's rows + a's rows whose id is r.
    const want = new Float64Array(40 * 64);
    for (let r = 0; r < 40; r++) for (let j = 0; j < 64; j++) for (let t = 0; t < 5; t++) want[r * 64 + j] += hs[t * 64 + j];
    ids.forEach((r, t) => {
      for (let j = 0; j < 64; j++) want[r * 64 + j] += as[t * 64 + j];
    });
    expectClose(grads[0], want, { rtol: 1e-5, atol: 1e-6, label: 'cpu dW vs float64' });
    expectClose(grads[1], want, { rtol: 1e-5, atol: 1e-6, label: 'split webgpu dW vs float64' });
  });

  it('two backward calls accumulate into .grad in place: a1 + a2, no third buffer', async () => {
    const [k, n] = [256, 256];
    for (const backend of backendsUnderTest()) {
      const a1 = randomArray(k, 27) as Float32Array;
      const a2 = randomArray(k, 28) as Float32Array;
      const w = tensor(randomArray(k * n, 29), [k, n], { backend, requiresGrad: true });
      const [x1, x2] = [tensor(a1, [1, k], { backend }), tensor(a2, [1, k], { backend })];
      // loss = sum(a W): dW[i, j] = a[i], so two calls give a1[i] + a2[i] (one rounding).
      tidy(() => T.sum(T.matmul(x1, w)).backward());
      const grad = w.grad!;
      resetPeakMemory(backend);
      const live = memory(backend).liveBytes;
      tidy(() => T.sum(T.matmul(x2, w)).backward());
      const peak = memory(backend).peakBytes - live;
      // Beyond w, x1, x2 and .grad only the new [k, n] gradient and [1, n] rows and scalars
      // are live at once; a sum out of place would hold a second [k, n] buffer next to it.
      const gradBytes = 4 * k * n;
      expect(peak, backend).toBeGreaterThanOrEqual(gradBytes);
      expect(peak, backend).toBeLessThan(gradBytes + 16 * 4 * n);
      expect(w.grad, `${backend}: the same .grad tensor`).toBe(grad);
      const want = new Float32Array(k * n);
      for (let i = 0; i < k; i++) want.fill(Math.fround(a1[i] + a2[i]), i * n, (i + 1) * n);
      expect(await w.grad!.data(), backend).toEqual(want);
      for (const t of [w, x1, x2]) t.dispose();
    }
  });
});
