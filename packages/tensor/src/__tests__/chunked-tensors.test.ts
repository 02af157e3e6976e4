/**
 * Tensors split in row chunks (larger than one storage binding). The binding limit is
 * lowered with the backend's `setMaxBindingBytes` testing knob, so chunk boundaries fall
 * inside small tensors of fresh random values; every result is checked against the cpu
 * backend and against the same op on unsplit webgpu tensors.
 */
import { ChunkedTensorError, IndexError, OutOfMemoryError, Tensor, zeros, add, cast, crossEntropy, arange, gather, getBackend, manualSeed, matmul, max, narrow, transpose, tidy, memory, mul, randn, softmax, sum, tensor } from '@webpeft/tensor';
import { expectClose, initBackends, randomArray, randomInts } from '@webpeft/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

/** Bytes of one binding in these tests: 1024 f32 values. */
const BINDING = 4096;

beforeAll(async () => {
  await initBackends();
});

afterEach(() => {
  getBackend('webgpu').setMaxBindingBytes(null);
});

/** Runs `fn` with bindings capped at {@link BINDING} bytes. */
function split<T>(fn: () => T): T {
  const gpu = getBackend('webgpu');
  gpu.setMaxBindingBytes(BINDING);
  try {
    return fn();
  } finally {
    gpu.setMaxBindingBytes(null);
  }
}

function bindings(t: Tensor): number {
  return t.storage!.bindings ?? 1;
}

let seed = 100;

/** One seeded array on cpu, unsplit webgpu and split webgpu. */
function triple(shape: number[], opts: { requiresGrad?: boolean } = {}): { cpu: Tensor; whole: Tensor; parts: Tensor } {
  const data = randomArray(shape.reduce((p, d) => p * d, 1), seed++);
  const cpu = tensor(data, shape, { backend: 'cpu' });
  const whole = tensor(data, shape, { backend: 'webgpu' });
  const parts = split(() => tensor(data, shape, { backend: 'webgpu' }));
  for (const t of [cpu, whole, parts]) t.requiresGrad = opts.requiresGrad ?? false;
  return { cpu, whole, parts };
}

function ids(n: number, rows: number): { cpu: Tensor; gpu: Tensor; data: Int32Array } {
  const data = Int32Array.from(randomInts(n, rows, seed++));
  return { cpu: tensor(data, [n], { dtype: 'i32', backend: 'cpu' }), gpu: tensor(data, [n], { dtype: 'i32', backend: 'webgpu' }), data };
}

/** Expects split == unsplit webgpu (within `rtol`) and == cpu. */
async function expectSame(parts: Tensor, whole: Tensor, cpu: Tensor, rtol: number, label: string): Promise<void> {
  expect(parts.shape).toEqual(cpu.shape);
  const p = await parts.data();
  expectClose(p, await whole.data(), { rtol, atol: 1e-6, label: `${label}: split vs unsplit webgpu` });
  expectClose(p, await cpu.data(), { rtol, atol: 1e-6, label: `${label}: split webgpu vs cpu` });
}

function disposeAll(...ts: (Tensor | Record<string, Tensor | Int32Array>)[]): void {
  for (const t of ts) {
    if ('dispose' in t && typeof t.dispose === 'function') (t as Tensor).dispose();
    else for (const x of Object.values(t)) if (x instanceof Tensor) x.dispose();
  }
}

describe('tensors split in row chunks', () => {
  it('uploads, reads back and accounts bytes of f32, f16 and i32 tensors in row chunks', async () => {
    const before = memory('webgpu');
    const data = randomArray(250 * 24, seed++);
    const t = split(() => tensor(data, [250, 24], { backend: 'webgpu' }));
    // 1024 f32 per binding -> 40 rows of 24 per chunk (a multiple of 4 rows): 7 chunks.
    expect(bindings(t)).toBe(7);
    expect(await t.data()).toEqual(data);
    const m = memory('webgpu');
    expect(m.liveBytes - before.liveBytes).toBe(250 * 24 * 4);
    expect(m.bytesByTag.activations - before.bytesByTag.activations).toBe(250 * 24 * 4);
    const ints = Int32Array.from(randomInts(99 * 13, 1000, seed++));
    const i = split(() => tensor(ints, [99, 13], { dtype: 'i32', backend: 'webgpu' }));
    expect(bindings(i)).toBeGreaterThan(1);
    expect(await i.data()).toEqual(ints);
    if (getBackend('webgpu').capabilities.f16) {
      // Odd rows of f16 (26 bytes): chunks hold a multiple of 4 rows, so boundaries stay 4-byte aligned.
      const h = split(() => cast(t, 'f16'));
      expect(bindings(h)).toBe(7);
      const back = split(() => cast(h, 'f32'));
      const c = tensor(data, [250, 24], { backend: 'cpu' });
      const ch = cast(c, 'f16');
      const ref = cast(ch, 'f32');
      expect(await back.data()).toEqual(await ref.data());
      disposeAll(h, back, c, ch, ref);
    }
    disposeAll(t, i);
    expect(memory('webgpu').liveBytes).toBe(before.liveBytes);
  });

  it('draws randn in chunks from the same Philox stream as the cpu backend', async () => {
    manualSeed(7);
    const c = randn([130, 24], { backend: 'cpu' });
    manualSeed(7);
    const g = split(() => randn([130, 24], { backend: 'webgpu' }));
    expect(bindings(g)).toBe(4);
    expectClose(await g.data(), await c.data(), { rtol: 1e-6, atol: 1e-6, label: 'randn' });
    disposeAll(c, g);
  });

  it('runs elementwise ops and casts chunk by chunk', async () => {
    const x = triple([90, 24]);
    const y = triple([90, 24]);
    const row = triple([24]);
    const f = (a: Tensor, b: Tensor, r: Tensor) => tidy(() => add(mul(add(a, b), 0.5), r));
    const p = split(() => f(x.parts, y.parts, row.parts));
    expect(bindings(p)).toBeGreaterThan(1);
    const w = f(x.whole, y.whole, row.whole);
    const c = f(x.cpu, y.cpu, row.cpu);
    await expectSame(p, w, c, 1e-6, 'add/mul');
    disposeAll(x, y, row, p, w, c);
  });

  it('sums a split tensor over leading axes and over every element, and takes its max', async () => {
    const x = triple([4, 60, 24]);
    const f = (t: Tensor) => tidy(() => [sum(t, 0), sum(mul(t, t)), max(t)]);
    const p = split(() => f(x.parts));
    const w = f(x.whole);
    const c = f(x.cpu);
    for (let i = 0; i < 3; i++) await expectSame(p[i], w[i], c[i], 1e-5, `reduction ${i}`);
    disposeAll(x, ...p, ...w, ...c);
  });

  it('gathers rows of a split table and scatter-adds its gradient into a split gradient', async () => {
    const table = triple([250, 24], { requiresGrad: true });
    // Ids in every chunk, with duplicates (scatter-add sums them).
    const id = ids(37, 250);
    const dyData = randomArray(37 * 24, seed++);
    const run = (t: Tensor, i: Tensor, backend: 'cpu' | 'webgpu') => {
      const out = gather(t, i);
      const dy = tensor(dyData, [37, 24], { backend });
      out.backward(dy);
      dy.dispose();
      return out;
    };
    const p = split(() => run(table.parts, id.gpu, 'webgpu'));
    const w = run(table.whole, id.gpu, 'webgpu');
    const c = run(table.cpu, id.cpu, 'cpu');
    expect(await p.data()).toEqual(await c.data());
    expect(bindings(table.parts.grad!)).toBe(7);
    await expectSame(table.parts.grad!, table.whole.grad!, table.cpu.grad!, 1e-6, 'scatterAdd');
    disposeAll(table, id, p, w, c);
  });

  it('slices rows across chunk boundaries of a split table, pads its gradient back and transposes it', async () => {
    const W = triple([250, 24], { requiresGrad: true });
    const dyData = randomArray(10 * 24, seed++);
    const f = (w: Tensor, backend: 'cpu' | 'webgpu') => {
      const y = narrow(w, 0, 36, 10);
      const dy = tensor(dyData, [10, 24], { backend });
      y.backward(dy);
      dy.dispose();
      return y;
    };
    const p = split(() => f(W.parts, 'webgpu'));
    const w = f(W.whole, 'webgpu');
    const c = f(W.cpu, 'cpu');
    expect(await p.data()).toEqual(await c.data());
    expect(await p.data()).toEqual(await w.data());
    // The gradient is the slice padded back into [250, 24]: a strided copy into a split tensor.
    expect(bindings(W.parts.grad!)).toBe(7);
    expect(await W.parts.grad!.data()).toEqual(await W.cpu.grad!.data());
    const t = split(() => transpose(W.parts));
    expect(bindings(t)).toBeGreaterThan(1);
    const tc = transpose(W.cpu);
    expect(await t.data()).toEqual(await tc.data());
    disposeAll(W, p, w, c, t, tc);
  });

  it('flags an id outside a split table as IndexError and frees what it made', async () => {
    const t = split(() => tensor(randomArray(250 * 24, seed++), [250, 24], { backend: 'webgpu' }));
    const bad = tensor(new Int32Array([3, 250, 41]), [3], { dtype: 'i32', backend: 'webgpu' });
    const out = gather(t, bad);
    await expect(out.data()).rejects.toThrow(IndexError);
    disposeAll(t, bad, out);
  });

  // m, k, n = 70, 90, 60: every operand and the output exceed one 4 KiB binding.
  const FLAGS: [boolean, boolean][] = [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ];
  for (const [tA, tB] of FLAGS) {
    it(`multiplies split matrices (transposeA ${tA}, transposeB ${tB})`, async () => {
      const [m, k, n] = [70, 90, 60];
      const a = triple(tA ? [k, m] : [m, k]);
      const b = triple(tB ? [n, k] : [k, n]);
      expect(bindings(a.parts)).toBeGreaterThan(1);
      const opts = { transposeA: tA, transposeB: tB };
      const p = split(() => matmul(a.parts, b.parts, opts));
      expect(bindings(p)).toBeGreaterThan(1);
      const w = matmul(a.whole, b.whole, opts);
      const c = matmul(a.cpu, b.cpu, opts);
      await expectSame(p, w, c, 1e-5, `matmul ${tA} ${tB}`);
      disposeAll(a, b, p, w, c);
    });
  }

  it('runs a tied head h @ W^T, its input gradient dy @ W and weight gradient dy^T @ h with W split', async () => {
    // h [2, 5, 24] against W [250, 24]: logits [2, 5, 250] (split too), as a tied lm_head.
    const h = triple([2, 5, 24], { requiresGrad: true });
    const W = triple([250, 24], { requiresGrad: true });
    const dyData = randomArray(2 * 5 * 250, seed++);
    const run = (x: Tensor, w: Tensor, backend: 'cpu' | 'webgpu') => {
      const y = matmul(x, w, { transposeB: true });
      const dy = tensor(dyData, [2, 5, 250], { backend });
      y.backward(dy);
      dy.dispose();
      return y;
    };
    const p = split(() => run(h.parts, W.parts, 'webgpu'));
    const w = run(h.whole, W.whole, 'webgpu');
    const c = run(h.cpu, W.cpu, 'cpu');
    await expectSame(p, w, c, 1e-5, 'h @ W^T');
    await expectSame(h.parts.grad!, h.whole.grad!, h.cpu.grad!, 1e-5, 'dy @ W');
    expect(bindings(W.parts.grad!)).toBeGreaterThan(1);
    await expectSame(W.parts.grad!, W.whole.grad!, W.cpu.grad!, 1e-5, 'dy^T @ h');
    disposeAll(h, W, p, w, c);
  });

  it('runs the f16 lookup and tied head across chunks (within one f16 rounding of unsplit)', async () => {
    if (!getBackend('webgpu').capabilities.f16) return;
    const W = triple([250, 24]);
    const h = triple([7, 24]);
    const id = ids(11, 250);
    const f = (w: Tensor, x: Tensor, i: Tensor) => tidy(() => {
      const w16 = cast(w, 'f16');
      return [cast(gather(w16, i), 'f32'), cast(matmul(cast(x, 'f16'), w16, { transposeB: true }), 'f32')];
    });
    const [pg, pm] = split(() => f(W.parts, h.parts, id.gpu));
    const [wg, wm] = f(W.whole, h.whole, id.gpu);
    const [cg, cm] = f(W.cpu, h.cpu, id.cpu);
    expect(await pg.data()).toEqual(await cg.data());
    // One f16 rounding of an f32 sum whose order may differ: 2^-10 relative.
    await expectSame(pm, wm, cm, 2 ** -10, 'f16 h @ W^T');
    disposeAll(W, h, id, pg, pm, wg, wm, cg, cm);
  });

  it('computes cross-entropy and its gradient over split logits', async () => {
    const logits = triple([60, 50], { requiresGrad: true });
    const labelData = Int32Array.from(randomInts(60, 50, seed++));
    labelData[7] = -100;
    labelData[33] = -100;
    const run = (x: Tensor, backend: 'cpu' | 'webgpu') => {
      const labels = tensor(labelData, [60], { dtype: 'i32', backend });
      const loss = crossEntropy(x, labels);
      loss.backward();
      labels.dispose();
      return loss;
    };
    const p = split(() => run(logits.parts, 'webgpu'));
    expect(bindings(logits.parts)).toBe(3);
    const w = run(logits.whole, 'webgpu');
    const c = run(logits.cpu, 'cpu');
    await expectSame(p, w, c, 1e-5, 'crossEntropy');
    expect(bindings(logits.parts.grad!)).toBe(3);
    await expectSame(logits.parts.grad!, logits.whole.grad!, logits.cpu.grad!, 1e-5, 'crossEntropy grad');
    disposeAll(logits, p, w, c);
  });

  it('refuses other ops on a split tensor with ChunkedTensorError naming the op, shape and bindings, allocating nothing', () => {
    const t = split(() => tensor(randomArray(250 * 24, seed++), [250, 24], { backend: 'webgpu' }));
    const small = tensor(randomArray(24, seed++), [1, 24], { backend: 'webgpu' });
    const before = memory('webgpu');
    expect(() => softmax(t)).toThrow(ChunkedTensorError);
    expect(() => softmax(t)).toThrow(/Softmax: tensor \[250,24\] f32 is split across 7 storage bindings/);
    expect(() => sum(t, 0)).toThrow(/sum: tensor \[250,24\] f32 is split across 7 storage bindings.*only leading axes/);
    // An output larger than one binding from a kernel that writes one binding.
    const many = tensor(new Int32Array(300).fill(3), [300], { dtype: 'i32', backend: 'webgpu' });
    const table = tensor(randomArray(10 * 24, seed++), [10, 24], { backend: 'webgpu' });
    const before2 = memory('webgpu');
    // A lookup whose output exceeds one binding while its table does not.
    expect(() => split(() => gather(table, many))).toThrow(/gather: tensor \[300,24\] f32 is split across 8 storage bindings.*its output would be/);
    // A 1-D tensor has one row: it cannot be split.
    expect(() => split(() => arange(6000, undefined, 1, { backend: 'webgpu' }))).toThrow(/24000 bytes exceeds.*cannot be split in row chunks \(one row of its last dimension is 24000 bytes\)/);
    // Row chunks lift the binding limit only: a tensor beyond the adapter's largest buffer
    // (here [2^20, 2^20] f32, 4 TiB) is refused at once, before any chunk is created.
    const maxBuffer = getBackend('webgpu').limits.maxBufferSize;
    expect(() => zeros([2 ** 20, 2 ** 20], { backend: 'webgpu' })).toThrow(OutOfMemoryError);
    expect(() => zeros([2 ** 20, 2 ** 20], { backend: 'webgpu' })).toThrow(`a tensor of ${2 ** 42} bytes exceeds the adapter's largest buffer (maxBufferSize ${maxBuffer} bytes)`);
    expect(memory('webgpu').liveBytes).toBe(before2.liveBytes);
    disposeAll(many, table);
    const after = memory('webgpu');
    expect(after.liveBytes).toBe(before.liveBytes);
    expect(after.liveTensors).toBe(before.liveTensors);
    disposeAll(t, small);
  });
});
