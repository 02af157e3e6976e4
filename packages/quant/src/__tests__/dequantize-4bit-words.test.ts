/**
 * The word-at-a-time 4-bit dequantize on webgpu (`Dequantize4bit`, and the transient
 * weight of `Linear4bit` above the memory-bound kernel's row limit, plain and double
 * quantized) against references computed on the host: `code[q] * absmax` in float32 from
 * random packed bytes, and the cpu backend's `Linear4bit`. Odd n (a partial last word),
 * n a multiple of 8 (the vec4 stores) and a blocksize that is not a multiple of 8 (the
 * raw op takes any; a word then straddles blocks).
 */
import { tensor } from '@webpeft/tensor';
import { runOp } from '@webpeft/tensor/kernel';
import { backendsUnderTest, expectClose, initBackends, randomArray, randomInts, takeData } from '@webpeft/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Linear4bitAttrs, codeTensor, quantize4bit, registerLinear4bitOps, weightInputs } from '../index.js';
import { dequantize4bitRaw } from '../blockwise.js';
import { setLinear4bitGemvMaxRows } from '../ops/linear-4bit-gemv.js';
import { uploadCodeTables } from './code-cache.js';
import { DEQUANTIZE_WORD_CASES } from './four-bit-fixtures.js';

beforeAll(async () => {
  await uploadCodeTables(await initBackends());
  registerLinear4bitOps();
});
afterAll(() => setLinear4bitGemvMaxRows(null));

const onWebGpu = () => backendsUnderTest().includes('webgpu');

describe('Dequantize4bit on webgpu: one invocation per packed word', () => {
  let seed = 4100;
  for (const c of DEQUANTIZE_WORD_CASES) {
    it(`${c.name} n ${c.n}, blocksize ${c.blocksize}: bit-equal to code[q] * absmax in float32`, async () => {
      if (!onWebGpu()) return;
      const words = Math.ceil(c.n / 8);
      // Random bytes in every word, also the nibbles past n (the kernel must ignore them).
      const packedWords = Uint32Array.from(randomInts(words, 2 ** 31, seed++), (v, i) => (v * 2 + (i & 1)) >>> 0);
      const nb = Math.ceil(c.n / c.blocksize);
      const absmax = Float32Array.from(randomArray(nb, seed++, 0.05, 3));
      const packed = tensor(packedWords, [words], { backend: 'webgpu', dtype: 'u32' });
      const am = tensor(absmax, [nb], { backend: 'webgpu' });
      const got = (await takeData(dequantize4bitRaw(packed, am, codeTensor(c.table, 'webgpu').tensor, c.blocksize, c.n))) as Float32Array;
      const bytes = new Uint8Array(packedWords.buffer);
      const ref = new Float32Array(c.n).map((_, i) => Math.fround(c.table[i & 1 ? bytes[i >> 1] & 15 : bytes[i >> 1] >> 4] * absmax[Math.floor(i / c.blocksize)]));
      expect(Array.from(got)).toEqual(Array.from(ref));
      packed.dispose();
      am.dispose();
    });
  }
});

describe('Linear4bit above the memory-bound row limit (transient dequantize + matmul): webgpu vs cpu', () => {
  const cases = [
    { out: 37, inF: 77, rows: 9, blocksize: 64, nested: true, quantType: 'nf4' as const, bias: true },
    { out: 37, inF: 77, rows: 5, blocksize: 32, nested: false, quantType: 'fp4' as const, bias: false },
    { out: 24, inF: 136, rows: 3, blocksize: 128, nested: true, quantType: 'fp4' as const, bias: false },
    { out: 40, inF: 64, rows: 17, blocksize: 64, nested: false, quantType: 'nf4' as const, bias: true },
  ];
  let seed = 4200;
  for (const c of cases) {
    const name = `W [${c.out}, ${c.inF}], ${c.rows} rows, bs ${c.blocksize}, ${c.quantType}${c.nested ? ' nested' : ''}${c.bias ? ' + bias' : ''}`;
    it(name, async () => {
      if (!onWebGpu()) return;
      // Every row count takes the dequantize path here.
      setLinear4bitGemvMaxRows(0);
      const data = {
        w: randomArray(c.out * c.inF, seed++, -1, 1),
        x: randomArray(c.rows * c.inF, seed++, -2, 2),
        dy: randomArray(c.rows * c.out, seed++, -1, 1),
        b: randomArray(c.out, seed++, -0.5, 0.5),
      };
      const run = async (backend: 'cpu' | 'webgpu') => {
        const w = tensor(data.w, [c.out, c.inF], { backend });
        const { packed, state } = await quantize4bit(w, { blocksize: c.blocksize, doubleQuant: c.nested, quantType: c.quantType });
        const weight = weightInputs({ packed, quantState: state });
        const attrs: Linear4bitAttrs = { inFeatures: c.inF, outFeatures: c.out, blocksize: c.blocksize, nested: c.nested, nestedBlocksize: state.nested?.blocksize ?? 0 };
        const x = tensor(data.x, [c.rows, c.inF], { backend });
        const dy = tensor(data.dy, [c.rows, c.out], { backend });
        const bias = c.bias ? tensor(data.b, [c.out], { backend }) : null;
        const y = bias ? runOp('Linear4bit', [x, ...weight, bias], { ...attrs, bias: true }) : runOp('Linear4bit', [x, ...weight], attrs);
        const dx = runOp('Linear4bitGradInput', [dy, ...weight], attrs);
        const res = { y: (await takeData(y)) as Float32Array, dx: (await takeData(dx)) as Float32Array };
        for (const t of [w, packed, x, dy, ...(bias ? [bias] : [])]) t.dispose();
        state.dispose();
        return res;
      };
      const cpu = await run('cpu');
      const gpu = await run('webgpu');
      expectClose(gpu.y, cpu.y, { rtol: 1e-4, atol: 1e-5, label: `${name} forward` });
      expectClose(gpu.dx, cpu.dx, { rtol: 1e-4, atol: 1e-5, label: `${name} input gradient` });
    });
  }
});
