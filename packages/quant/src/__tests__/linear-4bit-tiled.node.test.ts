/**
 * The tile-by-tile 4-bit matmul (`linear-4bit-tiled.ts`, `setLinear4bitMatmulKernel('tiled')`)
 * on webgpu against a float64 dequantize-then-matmul reference written here (the weight
 * decoded by the cpu backend's `dequantize4bit`, f16 compute rounding it to f16 as the
 * transient path's f16 dequantize does) and against the transient path itself: forward with
 * and without bias, the input gradient through backward and as `Linear4bitGradInput`,
 * f32 and f16, plain and double-quantized absmax, NF4 and FP4, aligned shapes and odd
 * ones (k, n not multiples of the tile, rows not a multiple of 4). Then the memory
 * case: a forward of 128 rows peaks below the transient weight's bytes.
 * Node only: SwiftShader keeps the transient path (its shader compiler is slow on these shaders).
 */
import { type Tensor, f16BitsToF32, f32ToF16Bits, memory, resetPeakMemory, tensor } from '@webpeft/tensor';
import { runOp } from '@webpeft/tensor/kernel';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Linear4bitAttrs, type QuantType, dequantize4bit, quantize4bit, registerLinear4bitOps, setLinear4bitMatmulKernel, weightInputs } from '../index.js';
import { setLinear4bitGemvMaxRows } from '../ops/linear-4bit-gemv.js';
import { uploadCodeTables } from './code-cache.js';
import { type Linear4bitCase, nestedNf4Layer } from './four-bit-fixtures.js';

let gpu = false;
beforeAll(async () => {
  await uploadCodeTables(await initBackends());
  registerLinear4bitOps();
  gpu = backendsUnderTest().includes('webgpu');
  // Every row count takes the matmul-bound kernel here (small shapes, fast tests).
  setLinear4bitGemvMaxRows(0);
});
afterAll(() => {
  setLinear4bitGemvMaxRows(null);
  setLinear4bitMatmulKernel('auto');
});


let seed = 4100;

const f16Round = (v: number) => f16BitsToF32(f32ToF16Bits(v));

/** Values of a tensor as f32 (f16 widened). */
async function values(t: Tensor): Promise<Float32Array> {
  const d = await t.data();
  return t.dtype === 'f16' ? Float32Array.from(d as Uint16Array, f16BitsToF32) : Float32Array.from(d as Float32Array);
}

/** float64 `a [r, k] @ b [k, n]` (b read through `at(p, c)`), plus the bias row. */
function matmul64(a: Float32Array, r: number, k: number, n: number, at: (p: number, c: number) => number, bias: Float32Array | null): Float64Array {
  const out = new Float64Array(r * n);
  for (let i = 0; i < r; i++) {
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * at(p, c);
      out[i * n + c] = s + (bias ? bias[c] : 0);
    }
  }
  return out;
}

/** y, dx through backward and `Linear4bitGradInput` with the matmul-bound kernel `kernel`, and the float64 references. */
async function runCase(c: Linear4bitCase, kernel: 'tiled' | 'dequantize') {
  const s = seed;
  const data = {
    w: randomArray(c.out * c.inF, s, -1, 1),
    x: randomArray(c.rows * c.inF, s + 1, -2, 2),
    dy: randomArray(c.rows * c.out, s + 2, -1, 1),
    b: randomArray(c.out, s + 3, -0.5, 0.5),
  };
  setLinear4bitMatmulKernel(kernel);
  const w = tensor(data.w, [c.out, c.inF], { backend: 'webgpu' });
  const { packed, state } = await quantize4bit(w, { blocksize: c.blocksize, doubleQuant: c.nested, quantType: c.quantType });
  const weight = weightInputs({ packed, quantState: state });
  const attrs: Linear4bitAttrs = { inFeatures: c.inF, outFeatures: c.out, blocksize: c.blocksize, nested: c.nested, nestedBlocksize: state.nested?.blocksize ?? 0 };
  const x = tensor(data.x, [c.rows, c.inF], { backend: 'webgpu', dtype: c.dtype, requiresGrad: true });
  const dy = tensor(data.dy, [c.rows, c.out], { backend: 'webgpu', dtype: c.dtype });
  const bias = c.bias ? tensor(data.b, [c.out], { backend: 'webgpu', dtype: c.dtype }) : null;
  const y = bias ? runOp('Linear4bit', [x, ...weight, bias], { ...attrs, bias: true }) : runOp('Linear4bit', [x, ...weight], attrs);
  y.backward(dy);
  const dx = runOp('Linear4bitGradInput', [dy, ...weight], attrs);
  // The reference weight: the cpu backend's quantization (the same bytes) and decode (f32), rounded to f16 for f16 compute.
  const wCpu = tensor(data.w, [c.out, c.inF], { backend: 'cpu' });
  const { packed: packedCpu, state: stateCpu } = await quantize4bit(wCpu, { blocksize: c.blocksize, doubleQuant: c.nested, quantType: c.quantType });
  expect(Array.from((await packed.data()) as Uint32Array)).toEqual(Array.from((await packedCpu.data()) as Uint32Array));
  const wq = dequantize4bit(packedCpu, stateCpu);
  const wv = Float32Array.from((await wq.data()) as Float32Array, c.dtype === 'f16' ? f16Round : (v) => v);
  const xv = await values(x);
  const dyv = await values(dy);
  const bv = bias ? await values(bias) : null;
  const res = {
    y: await values(y),
    dxBackward: await values(x.grad!),
    dx: await values(dx),
    refY: matmul64(xv, c.rows, c.inF, c.out, (p, col) => wv[col * c.inF + p], bv),
    refDx: matmul64(dyv, c.rows, c.out, c.inF, (p, col) => wv[p * c.inF + col], null),
  };
  for (const t of [w, wCpu, packed, x.grad!, x, dy, y, dx, packedCpu, wq, ...(bias ? [bias] : [])]) t.dispose();
  state.dispose();
  stateCpu.dispose();
  return res;
}

/** f32: sums of k products of magnitude <= 2 against float64; f16: one rounding of the output. */
const tol = (dtype: 'f32' | 'f16') => (dtype === 'f32' ? { rtol: 1e-5, atol: 2e-5 } : { rtol: 1e-3, atol: 2e-3 });

const base = { blocksize: 64, nested: true, quantType: 'nf4' as QuantType, bias: true, dtype: 'f32' as const };
const cases: Linear4bitCase[] = [
  // Aligned (m, n, k multiples of 4): vec4 A loads, half-word weight loads; K % 8 == 4 (a row's 4-weight groups
  // alternate between the halves of a word); n = 40 overhangs an 8-column thread block.
  { ...base, out: 40, inF: 68, rows: 12 },
  // Odd everything: guarded scalar decode, rows of W straddling words and absmax blocks; FP4, plain absmax, no bias.
  { ...base, out: 21, inF: 77, rows: 5, blocksize: 32, nested: false, quantType: 'fp4', bias: false },
  { ...base, out: 40, inF: 72, rows: 12, dtype: 'f16' as const },
  { ...base, out: 19, inF: 45, rows: 7, nested: false, quantType: 'fp4', dtype: 'f16' as const },
];

describe('Linear4bit tile-by-tile kernel: webgpu vs float64 dequantize-then-matmul and vs the transient path', () => {
  for (const c of cases) {
    const name = `${c.rows} rows, W [${c.out}, ${c.inF}], bs ${c.blocksize}, ${c.quantType}${c.nested ? ' nested' : ''}${c.bias ? ' + bias' : ''}, ${c.dtype}`;
    it(name, { timeout: 300_000 }, async () => {
      if (!gpu) return;
      seed += 4;
      const tiled = await runCase(c, 'tiled');
      const t = tol(c.dtype);
      expectClose(tiled.y, tiled.refY, { ...t, label: `${name} forward` });
      expectClose(tiled.dxBackward, tiled.refDx, { ...t, label: `${name} dx through backward` });
      expectClose(tiled.dx, tiled.refDx, { ...t, label: `${name} Linear4bitGradInput` });
      // The transient path computes the same products (f32: up to summation order; f16: one output rounding apart at most);
      // on the first case of each dtype only (its pipelines cost CI compile time).
      if (c !== cases.find((o) => o.dtype === c.dtype)) return;
      const viaWeight = await runCase(c, 'dequantize');
      const same = c.dtype === 'f32' ? { rtol: 1e-6, atol: 1e-6 } : { rtol: 1e-3, atol: 1e-3 };
      expectClose(tiled.y, viaWeight.y, { ...same, label: `${name} forward vs transient` });
      expectClose(tiled.dx, viaWeight.dx, { ...same, label: `${name} dx vs transient` });
    });
  }

  // x = the identity picks single weights: y[r, c] = W[c, r] as decoded (f16: rounded to f16), with no sum to blur it.
  for (const dtype of ['f32', 'f16'] as const) {
    it(
      `${dtype}: the decoded weights are exactly the cpu decode${dtype === 'f16' ? ' rounded to f16' : ''} (x = identity, nested NF4)`,
      { timeout: 300_000 },
      async () => {
        if (!gpu) return;
        setLinear4bitMatmulKernel('tiled');
        const [out, inF] = [24, 64];
        const l = await nestedNf4Layer(out, inF, 4242);
        const eye = new Float32Array(inF * inF);
        for (let i = 0; i < inF; i++) eye[i * inF + i] = 1;
        const x = tensor(eye, [inF, inF], { backend: 'webgpu', dtype });
        const y = runOp('Linear4bit', [x, ...l.weight], l.attrs);
        const yv = await values(y);
        const want = new Float32Array(inF * out);
        for (let r = 0; r < inF; r++) for (let c = 0; c < out; c++) want[r * out + c] = dtype === 'f16' ? f16Round(l.ref[c * inF + r]) : l.ref[c * inF + r];
        expect(Array.from(yv)).toEqual(Array.from(want));
        for (const t of [l.packed, x, y]) t.dispose();
        l.state.dispose();
      },
    );
  }

  it('rejects an unknown kernel name', () => {
    expect(() => setLinear4bitMatmulKernel('fast' as never)).toThrow(/setLinear4bitMatmulKernel: kernel must be 'auto', 'tiled' or 'dequantize', got fast/);
  });

  it('a forward of 128 rows peaks below the transient weight (the output only)', { timeout: 300_000 }, async () => {
    if (!gpu) return;
    const out = 256;
    const inF = 512;
    const rows = 128;
    const w = tensor(randomArray(out * inF, 77, -1, 1), [out, inF], { backend: 'webgpu' });
    const { packed, state } = await quantize4bit(w, { blocksize: 64, doubleQuant: true, quantType: 'nf4' });
    w.dispose();
    const weight = weightInputs({ packed, quantState: state });
    const attrs: Linear4bitAttrs = { inFeatures: inF, outFeatures: out, blocksize: 64, nested: true, nestedBlocksize: state.nested!.blocksize };
    const x = tensor(randomArray(rows * inF, 78, -1, 1), [rows, inF], { backend: 'webgpu' });
    const outBytes = rows * out * 4;
    const transientBytes = out * inF * 4;
    const peakOf = async (kernel: 'tiled' | 'dequantize') => {
      setLinear4bitMatmulKernel(kernel);
      const before = memory('webgpu').liveBytes;
      resetPeakMemory('webgpu');
      const y = runOp('Linear4bit', [x, ...weight], attrs);
      await y.data();
      const peak = memory('webgpu').peakBytes - before;
      y.dispose();
      return peak;
    };
    const tiledPeak = await peakOf('tiled');
    const transientPeak = await peakOf('dequantize');
    expect(tiledPeak, `tiled peak ${tiledPeak} vs output ${outBytes}`).toBeLessThanOrEqual(outBytes);
    expect(tiledPeak).toBeLessThan(transientBytes);
    // The transient path holds the output and the dequantized weight (the check would catch a regression).
    expect(transientPeak).toBeGreaterThanOrEqual(outBytes + transientBytes);
    for (const t of [packed, x]) t.dispose();
    state.dispose();
  });
});
