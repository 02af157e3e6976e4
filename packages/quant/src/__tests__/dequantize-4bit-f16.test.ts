/**
 * The 4-bit dequantize straight to f16 (f16 compute's weight): on webgpu every value is
 * the f32 decode `code[q] * absmax` rounded once to nearest even, bit for bit what the
 * cpu reference's `f32ToF16Bits` gives, for the `Dequantize4bit` op (plain absmax: odd n,
 * n a multiple of 8, blocksizes 64, 32 and ones that are not multiples of 8; absmax
 * picked so that values fall on f16 rounding ties, around the subnormal range and past
 * f16's largest value) and inside `Linear4bit` (double-quantized absmax, x = identity so
 * the output is the weight itself). Then the f16 layer's forward and input gradient are
 * one dequantize and one matmul each: no `Cast`, and no f32 weight in the peak.
 */
import { type Tensor, f32ToF16Bits, getBackend, memory, profile, resetPeakMemory, tensor } from '@webpeft/tensor';
import { runOp } from '@webpeft/tensor/kernel';
import { backendsUnderTest, initBackends, randomArray, randomInts } from '@webpeft/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NF4_CODE, codeTensor, registerLinear4bitOps, setLinear4bitMatmulKernel } from '../index.js';
import { dequantize4bitRaw } from '../blockwise.js';
import { uploadCodeTables } from './code-cache.js';
import { DEQUANTIZE_WORD_CASES, nestedNf4Layer } from './four-bit-fixtures.js';

let f16 = false;
beforeAll(async () => {
  await uploadCodeTables(await initBackends());
  registerLinear4bitOps();
  // An adapter without shader-f16 has no f16 path to compare (the tensor suite checks its refusal).
  f16 = backendsUnderTest().includes('webgpu') && getBackend('webgpu').capabilities.f16;
  // f16 inputs take the matmul-bound kernel at any row count: the transient one here.
  setLinear4bitMatmulKernel('dequantize');
});
afterAll(() => setLinear4bitMatmulKernel('auto'));

/**
 * Absmax values whose products with the codes +-1 (NF4 and FP4 both have them) are f16
 * edge cases: ties (1 + 2^-11 rounds to 1, 1 + 3 * 2^-11 up), subnormal ties (2^-25 to 0,
 * 3 * 2^-25 to 2^-23), the subnormal/normal border (2^-14 - 2^-25 rounds up to 2^-14),
 * the top (65519 to 65504, 65520 to infinity) and an f32 subnormal (to a signed zero).
 */
const EDGES = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, 2 ** -14 - 2 ** -25, 2 ** -14 + 2 ** -25, 65519, 65520, 7e4, 1e-40, 0.1];

describe('Dequantize4bit to f16 on webgpu: the f32 decode rounded once to nearest even', () => {
  let seed = 7100;
  for (const c of DEQUANTIZE_WORD_CASES) {
    it(`${c.name} n ${c.n}, blocksize ${c.blocksize}: bit-equal to f32ToF16Bits(code[q] * absmax)`, async () => {
      if (!f16) return;
      const words = Math.ceil(c.n / 8);
      const packedWords = Uint32Array.from(randomInts(words, 2 ** 31, seed++), (v, i) => (v * 2 + (i & 1)) >>> 0);
      const bytes = new Uint8Array(packedWords.buffer);
      const nb = Math.ceil(c.n / c.blocksize);
      // Blocks cycle through the edge values, random magnitudes in the f16 subnormal range and ordinary ones.
      const tiny = randomArray(nb, seed++, 1e-6, 6e-5);
      const plain = randomArray(nb, seed++, 0.05, 3);
      const absmax = Float32Array.from({ length: nb }, (_, b) => (b % 3 === 0 ? EDGES[(b / 3) % EDGES.length] : b % 3 === 1 ? tiny[b] : plain[b]));
      // Each block's first two elements decode to +absmax and -absmax (codes 1 and -1).
      const plus = c.table.indexOf(1);
      const minus = c.table.indexOf(-1);
      for (let b = 0; b < nb; b++) {
        for (const [j, q] of [
          [0, plus],
          [1, minus],
        ]) {
          const e = b * c.blocksize + j;
          if (e >= c.n) continue;
          bytes[e >> 1] = e & 1 ? (bytes[e >> 1] & 0xf0) | q : (bytes[e >> 1] & 0x0f) | (q << 4);
        }
      }
      const packed = tensor(packedWords, [words], { backend: 'webgpu', dtype: 'u32' });
      const am = tensor(absmax, [nb], { backend: 'webgpu' });
      const out = dequantize4bitRaw(packed, am, codeTensor(c.table, 'webgpu').tensor, c.blocksize, c.n, 'f16');
      expect(out.dtype).toBe('f16');
      const got = (await out.data()) as Uint16Array;
      const ref = Array.from({ length: c.n }, (_, i) =>
        f32ToF16Bits(Math.fround(c.table[i & 1 ? bytes[i >> 1] & 15 : bytes[i >> 1] >> 4] * absmax[Math.floor(i / c.blocksize)])),
      );
      expect(Array.from(got)).toEqual(ref);
      for (const t of [packed, am, out]) t.dispose();
    });
  }

  it('the cpu kernel gives the same f16 bits (the reference for f16 compute)', async () => {
    const packed = tensor(
      Uint32Array.from(randomInts(3, 2 ** 31, 7190), (v) => v * 2),
      [3],
      { backend: 'cpu', dtype: 'u32' },
    );
    const am = tensor(Float32Array.from([1 + 2 ** -11, 3 * 2 ** -25, 65520]), [3], { backend: 'cpu' });
    const out = dequantize4bitRaw(packed, am, codeTensor(NF4_CODE, 'cpu').tensor, 8, 21, 'f16');
    const bytes = new Uint8Array(((await packed.data()) as Uint32Array).buffer);
    const want = Array.from({ length: 21 }, (_, i) =>
      f32ToF16Bits(Math.fround(NF4_CODE[i & 1 ? bytes[i >> 1] & 15 : bytes[i >> 1] >> 4] * [1 + 2 ** -11, 3 * 2 ** -25, 65520][i >> 3])),
    );
    expect(Array.from((await out.data()) as Uint16Array)).toEqual(want);
    for (const t of [packed, am, out]) t.dispose();
  });

  it('rejects a dtype other than f32 and f16', () => {
    const packed = tensor(new Uint32Array(1), [1], { backend: 'cpu', dtype: 'u32' });
    const am = tensor([1], [1], { backend: 'cpu' });
    expect(() => dequantize4bitRaw(packed, am, codeTensor(NF4_CODE, 'cpu').tensor, 8, 8, 'i32' as never)).toThrow(
      /dequantize4bit: dtype must be 'f32' or 'f16', got i32/,
    );
    for (const t of [packed, am]) t.dispose();
  });
});

describe('Linear4bit with f16 compute: the weight dequantized straight to f16', () => {
  // n = 23 * 45 is odd (the partial last word), 24 * 64 a multiple of 8 (the vec4 stores).
  for (const [out, inF] of [
    [23, 45],
    [24, 64],
  ]) {
    it(`W [${out}, ${inF}] nested NF4, x = identity: the output is f32ToF16Bits of the cpu decode`, async () => {
      if (!f16) return;
      const l = await nestedNf4Layer(out, inF, 7200 + out);
      const eye = new Float32Array(inF * inF);
      for (let i = 0; i < inF; i++) eye[i * inF + i] = 1;
      const x = tensor(eye, [inF, inF], { backend: 'webgpu', dtype: 'f16' });
      const y = runOp('Linear4bit', [x, ...l.weight], l.attrs);
      const got = (await y.data()) as Uint16Array;
      const want = new Array<number>(inF * out);
      for (let r = 0; r < inF; r++) for (let c = 0; c < out; c++) want[r * out + c] = f32ToF16Bits(l.ref[c * inF + r]);
      expect(Array.from(got)).toEqual(want);
      for (const t of [l.packed, x, y]) t.dispose();
      l.state.dispose();
    });
  }

  it('forward and input gradient: one dequantize and one matmul each, no Cast, no f32 weight in the peak', async () => {
    if (!f16) return;
    const [out, inF, rows] = [32, 64, 20];
    const l = await nestedNf4Layer(out, inF, 7300);
    const x = tensor(randomArray(rows * inF, 7301, -2, 2), [rows, inF], { backend: 'webgpu', dtype: 'f16' });
    const dy = tensor(randomArray(rows * out, 7302, -1, 1), [rows, out], { backend: 'webgpu', dtype: 'f16' });
    const before = memory('webgpu').liveBytes;
    resetPeakMemory('webgpu');
    const p = await profile(async () => {
      const y = runOp('Linear4bit', [x, ...l.weight], l.attrs);
      const dx = runOp('Linear4bitGradInput', [dy, ...l.weight], l.attrs);
      await Promise.all([y.data(), dx.data()]);
      return [y, dx] as Tensor[];
    });
    const peak = memory('webgpu').peakBytes - before;
    expect(p.ops.Cast?.dispatches ?? 0).toBe(0);
    expect(p.dispatches).toBe(4);
    // y and dx (f16) and one f16 weight at a time; the f32 weight alone would be out * in * 4 bytes more.
    expect(peak).toBeLessThanOrEqual((rows * out + rows * inF + out * inF) * 2);
    for (const t of [...p.result, l.packed, x, dy]) t.dispose();
    l.state.dispose();
  });
});
