import * as T from '@webpeft/tensor';
import { backendsUnderTest, expectClose, gradcheck, initBackends, randomArray, takeData } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  FP4_CODE,
  NF4_CODE,
  QuantState,
  createDynamicMap,
  dequantize4bit,
  dequantizeBlockwise,
  linear4bit,
  pythonFloatRepr,
  quantize4bit,
  quantize4bitRaw,
  quantizeBlockwise,
  codeTensor,
  tensorBytes,
} from '../index.js';
import { uploadCodeTables } from './code-cache.js';
import fx from './fixtures/quant-codecs.json' with { type: 'json' };

beforeAll(async () => {
  await uploadCodeTables(await initBackends());
});

function f32(b64: string): Float32Array {
  const bin = atob(b64);
  const u8 = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
  return new Float32Array(u8.buffer);
}
const hex = (u8: Uint8Array) => Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join('');
const fromHex = (h: string) => new Uint8Array(h.match(/../g)!.map((p) => parseInt(p, 16)));
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe('code tables', () => {
  it('NF4 and FP4 tables match REFERENCE.md', () => {
    expect(NF4_CODE[1]).toBe(Math.fround(-0.6961928009986877));
    expect(NF4_CODE[7]).toBe(0);
    expect(NF4_CODE[15]).toBe(1);
    expect(Array.from(FP4_CODE)).toEqual([0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3].map((v) => Math.fround(v / 12)));
  });
  it('dynamic maps: 256 sorted, signed has 0 at 127, max 1, min -0.99296875; equal to the reference bits', () => {
    const s = createDynamicMap();
    const u = createDynamicMap(false);
    for (const m of [s, u]) {
      expect(m.length).toBe(256);
      for (let i = 1; i < 256; i++) expect(m[i]).toBeGreaterThanOrEqual(m[i - 1]);
      expect(m[255]).toBe(1);
    }
    expect(s[127]).toBe(0);
    expect(s[0]).toBe(Math.fround(-0.99296875));
    expect(u[0]).toBe(0);
    expect(bits(s)).toEqual(bits(f32(fx.dynamicSigned)));
    expect(bits(u)).toEqual(bits(f32(fx.dynamicUnsigned)));
  });
});

describe('4-bit blockwise codec, bit-exact with the reference', () => {
  for (const c of fx.fourBit) {
    it(`${c.name}`, async () => {
      const x = f32(c.x);
      const table = c.quantType === 'nf4' ? NF4_CODE : FP4_CODE;
      for (const backend of backendsUnderTest()) {
        const xt = T.tensor(x, [x.length], { backend });
        const { packed, absmax } = await quantize4bitRaw(xt, c.quantType as 'nf4' | 'fp4', c.blocksize);
        expect(hex(await tensorBytes(packed, Math.ceil(c.n / 2))), `${backend} bytes`).toBe(c.packedHex);
        const am = (await absmax.data()) as Float32Array;
        expect(bits(am), `${backend} absmax`).toEqual(bits(f32(c.absmax)));
        const code = codeTensor(table, backend).tensor;
        const { dequantize4bitRaw } = await import('../blockwise.js');
        const deq = dequantize4bitRaw(packed, absmax, code, c.blocksize, c.n);
        const got = (await deq.data()) as Float32Array;
        // Expected: table[q] * absmax in float32, from the reference bytes and REFERENCE.md's table.
        const bytes = fromHex(c.packedHex);
        const ref = new Float32Array(c.n).map((_, i) => table[i & 1 ? bytes[i >> 1] & 15 : bytes[i >> 1] >> 4] * am[Math.floor(i / c.blocksize)]);
        expect(bits(got), `${backend} dequant`).toEqual(bits(ref));
        expect(ref.reduce((a, b) => a + b, 0)).toBeCloseTo(c.dequantSum, 4);
        for (const t of [xt, packed, absmax, deq]) t.dispose();
      }
    });
  }

  it('refuses NaN naming the tensor and block', async () => {
    for (const backend of backendsUnderTest()) {
      const x = randomArray(200, 3);
      x[130] = NaN;
      const xt = T.tensor(x, [200], { backend });
      await expect(quantize4bitRaw(xt, 'nf4', 64, 'layer.q_proj.weight')).rejects.toThrow(/layer\.q_proj\.weight.*block 2/);
      xt.dispose();
    }
  });
});

describe('8-bit blockwise codec', () => {
  for (const c of fx.blockwise8bit) {
    it(`${c.signed ? 'signed' : 'unsigned'} dynamic map`, async () => {
      const x = f32(c.x);
      const map = createDynamicMap(c.signed);
      for (const backend of backendsUnderTest()) {
        const xt = T.tensor(x, [x.length], { backend });
        const q = await quantizeBlockwise(xt, { signed: c.signed, blocksize: c.blocksize });
        expect(hex(await tensorBytes(q.codes, c.n)), backend).toBe(c.codeHex);
        expect(bits((await q.absmax.data()) as Float32Array)).toEqual(bits(f32(c.absmax)));
        const code = codeTensor(map, backend).tensor;
        const deq = (await takeData(dequantizeBlockwise(q.codes, q.absmax, code, c.blocksize, c.n))) as Float32Array;
        expect(deq.reduce((a, b) => a + b, 0)).toBeCloseTo(c.dequantSum, 3);
        for (const t of [xt, q.codes, q.absmax]) t.dispose();
      }
    });
  }
});

describe('double quantization and QuantState', () => {
  for (const c of fx.doubleQuant) {
    it(`${c.quantType} bs${c.blocksize} n${c.n}`, async () => {
      const x = f32(c.x);
      for (const backend of backendsUnderTest()) {
        const xt = T.tensor(x, [c.n / 4, 4], { backend });
        const { packed, state } = await quantize4bit(xt, { quantType: c.quantType as 'nf4' | 'fp4', blocksize: c.blocksize, doubleQuant: true });
        const rec = await state.toRecord(packed);
        expect(hex(rec.weight.data as Uint8Array), `${backend} weight`).toBe(c.packedHex);
        expect(rec.weight.shape).toEqual([c.n / 2, 1]);
        expect(rec['weight.absmax'].dtype).toBe('U8');
        expect(hex(rec['weight.absmax'].data as Uint8Array), `${backend} qabsmax`).toBe(c.qabsmaxHex);
        expect(bits(rec['weight.nested_absmax'].data as Float32Array)).toEqual(bits(f32(c.absmax2)));
        const restored = (await takeData(state.absmaxValues())) as Float32Array;
        expect(bits(restored), `${backend} restored absmax`).toEqual(bits(f32(c.restoredAbsmax)));
        const json = new TextDecoder().decode(rec[`weight.quant_state.bitsandbytes__${c.quantType}`].data);
        expect(json).toBe(
          `{"quant_type": "${c.quantType}", "blocksize": ${c.blocksize}, "dtype": "float32", "shape": [${c.n / 4}, 4], ` +
            `"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": ${pythonFloatRepr(c.offset)}}`,
        );
        // Round trip through the record.
        const back = QuantState.fromRecord(rec, 'weight', backend);
        const d1 = (await takeData(dequantize4bit(packed, state))) as Float32Array;
        const d2 = (await takeData(dequantize4bit(back.packed, back.state))) as Float32Array;
        expect(bits(d2)).toEqual(bits(d1));
        expect(d1.reduce((a, b) => a + b, 0)).toBeCloseTo(c.dequantSum, 3);
        state.dispose();
        back.state.dispose();
        packed.dispose();
        back.packed.dispose();
        xt.dispose();
      }
    });
  }

  it('python float repr', () => {
    expect(pythonFloatRepr(1e-5)).toBe('1e-05');
    expect(pythonFloatRepr(0.1171683743596077)).toBe('0.1171683743596077');
    expect(pythonFloatRepr(2)).toBe('2.0');
    expect(pythonFloatRepr(1.5e-7)).toBe('1.5e-07');
    expect(pythonFloatRepr(0.0001)).toBe('0.0001');
  });

  it("NF4 + double quant costs <= 4.13 bits/param in 'quant' memory", async () => {
    for (const backend of backendsUnderTest()) {
      const n = 256 * 64 * 16;
      const x = T.tensor(randomArray(n, 5, -1, 1), [256, 1024], { backend });
      codeTensor(NF4_CODE, backend);
      codeTensor(createDynamicMap(), backend);
      const before = T.memory(backend).bytesByTag.quant;
      const { packed, state } = await quantize4bit(x, { doubleQuant: true });
      const bytes = T.memory(backend).bytesByTag.quant - before;
      expect((bytes * 8) / n).toBeLessThanOrEqual(4.13);
      state.dispose();
      packed.dispose();
      x.dispose();
    }
  });
});

describe('linear4bit fused dequant-matmul', () => {
  it('forward and input gradient match a dequantized float64 reference on every backend', async () => {
    const [out, inF] = [24, 40];
    for (const nested of [false, true]) {
      for (const backend of backendsUnderTest()) {
        const w = T.tensor(randomArray(out * inF, 11, -0.5, 0.5), [out, inF], { backend });
        const { packed, state } = await quantize4bit(w, { blocksize: 32, doubleQuant: nested });
        const W = (await takeData(dequantize4bit(packed, state))) as Float32Array;
        const xd = randomArray(3 * 2 * inF, 12);
        const x = T.tensor(xd, [3, 2, inF], { backend, requiresGrad: true });
        const bias = T.tensor(randomArray(out, 13), [out], { backend, requiresGrad: true });
        const y = linear4bit(x, { packed, quantState: state }, bias);
        expect(y.shape).toEqual([3, 2, out]);
        const yRef = new Float64Array(6 * out);
        for (let r = 0; r < 6; r++) for (let o = 0; o < out; o++) {
          let s = 0;
          for (let p = 0; p < inF; p++) s += xd[r * inF + p] * W[o * inF + p];
          yRef[r * out + o] = s + ((await bias.data()) as Float32Array)[o];
        }
        expectClose(await y.data(), yRef, { rtol: 1e-4, atol: 1e-5, label: `${backend} y nested=${nested}` });
        const dyd = randomArray(6 * out, 14);
        const dy = T.tensor(dyd, [3, 2, out], { backend });
        y.backward(dy);
        const dxRef = new Float64Array(6 * inF);
        for (let r = 0; r < 6; r++) for (let p = 0; p < inF; p++) {
          let s = 0;
          for (let o = 0; o < out; o++) s += dyd[r * out + o] * W[o * inF + p];
          dxRef[r * inF + p] = s;
        }
        expectClose(await x.grad!.data(), dxRef, { rtol: 1e-4, atol: 1e-5, label: `${backend} dx nested=${nested}` });
        expect(bias.grad).not.toBeNull();
        for (const t of [w, packed, x, bias, y, dy]) t.dispose();
        state.dispose();
      }
    }
  });

  it('gradcheck in float64 on cpu', async () => {
    const w = T.tensor(randomArray(6 * 8, 21), [6, 8], { backend: 'cpu' });
    const { packed, state } = await quantize4bit(w, { blocksize: 32, quantType: 'fp4' });
    await gradcheck((x, b) => linear4bit(x, { packed, quantState: state }, b), [
      { data: randomArray(2 * 8, 22, -1, 1, true) as Float64Array, shape: [2, 8] },
      { data: randomArray(6, 23, -1, 1, true) as Float64Array, shape: [6] },
    ]);
    for (const t of [w, packed]) t.dispose();
    state.dispose();
  });
});
