/**
 * linearCrossEntropy (fused linear + cross-entropy over vocabulary chunks): loss and
 * gradients for hidden, weight and bias against a float64 reference written here and
 * against the unfused path (`matmul` + `crossEntropy`), on every backend; chunk edges,
 * ignored rows, no counted row, bias, f16, bad labels and bad input. (The peak bytes of
 * a step with large logits: linear-cross-entropy-memory.node.test.ts.)
 */
import * as T from '@webpeft/tensor';
import { type BackendName, type Tensor, IndexError, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, liveCounts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type HostInput, uniform } from './conformance.js';
import { type Problem, labelsWith } from './linear-cross-entropy-problems.js';
import { vocabChunkRows } from '../backends/webgpu/kernels/linear-cross-entropy/chunks.js';

beforeAll(async () => {
  await initBackends();
});

interface Result {
  loss: Float64Array;
  hidden: Float64Array;
  weight: Float64Array;
  bias: Float64Array | null;
}

function problem(n: number, d: number, v: number, seed: number, ignored: readonly number[], bias: boolean): Problem {
  return {
    hidden: uniform([n, d], seed, -1, 1),
    weight: uniform([v, d], seed + 1, -1, 1),
    labels: labelsWith(n, v, seed + 2, ignored),
    ...(bias ? { bias: uniform([v], seed + 3, -0.5, 0.5) } : {}),
  };
}

/** Float64 loss (`reduction` 'mean' or 'sum') and its gradients, from the definitions. */
function reference(p: Problem, reduction: 'mean' | 'sum'): Result {
  const [n, d] = p.hidden.shape;
  const v = p.weight.shape[0];
  const [h, w, l] = [p.hidden.data, p.weight.data, p.labels.data];
  const counted = Array.from(l).filter((x) => x !== -100).length;
  const scale = reduction === 'mean' ? 1 / Math.max(counted, 1) : 1;
  let loss = 0;
  const dh = new Float64Array(n * d);
  const dw = new Float64Array(v * d);
  const db = new Float64Array(v);
  for (let r = 0; r < n; r++) {
    if (l[r] === -100) continue;
    const logits = new Float64Array(v);
    for (let c = 0; c < v; c++) {
      let s = p.bias ? p.bias.data[c] : 0;
      for (let k = 0; k < d; k++) s += h[r * d + k] * w[c * d + k];
      logits[c] = s;
    }
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((a, x) => a + Math.exp(x - m), 0));
    loss += (lse - logits[l[r]]) * scale;
    for (let c = 0; c < v; c++) {
      const g = (Math.exp(logits[c] - lse) - (c === l[r] ? 1 : 0)) * scale;
      db[c] += g;
      for (let k = 0; k < d; k++) {
        dh[r * d + k] += g * w[c * d + k];
        dw[c * d + k] += g * h[r * d + k];
      }
    }
  }
  return { loss: Float64Array.of(loss), hidden: dh, weight: dw, bias: p.bias ? db : null };
}

type Loss = (h: Tensor, w: Tensor, l: Tensor, b: Tensor | undefined) => Tensor;

const fusedLoss = (opts: T.LinearCrossEntropyOptions): Loss => (h, w, l, b) => T.linearCrossEntropy(h, w, l, { ...opts, ...(b ? { bias: b } : {}) });
const unfusedLoss = (reduction: 'mean' | 'sum'): Loss => (h, w, l, b) => {
  const logits = T.matmul(h, w, { transposeB: true });
  return T.crossEntropy(b ? T.add(logits, b) : logits, l, { reduction });
};

/** How many storage bindings `t` takes (more than 1: split in row chunks). */
function bindings(t: Tensor): number {
  return t.storage!.bindings ?? 1;
}

/**
 * Runs `loss` and its backward on `backend` (inputs in `dtype`), reading loss and
 * gradients as f64; checks for leaks. With `maxBindingBytes` (webgpu) the whole step runs
 * with storage bindings capped there, so the weight and its gradient are split in row
 * chunks; `split` then receives how many bindings the weight, its gradient and the hidden
 * states took.
 */
async function run(
  backend: BackendName,
  p: Problem,
  loss: Loss,
  dtype: 'f32' | 'f16' = 'f32',
  opts: { maxBindingBytes?: number; split?: (counts: { weight: number; weightGrad: number; hidden: number }) => void } = {},
): Promise<Result> {
  if (opts.maxBindingBytes === undefined) return runStep(backend, p, loss, dtype);
  const gpu = T.getBackend('webgpu');
  gpu.setMaxBindingBytes(opts.maxBindingBytes);
  try {
    return await runStep(backend, p, loss, dtype, opts.split);
  } finally {
    gpu.setMaxBindingBytes(null);
  }
}

async function runStep(
  backend: BackendName,
  p: Problem,
  loss: Loss,
  dtype: 'f32' | 'f16',
  split?: (counts: { weight: number; weightGrad: number; hidden: number }) => void,
): Promise<Result> {
  const before = liveCounts(backend);
  const make = (x: HostInput) => T.tidy(() => T.cast(tensor(x.data, x.shape, { backend }), dtype));
  const [h, w] = [make(p.hidden), make(p.weight)];
  const b = p.bias ? make(p.bias) : undefined;
  for (const t of [h, w, b]) if (t) t.requiresGrad = true;
  const l = tensor(p.labels.data, p.labels.shape, { backend, dtype: 'i32' });
  const out = T.tidy(() => loss(h, w, l, b));
  expect(out.dtype).toBe('f32');
  out.backward();
  const read = async (t: Tensor) => {
    expect(t.dtype).toBe(t === out ? 'f32' : dtype);
    const wide = T.cast(t, 'f32');
    const values = Float64Array.from(await wide.data());
    wide.dispose();
    return values;
  };
  split?.({ weight: bindings(w), weightGrad: bindings(w.grad!), hidden: bindings(h) });
  const result: Result = { loss: await read(out), hidden: await read(h.grad!), weight: await read(w.grad!), bias: b ? await read(b.grad!) : null };
  for (const t of [h, w, b, l, out]) {
    if (!t) continue;
    t.grad?.dispose();
    t.dispose();
  }
  expect(liveCounts(backend), 'live tensors/buffers after the step').toEqual(before);
  return result;
}

function expectResultsClose(a: Result, b: Result, tol: { rtol: number; atol: number }, label: string): void {
  expectClose(a.loss, b.loss, { ...tol, label: `${label}: loss` });
  expectClose(a.hidden, b.hidden, { ...tol, label: `${label}: dHidden` });
  expectClose(a.weight, b.weight, { ...tol, label: `${label}: dWeight` });
  if (a.bias || b.bias) expectClose(a.bias!, b.bias!, { ...tol, label: `${label}: dBias` });
}

// f32 against float64: 1e-5 relative, and an absolute floor for entries that cancel to ~0.
const F32_TOL = { rtol: 1e-5, atol: 2e-7 };

describe('linearCrossEntropy', () => {
  const configs = [
    { name: 'V=37 in chunks of 8 (last chunk 5), ignored rows', n: 13, d: 10, v: 37, ignored: [2, 9], bias: false, chunkSize: 8 },
    { name: 'V=37 in chunks of 8 with bias', n: 13, d: 10, v: 37, ignored: [0], bias: true, chunkSize: 8 },
    { name: 'one chunk (automatic size), bias', n: 9, d: 24, v: 150, ignored: [4], bias: true, chunkSize: undefined },
    { name: 'chunks of 1 row', n: 5, d: 3, v: 7, ignored: [], bias: true, chunkSize: 1 },
    { name: 'wide chunks (workgroup rows), V=301 in chunks of 128', n: 6, d: 33, v: 301, ignored: [5], bias: false, chunkSize: 128 },
  ];
  for (const c of configs) {
    for (const reduction of ['mean', 'sum'] as const) {
      it(`${c.name}, ${reduction}: loss and every gradient equal float64 and the unfused path`, async () => {
        const p = problem(c.n, c.d, c.v, 100 + c.n + c.v, c.ignored, c.bias);
        const ref = reference(p, reduction);
        for (const backend of backendsUnderTest()) {
          if (backend === 'meta') continue;
          const fused = await run(backend, p, fusedLoss({ reduction, chunkSize: c.chunkSize }));
          const unfused = await run(backend, p, unfusedLoss(reduction));
          expectResultsClose(fused, ref, F32_TOL, `${backend} fused vs float64`);
          expectResultsClose(unfused, ref, F32_TOL, `${backend} unfused vs float64`);
          expectResultsClose(fused, unfused, F32_TOL, `${backend} fused vs unfused`);
        }
      });
    }
  }

  it("reduction 'none' gives the per-row losses (0 at ignored rows)", async () => {
    const p = problem(7, 5, 19, 300, [1, 6], true);
    for (const backend of backendsUnderTest()) {
      if (backend === 'meta') continue;
      const before = liveCounts(backend);
      const [h, w, b] = [p.hidden, p.weight, p.bias!].map((x) => tensor(x.data, x.shape, { backend }));
      const l = tensor(p.labels.data, [7], { backend, dtype: 'i32' });
      const rows = T.linearCrossEntropy(h, w, l, { reduction: 'none', bias: b, chunkSize: 4 });
      const expected = T.tidy(() => T.crossEntropy(T.add(T.matmul(h, w, { transposeB: true }), b), l, { reduction: 'none' }));
      expect(rows.shape).toEqual([7]);
      const got = await rows.data();
      expectClose(got, await expected.data(), { ...F32_TOL, label: `${backend} per-row losses` });
      expect([got[1], got[6]]).toEqual([0, 0]);
      for (const t of [h, w, b, l, rows, expected]) t.dispose();
      expect(liveCounts(backend)).toEqual(before);
    }
  });

  it('a mean over no counted row (every label ignored) is 0 with zero gradients, never NaN', async () => {
    const p = problem(6, 4, 11, 400, [0, 1, 2, 3, 4, 5], true);
    for (const backend of backendsUnderTest()) {
      if (backend === 'meta') continue;
      const r = await run(backend, p, fusedLoss({ chunkSize: 4 }));
      expect(Array.from(r.loss)).toEqual([0]);
      for (const g of [r.hidden, r.weight, r.bias!]) expect(g.every((x) => x === 0)).toBe(true);
    }
  });

  it('a label outside [0, V) throws IndexError naming the op, and leaks nothing', async () => {
    const p = problem(5, 4, 9, 500, [], false);
    p.labels.data[3] = 9;
    for (const backend of backendsUnderTest()) {
      if (backend === 'meta') continue;
      const before = liveCounts(backend);
      const [h, w] = [p.hidden, p.weight].map((x) => tensor(x.data, x.shape, { backend }));
      const l = tensor(p.labels.data, [5], { backend, dtype: 'i32' });
      // cpu throws at the call; webgpu flags the label and throws at the next readback.
      let err: unknown;
      try {
        const loss = T.linearCrossEntropy(h, w, l, { chunkSize: 4 });
        try {
          await loss.item();
        } finally {
          loss.dispose();
        }
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(IndexError);
      expect(String(err)).toMatch(/crossEntropy/i);
      expect(String(err)).toMatch(/\b9\b/);
      for (const t of [h, w, l]) t.dispose();
      expect(liveCounts(backend)).toEqual(before);
    }
  });

  it('bad input fails with a typed error naming the op, shape, dtype or option', () => {
    for (const backend of backendsUnderTest()) {
      if (backend === 'meta') continue;
      const before = liveCounts(backend);
      const h = tensor(uniform([4, 3], 1).data, [4, 3], { backend });
      const w = tensor(uniform([6, 3], 2).data, [6, 3], { backend });
      const w2 = tensor(uniform([6, 2], 3).data, [6, 2], { backend });
      const l = tensor(Int32Array.from([1, 2, 3, 4]), [4], { backend, dtype: 'i32' });
      const lf = tensor(Float32Array.from([1, 2, 3, 4]), [4], { backend });
      const b = tensor(uniform([5], 4).data, [5], { backend });
      expect(() => T.linearCrossEntropy(h, w2, l)).toThrow(/linearCrossEntropy: expected hidden \[N, D\], weight \[V, D\].*\[4,3\], \[6,2\]/);
      expect(() => T.linearCrossEntropy(h, w, lf)).toThrow(T.DTypeError);
      expect(() => T.linearCrossEntropy(h, w, l, { bias: b })).toThrow(/bias \[V\].*\[5\]/);
      expect(() => T.linearCrossEntropy(h, w, l, { chunkSize: 0 })).toThrow(/option chunkSize must be a positive integer, got 0/);
      expect(() => T.linearCrossEntropy(h, w, l, { chunkSize: 2.5 })).toThrow(/chunkSize/);
      expect(() => T.linearCrossEntropy(h, w, l, { reduction: 'avg' as 'mean' })).toThrow(/option reduction/);
      for (const t of [h, w, w2, l, lf, b]) t.dispose();
      expect(liveCounts(backend)).toEqual(before);
    }
  });

  it('f16 hidden and weight: f32 loss, gradients in f16, equal to the unfused f16 path', async () => {
    // Multiples of 4 keep f16 matmuls on the aligned tile (the guarded f16 tile compiles slowly on software adapters).
    const p = problem(12, 16, 48, 600, [3], true);
    for (const backend of backendsUnderTest()) {
      if (backend === 'meta' || !T.getBackend(backend).capabilities.f16) continue;
      const fused = await run(backend, p, fusedLoss({ chunkSize: 8 }), 'f16');
      const unfused = await run(backend, p, unfusedLoss('mean'), 'f16');
      // Both round the same f16 logits; they differ in f32 summation order and in dHidden's
      // accumulation (f32 across chunks vs one f32 matmul): a few f16 ulps.
      expectResultsClose(fused, unfused, { rtol: 4e-3, atol: 2e-4 }, `${backend} f16 fused vs unfused`);
      expectResultsClose(fused, reference(p, 'mean'), { rtol: 3e-2, atol: 2e-3 }, `${backend} f16 fused vs float64`);
    }
  }, 300_000);
});

describe('linearCrossEntropy over a weight split in row chunks (a tied head larger than one binding)', () => {
  // 4096-byte bindings: a [250, 24] weight is 7 chunks of 40 rows (the last 10), in f32
  // and f16 alike (rows per chunk are counted in 4-byte elements).
  const BINDING = 4096;
  const configs = [
    { name: 'vocabulary chunks of 7 rows straddling the weight chunks, ignored rows', n: 13, d: 24, v: 250, ignored: [3, 11], bias: false, chunkSize: 7 },
    { name: 'vocabulary chunks of 48 rows with bias', n: 9, d: 24, v: 250, ignored: [0], bias: true, chunkSize: 48 },
    { name: 'automatic vocabulary chunks (on the weight chunks)', n: 13, d: 24, v: 250, ignored: [5], bias: false, chunkSize: undefined },
    { name: 'hidden states split too ([64, 24]), chunks of 16 rows', n: 64, d: 24, v: 250, ignored: [1, 63], bias: true, chunkSize: 16 },
  ];
  for (const c of configs) {
    it(`${c.name}: loss and every gradient equal the unsplit step and float64`, async () => {
      if (!backendsUnderTest().includes('webgpu')) return;
      const p = problem(c.n, c.d, c.v, 900 + c.n + (c.chunkSize ?? 0), c.ignored, c.bias);
      const ref = reference(p, 'mean');
      let counts = { weight: 0, weightGrad: 0, hidden: 0 };
      const split = await run('webgpu', p, fusedLoss({ chunkSize: c.chunkSize }), 'f32', { maxBindingBytes: BINDING, split: (k) => (counts = k) });
      expect(counts.weight, 'the weight is split').toBe(7);
      expect(counts.weightGrad, 'its gradient comes back in the same row chunks').toBe(7);
      if (c.n === 64) expect(counts.hidden, 'the hidden states are split').toBeGreaterThan(1);
      const whole = await run('webgpu', p, fusedLoss({ chunkSize: c.chunkSize }));
      const unfused = await run('webgpu', p, unfusedLoss('mean'));
      expectResultsClose(split, whole, F32_TOL, 'split vs unsplit fused');
      expectResultsClose(split, unfused, F32_TOL, 'split fused vs unsplit unfused');
      expectResultsClose(split, ref, F32_TOL, 'split fused vs float64');
    });
  }

  it('a frozen split head (LoRA) forms dHidden only and leaves no gradient on the weight', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const p = problem(13, 24, 250, 950, [2], false);
    const ref = reference(p, 'mean');
    const gpu = T.getBackend('webgpu');
    gpu.setMaxBindingBytes(BINDING);
    try {
      const before = liveCounts('webgpu');
      const h = tensor(p.hidden.data, p.hidden.shape, { backend: 'webgpu', requiresGrad: true });
      const w = tensor(p.weight.data, p.weight.shape, { backend: 'webgpu' });
      const l = tensor(p.labels.data, p.labels.shape, { backend: 'webgpu', dtype: 'i32' });
      expect(bindings(w)).toBe(7);
      const loss = T.linearCrossEntropy(h, w, l, { chunkSize: 9 });
      loss.backward();
      expect(w.grad).toBeNull();
      expectClose(Float64Array.from(await loss.data()), ref.loss, { ...F32_TOL, label: 'loss' });
      expectClose(Float64Array.from(await h.grad!.data()), ref.hidden, { ...F32_TOL, label: 'dHidden' });
      for (const t of [h.grad!, h, w, l, loss]) t.dispose();
      expect(liveCounts('webgpu')).toEqual(before);
    } finally {
      gpu.setMaxBindingBytes(null);
    }
  });

  it('a label outside [0, V) over a split weight throws IndexError at the readback and leaks nothing', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const p = problem(5, 24, 250, 960, [], false);
    p.labels.data[2] = 250;
    const gpu = T.getBackend('webgpu');
    gpu.setMaxBindingBytes(BINDING);
    try {
      const before = liveCounts('webgpu');
      const [h, w] = [p.hidden, p.weight].map((x) => tensor(x.data, x.shape, { backend: 'webgpu' }));
      const l = tensor(p.labels.data, [5], { backend: 'webgpu', dtype: 'i32' });
      const loss = T.linearCrossEntropy(h, w, l, { chunkSize: 48 });
      await expect(loss.item()).rejects.toThrow(IndexError);
      for (const t of [h, w, l, loss]) t.dispose();
      expect(liveCounts('webgpu')).toEqual(before);
    } finally {
      gpu.setMaxBindingBytes(null);
    }
  });

  it('f16 over a split weight equals the unsplit f16 step', async () => {
    if (!backendsUnderTest().includes('webgpu') || !T.getBackend('webgpu').capabilities.f16) return;
    // Multiples of 4 keep f16 matmuls on the aligned tile; chunks of 12 rows straddle the 40-row weight chunks.
    const p = problem(12, 24, 250, 970, [4], true);
    let counts = { weight: 0, weightGrad: 0, hidden: 0 };
    const split = await run('webgpu', p, fusedLoss({ chunkSize: 12 }), 'f16', { maxBindingBytes: BINDING, split: (k) => (counts = k) });
    expect([counts.weight, counts.weightGrad]).toEqual([7, 7]);
    const whole = await run('webgpu', p, fusedLoss({ chunkSize: 12 }), 'f16');
    // The same chunks of the same f16 logits in the same order: only the copies differ.
    expectResultsClose(split, whole, { rtol: 0, atol: 0 }, 'f16 split vs unsplit fused');
    expectResultsClose(split, reference(p, 'mean'), { rtol: 3e-2, atol: 2e-3 }, 'f16 split fused vs float64');
  }, 300_000);
});

describe('the vocabulary chunk size', () => {
  const MiB = 2 ** 20;
  it('bounds the logits and the copied weight rows to 16 MiB each, and a requested size to one binding', () => {
    // Qwen2.5-0.5B, 256 tokens, f16, 128 MiB bindings: 16 MiB / (896 x 2 bytes) = 9362 weight rows, down to a multiple of 4
    // (the logits alone would allow 16 MiB / (256 x 2) = 32768 rows, a 56 MiB copy of weight rows).
    expect(vocabChunkRows(256, 151936, 896, 2, 128 * MiB)).toBe(9360);
    // 1024 tokens of f32 against a narrow head: the logits bound it, 16 MiB / 4096 bytes.
    expect(vocabChunkRows(1024, 32000, 16, 4, 128 * MiB)).toBe(4096);
    // A binding below the budget bounds both: 4096 / (24 x 4) = 42 rows -> 40.
    expect(vocabChunkRows(13, 250, 24, 4, 4096)).toBe(40);
    // Requested sizes are kept, clamped to V and to what one binding holds (4096 / (9 x 4) = 113, 4096 / (24 x 4) = 42).
    expect(vocabChunkRows(9, 250, 24, 4, 128 * MiB, 48)).toBe(48);
    expect(vocabChunkRows(9, 30, 24, 4, 128 * MiB, 48)).toBe(30);
    expect(vocabChunkRows(9, 250, 24, 4, 4096, 48)).toBe(42);
  });
});

describe('the mean over counted rows', () => {
  // Counted by hand: the per-row op, Sum of the losses, NotEqual (BinaryScalar), Cast,
  // Sum of the count, max(count, 1) (BinaryScalar: no Fill), Div.
  it('costs crossEntropy 7 dispatches on webgpu, with no Fill for the zero-count guard', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const x = uniform([6, 11], 800, -3, 3);
    const logits = tensor(x.data, x.shape, { backend: 'webgpu' });
    const labels = tensor(Int32Array.from([1, -100, 4, 10, 0, 2]), [6], { backend: 'webgpu', dtype: 'i32' });
    const p = await T.profile(() => T.crossEntropy(logits, labels));
    const byOp = Object.fromEntries(Object.entries(p.ops).filter(([, o]) => o.dispatches > 0).map(([name, o]) => [name, o.dispatches]));
    expect(byOp).toEqual({ CrossEntropy: 1, Sum: 2, BinaryScalar: 2, Cast: 1, Div: 1 });
    expect(p.dispatches).toBe(7);
    // The value still is the mean over the 5 counted rows (float64 from the definition).
    let expected = 0;
    for (const [r, label] of [1, -100, 4, 10, 0, 2].entries()) {
      if (label === -100) continue;
      const row = Array.from(x.data.subarray(r * 11, r * 11 + 11));
      const m = Math.max(...row);
      expected += (m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) - row[label]) / 5;
    }
    expectClose([await p.result.item()], [expected], { rtol: 1e-6, label: 'mean loss' });
    for (const t of [logits, labels, p.result]) t.dispose();
  });
});
