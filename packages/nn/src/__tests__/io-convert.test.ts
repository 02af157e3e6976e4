import { tensor } from '@webpeft/tensor';
import { backendsUnderTest, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSafetensors, rawFromArray, rawToTensor, tensorToRaw } from '../io/index.js';
import fixture from './fixtures/io/safetensors.json' with { type: 'json' };
import { fromBase64 } from './io-helpers.js';

beforeAll(async () => {
  await initBackends();
});

const parsed = parseSafetensors(fromBase64(fixture.base64), 'fixture.safetensors');
const EXPECTED_DTYPE: Record<string, string> = { F32: 'f32', F16: 'f32', BF16: 'f32', F64: 'f32', I32: 'i32', I64: 'i32', I16: 'i32', I8: 'i32', U8: 'i32', BOOL: 'bool' };

describe('rawToTensor', () => {
  it('decodes every dtype of the torch-written file to the values torch reports', async () => {
    for (const backend of backendsUnderTest()) {
      for (const [name, want] of Object.entries(fixture.tensors)) {
        const t = rawToTensor(parsed.tensors.get(name)!, { backend, key: name });
        expect(t.dtype, `${backend} ${name}`).toBe(EXPECTED_DTYPE[want.dtype]);
        expect([...t.shape], name).toEqual(want.shape);
        const values = want.dtype === 'F64' ? want.values.map(Math.fround) : want.values;
        expect(await t.toArray(), `${backend} ${name}`).toEqual(values);
        t.dispose();
      }
    }
  });

  it('keeps F64 as f64 on cpu when asked', async () => {
    const t = rawToTensor(parsed.tensors.get('model.f64')!, { backend: 'cpu', keepF64: true });
    expect(t.dtype).toBe('f64');
    expect(await t.toArray()).toEqual(fixture.tensors['model.f64'].values);
    t.dispose();
  });

  it('reads misaligned data (views into a file at odd offsets)', async () => {
    const bytes = new Uint8Array(13);
    bytes.set(new Uint8Array(new Float32Array([1.25, -3]).buffer), 1);
    const t = rawToTensor({ dtype: 'F32', shape: [2], data: bytes.subarray(1, 9) }, { backend: 'cpu' });
    expect(await t.toArray()).toEqual([1.25, -3]);
    t.dispose();
  });

  it('I64 values outside i32 name the key and the value', () => {
    const data = new Uint8Array(new BigInt64Array([5n, 2n ** 31n]).buffer);
    expect(() => rawToTensor({ dtype: 'I64', shape: [2], data }, { backend: 'cpu', key: 'position_ids' })).toThrow(
      /rawToTensor 'position_ids': I64 element 1 = 2147483648 does not fit in i32/,
    );
    const neg = new Uint8Array(new BigInt64Array([-(2n ** 31n) - 1n]).buffer);
    expect(() => rawToTensor({ dtype: 'I64', shape: [1], data: neg }, { backend: 'cpu', key: 'k' })).toThrow(/-2147483649/);
  });

  it('rejects data of the wrong length', () => {
    expect(() => rawToTensor({ dtype: 'F16', shape: [3], data: new Uint8Array(4) }, { key: 'w' })).toThrow(/'w': 4 bytes but F16 \[3\] needs 6/);
  });
});

describe('tensorToRaw / rawFromArray', () => {
  it('rounds f32 to F16 and BF16 exactly as torch does', () => {
    for (const name of ['model.f16', 'model.bf16'] as const) {
      const ref = parsed.tensors.get(name)!;
      const raw = rawFromArray(Float32Array.from(fixture.sources[name]), ref.shape, ref.dtype);
      expect([...raw.data], name).toEqual([...ref.data]);
    }
  });

  it('round-trips each tensor dtype through its default file dtype', async () => {
    for (const backend of backendsUnderTest()) {
      const cases = [
        tensor(new Float32Array([0.1, -2, 3.5e10, 1e-30]), [2, 2], { backend }),
        tensor(new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0]), [3], { backend }),
        tensor(new Uint32Array([0, 2 ** 32 - 1, 77]), [3], { backend, dtype: 'u32' }),
        tensor(new Uint32Array([1, 0, 1]), [3], { backend, dtype: 'bool' }),
      ];
      for (const t of cases) {
        const raw = await tensorToRaw(t);
        expect(raw.dtype).toBe({ f32: 'F32', i32: 'I32', u32: 'U32', bool: 'BOOL' }[t.dtype as 'f32']);
        const back = rawToTensor(raw, { backend });
        expect(await back.toArray(), `${backend} ${t.dtype}`).toEqual(await t.toArray());
        t.dispose();
        back.dispose();
      }
    }
  });

  it('converts on the way out and range-checks integer targets', async () => {
    const t = tensor(new Int32Array([1, -2, 300]), [3], { backend: 'cpu' });
    expect([...(await tensorToRaw(t, 'I64')).data.subarray(8, 16)]).toEqual([254, 255, 255, 255, 255, 255, 255, 255]);
    await expect(tensorToRaw(t, 'U8')).rejects.toThrow(/element 1 = -2 is not representable as U8/);
    t.dispose();
    expect(() => rawFromArray(new Float32Array([0.5]), [1], 'I32')).toThrow(/0\.5 is not representable as I32/);
    expect(() => rawFromArray(new Float32Array(3), [2, 2])).toThrow(/3 values do not fill shape \[2, 2\]/);
    expect(rawFromArray(new Uint8Array([1, 2]), [2]).dtype).toBe('U8');
  });
});
