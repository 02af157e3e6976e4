/**
 * `stridedMatmul`: products over strided views (attention head split of a fused qkv
 * projection, the merge back, transposed, broadcast, unaligned and copy-only views).
 * Forward and gradients: webgpu vs cpu (whose path is the composite: copies and
 * `MatMul`), cpu vs a float64 reference written here, f16, row-chunked operands,
 * exact dispatch counts, and the errors of bad views.
 */
import { type MatrixView, ShapeError, type StridedMatMulAttrs, type Tensor, cast, getBackend, profile, stridedMatmul, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends } from '@webpeft/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type HostInput, coordsOf, expectBackendsAgree, gradsOn, toF64, uniform } from './conformance.js';
import { webgpuHasF16 } from './f16-helpers.js';

beforeAll(async () => {
  await initBackends();
});

afterEach(() => {
  if (backendsUnderTest().includes('webgpu')) getBackend('webgpu').setMaxBindingBytes(null);
});

const size = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
const at = (v: MatrixView, c: readonly number[]) => v.offset + c.slice(0, -2).reduce((acc, x, d) => acc + x * v.batchStrides[d], 0) + c[c.length - 2] * v.rowStride + c[c.length - 1] * v.colStride;

/** Float64 reference: the output of `outShape` and the gradients of `sum(out * w)` (weights as `gradsOn`'s). */
function reference(a: HostInput, b: HostInput, s: StridedMatMulAttrs): { out: Float64Array; ga: Float64Array; gb: Float64Array } {
  const out = new Float64Array(size(s.outShape));
  const ga = new Float64Array(size(a.shape));
  const gb = new Float64Array(size(b.shape));
  const nb = size(s.batchShape);
  for (let t = 0; t < nb; t++) {
    const bc = coordsOf(t, s.batchShape);
    for (let i = 0; i < s.m; i++) {
      for (let j = 0; j < s.n; j++) {
        const o = at(s.out, [...bc, i, j]);
        const w = Math.cos(1.3 * o + 0.7);
        let acc = 0;
        for (let p = 0; p < s.k; p++) {
          const ai = at(s.a, [...bc, i, p]);
          const bi = at(s.b, [...bc, p, j]);
          acc += a.data[ai] * b.data[bi];
          ga[ai] += w * b.data[bi];
          gb[bi] += w * a.data[ai];
        }
        out[o] = acc;
      }
    }
  }
  return { out, ga, gb };
}

const rowMajor = (batch: readonly number[], rows: number, cols: number): MatrixView => {
  const dims = [...batch, rows, cols];
  const st = dims.map((_, i) => size(dims.slice(i + 1)));
  return { offset: 0, batchStrides: st.slice(0, -2), rowStride: st[st.length - 2], colStride: 1 };
};

/** Head `which` (0 q, 1 k, 2 v) of `qkv [B, T, 3 * H * Dh]` as `[B, H, T, Dh]` matrices (transposed: `[Dh, T]`). */
function head(T: number, H: number, Dh: number, which: number, transposed = false): MatrixView {
  const D = H * Dh;
  const v = { offset: which * D, batchStrides: [T * 3 * D, Dh], rowStride: 3 * D, colStride: 1 };
  return transposed ? { ...v, rowStride: 1, colStride: 3 * D } : v;
}

/** The cases: name, inputs' shapes, attrs. */
function cases(): { name: string; a: number[]; b: number[]; attrs: StridedMatMulAttrs }[] {
  const list: { name: string; a: number[]; b: number[]; attrs: StridedMatMulAttrs }[] = [];
  for (const [B, T, H, Dh] of [
    [2, 8, 2, 4],
    [1, 5, 3, 3],
  ]) {
    const qkv = [B, T, 3 * H * Dh];
    list.push({
      name: `scores q k^T of qkv ${JSON.stringify(qkv)}`,
      a: qkv,
      b: qkv,
      attrs: { batchShape: [B, H], m: T, k: Dh, n: T, a: head(T, H, Dh, 0), b: head(T, H, Dh, 1, true), outShape: [B, H, T, T], out: rowMajor([B, H], T, T) },
    });
    list.push({
      name: `probs v merged into [B, T, D] (${JSON.stringify(qkv)})`,
      a: [B, H, T, T],
      b: qkv,
      attrs: { batchShape: [B, H], m: T, k: T, n: Dh, a: rowMajor([B, H], T, T), b: head(T, H, Dh, 2), outShape: [B, T, H * Dh], out: { offset: 0, batchStrides: [T * H * Dh, Dh], rowStride: H * Dh, colStride: 1 } },
    });
  }
  list.push({
    name: 'A read transposed (rows of unit stride), B broadcast over the batch (stride 0)',
    a: [3, 8, 12],
    b: [8, 4],
    attrs: { batchShape: [3], m: 12, k: 8, n: 4, a: { offset: 0, batchStrides: [96], rowStride: 1, colStride: 12 }, b: { offset: 0, batchStrides: [0], rowStride: 4, colStride: 1 }, outShape: [3, 12, 4], out: rowMajor([3], 12, 4) },
  });
  list.push({
    name: 'a window at an odd offset, output written transposed (copied)',
    a: [7, 9],
    b: [5, 6],
    attrs: { batchShape: [], m: 3, k: 5, n: 6, a: { offset: 11, batchStrides: [], rowStride: 9, colStride: 1 }, b: rowMajor([], 5, 6), outShape: [6, 3], out: { offset: 0, batchStrides: [], rowStride: 1, colStride: 3 } },
  });
  list.push({
    name: 'a view with no unit-stride axis (every other column: copied)',
    a: [4, 16],
    b: [8, 8],
    attrs: { batchShape: [], m: 4, k: 8, n: 8, a: { offset: 0, batchStrides: [], rowStride: 16, colStride: 2 }, b: rowMajor([], 8, 8), outShape: [4, 8], out: rowMajor([], 4, 8) },
  });
  list.push({
    name: 'one row, one column (m = 1, n = 1)',
    a: [2, 12],
    b: [12, 3],
    attrs: { batchShape: [2], m: 1, k: 12, n: 1, a: { offset: 0, batchStrides: [12], rowStride: 999, colStride: 1 }, b: { offset: 1, batchStrides: [0], rowStride: 3, colStride: 7 }, outShape: [2], out: { offset: 0, batchStrides: [1], rowStride: 5, colStride: 5 } },
  });
  return list;
}

describe('stridedMatmul: webgpu vs cpu vs float64, with gradients', () => {
  let seed = 1;
  for (const c of cases()) {
    it(c.name, async () => {
      const a = uniform(c.a, seed++);
      const b = uniform(c.b, seed++);
      const ref = reference(a, b, c.attrs);
      const fn = (x: Tensor, y: Tensor) => stridedMatmul(x, y, c.attrs);
      const [out] = await expectBackendsAgree(fn, [a, b], { rtol: 1e-5, atol: 1e-6 }, c.name);
      expect(out.shape).toEqual(c.attrs.outShape);
      expectClose(out.values, ref.out, { rtol: 1e-5, atol: 1e-6, label: `${c.name}: cpu vs float64` });
      const f64 = await cpuF64(fn, a, b);
      expectClose(f64.values, ref.out, { rtol: 1e-12, atol: 1e-12, label: `${c.name}: cpu f64 vs float64` });
      for (const backend of backendsUnderTest()) {
        const [ga, gb] = await gradsOn(backend, fn, [a, b]);
        expectClose(ga!, ref.ga, { rtol: 1e-5, atol: 1e-5, label: `${c.name}: dA on ${backend}` });
        expectClose(gb!, ref.gb, { rtol: 1e-5, atol: 1e-5, label: `${c.name}: dB on ${backend}` });
      }
    });
  }

  it('both operands one tensor (q and k of one qkv): the gradient sums both uses', async () => {
    const c = cases()[0];
    const x = uniform(c.a, 77);
    const ref = reference(x, x, c.attrs);
    const sumRef = ref.ga.map((v, i) => v + ref.gb[i]);
    for (const backend of backendsUnderTest()) {
      const [g] = await gradsOn(backend, (q) => stridedMatmul(q, q, c.attrs), [x]);
      expectClose(g!, sumRef, { rtol: 1e-5, atol: 1e-5, label: `shared operand on ${backend}` });
    }
  });
});

async function cpuF64(fn: (x: Tensor, y: Tensor) => Tensor, a: HostInput, b: HostInput) {
  const x = tensor(toF64(a).data, a.shape, { backend: 'cpu' });
  const y = tensor(toF64(b).data, b.shape, { backend: 'cpu' });
  const o = fn(x, y);
  const values = Float64Array.from(await o.data());
  for (const t of [x, y, o]) t.dispose();
  return { values, shape: o.shape, dtype: o.dtype };
}

describe('stridedMatmul on webgpu (skipped without an adapter)', () => {
  const gpu = () => backendsUnderTest().includes('webgpu');
  it('f16 views agree with the cpu f16 reference (forward and gradients)', async () => {
    if (!gpu() || !webgpuHasF16()) return;
    for (const c of cases().slice(0, 4)) {
      const a = uniform(c.a, 5);
      const b = uniform(c.b, 6);
      const fn = (x: Tensor, y: Tensor) => cast(stridedMatmul(cast(x, 'f16'), cast(y, 'f16'), c.attrs), 'f32');
      // f16 operands, f32 accumulation on both backends, one rounding on store: within 2 f16 ulps.
      await expectBackendsAgree(fn, [a, b], { rtol: 2e-3, atol: 2e-3 }, `${c.name} f16`);
      const [cga, cgb] = await gradsOn('cpu', fn, [a, b]);
      const [wga, wgb] = await gradsOn('webgpu', fn, [a, b]);
      expectClose(wga!, cga!, { rtol: 5e-3, atol: 5e-3, label: `${c.name} f16 dA` });
      expectClose(wgb!, cgb!, { rtol: 5e-3, atol: 5e-3, label: `${c.name} f16 dB` });
    }
  });

  it('row-chunked operands and outputs go through copies and agree with cpu (with gradients)', async () => {
    if (!gpu()) return;
    const [B, T, H, Dh] = [2, 16, 2, 8];
    const attrs: StridedMatMulAttrs = { batchShape: [B, H], m: T, k: Dh, n: T, a: head(T, H, Dh, 0), b: head(T, H, Dh, 1, true), outShape: [B, H, T, T], out: rowMajor([B, H], T, T) };
    const x = uniform([B, T, 3 * H * Dh], 9);
    const y = uniform([B, T, 3 * H * Dh], 10);
    const ref = reference(x, y, attrs);
    const backend = getBackend('webgpu');
    // 1 KiB bindings: qkv (6 KiB), the scores (4 KiB) and the gradients are split in chunks.
    const fn = (p: Tensor, q: Tensor) => stridedMatmul(p, q, attrs);
    backend.setMaxBindingBytes(1024);
    try {
      const probe = tensor(x.data, x.shape, { backend: 'webgpu' });
      expect(probe.storage!.bindings).toBeGreaterThan(1);
      probe.dispose();
      const [out] = await expectBackendsAgree(fn, [x, y], { rtol: 1e-5, atol: 1e-6 }, 'chunked');
      expectClose(out.values, ref.out, { rtol: 1e-5, atol: 1e-6, label: 'chunked forward vs float64' });
      const [ga, gb] = await gradsOn('webgpu', fn, [x, y]);
      expectClose(ga!, ref.ga, { rtol: 1e-5, atol: 1e-5, label: 'chunked dA' });
      expectClose(gb!, ref.gb, { rtol: 1e-5, atol: 1e-5, label: 'chunked dB' });
    } finally {
      backend.setMaxBindingBytes(null);
    }
  });

  it('an aligned head split is one dispatch; a copy-only view adds its copies', async () => {
    if (!gpu()) return;
    const c = cases()[0];
    const x = tensor(uniform(c.a, 3).data, c.a, { backend: 'webgpu' });
    const p = await profile(() => stridedMatmul(x, x, c.attrs));
    expect(p.dispatches).toBe(1);
    expect(Object.keys(p.ops)).toEqual(['StridedMatMul']);
    p.result.dispose();
    const d = cases()[6];
    const a = tensor(uniform(d.a, 4).data, d.a, { backend: 'webgpu' });
    const b = tensor(uniform(d.b, 5).data, d.b, { backend: 'webgpu' });
    // Copies of both views (a's has no unit stride), the product, the copy into place.
    const q = await profile(() => stridedMatmul(a, b, d.attrs));
    expect(q.dispatches).toBe(4);
    q.result.dispose();
    for (const t of [x, a, b]) t.dispose();
  });
});

describe('stridedMatmul: bad views are ShapeErrors naming the view', () => {
  it('out of bounds, overlapping, or an output it does not cover', () => {
    const a = tensor(new Float32Array(24).map((_, i) => Math.sin(i)), [4, 6], { backend: 'cpu' });
    const good: StridedMatMulAttrs = { batchShape: [], m: 4, k: 6, n: 4, a: rowMajor([], 4, 6), b: { offset: 0, batchStrides: [], rowStride: 1, colStride: 6 }, outShape: [4, 4], out: rowMajor([], 4, 4) };
    const r = stridedMatmul(a, a, good);
    r.dispose();
    expect(() => stridedMatmul(a, a, { ...good, a: { ...good.a, offset: 1 } })).toThrow(/view a \[4, 6\] at offset 1 .* reaches element 24 of \[4,6\]/);
    expect(() => stridedMatmul(a, a, { ...good, a: { ...good.a, rowStride: 3 } })).toThrow(/view a .* reads some element twice/);
    expect(() => stridedMatmul(a, a, { ...good, outShape: [4, 5] })).toThrow(/out view .* must cover outShape \[4,5\]/);
    expect(() => stridedMatmul(a, a, { ...good, out: { ...good.out, rowStride: 5 } })).toThrow(ShapeError);
    expect(() => stridedMatmul(a, a, { ...good, a: { ...good.a, batchStrides: [1] } })).toThrow(/1 batch strides for batch shape \[\]/);
    a.dispose();
  });
});
