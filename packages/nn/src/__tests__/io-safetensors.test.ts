import { describe, expect, it } from 'vitest';
import { type RawTensor, parseSafetensors, serializeSafetensors } from '../io/index.js';
import fixture from './fixtures/io/safetensors.json' with { type: 'json' };
import { fromBase64, handMade } from './io-helpers.js';

const fileBytes = fromBase64(fixture.base64);

/** Decodes raw little-endian bytes with DataView: independent of the code under test. */
function decode(raw: RawTensor): number[] {
  const v = new DataView(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength);
  const out: number[] = [];
  const step = { F64: 8, F32: 4, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F16: 2, BF16: 2 }[raw.dtype as 'F32'];
  for (let o = 0; o < raw.data.length; o += step) {
    switch (raw.dtype) {
      case 'F64': out.push(v.getFloat64(o, true)); break;
      case 'F32': out.push(v.getFloat32(o, true)); break;
      case 'I64': out.push(Number(v.getBigInt64(o, true))); break;
      case 'I32': out.push(v.getInt32(o, true)); break;
      case 'I16': out.push(v.getInt16(o, true)); break;
      case 'I8': out.push(v.getInt8(o)); break;
      case 'U8': case 'BOOL': out.push(v.getUint8(o)); break;
      case 'BF16': out.push(new Float32Array(new Uint32Array([v.getUint16(o, true) << 16]).buffer)[0]); break;
      default: out.push(NaN);
    }
  }
  return out;
}

describe('parseSafetensors on a file written from PyTorch tensors', () => {
  const parsed = parseSafetensors(fileBytes, 'fixture.safetensors');

  it('reads the metadata and every tensor with dtype, shape and file order', () => {
    expect(parsed.metadata).toEqual({ format: 'pt' });
    expect([...parsed.tensors.keys()].sort()).toEqual(Object.keys(fixture.tensors).sort());
    for (const [name, want] of Object.entries(fixture.tensors)) {
      const raw = parsed.tensors.get(name)!;
      expect(raw.dtype, name).toBe(want.dtype);
      expect(raw.shape, name).toEqual(want.shape);
    }
    // Map order is file (offset) order.
    expect([...parsed.tensors.keys()].slice(0, 3)).toEqual(['model.i64', 'model.f64', 'a.scalar']);
  });

  it('gives the exact values torch stored (F16 checked separately in io-convert)', () => {
    for (const [name, want] of Object.entries(fixture.tensors)) {
      if (want.dtype === 'F16') continue;
      expect(decode(parsed.tensors.get(name)!), name).toEqual(want.values);
    }
  });

  it('hand-checked bytes: header length, header start, scalar at its offset', () => {
    expect(fileBytes[0] + fileBytes[1] * 256).toBe(fixture.header.length);
    expect(String.fromCharCode(...fileBytes.subarray(8, 24))).toBe('{"__metadata__":');
    const scalar = parsed.tensors.get('a.scalar')!;
    expect(scalar.shape).toEqual([]);
    // 2.5f = 0x40200000, little-endian
    expect([...scalar.data]).toEqual([0x00, 0x00, 0x20, 0x40]);
  });
});

describe('serializeSafetensors', () => {
  it('reproduces the reference file byte for byte from its tensors (sorted by dtype then name)', () => {
    const parsed = parseSafetensors(fileBytes, 'fixture.safetensors');
    // Insert in reverse alphabetical order: the writer must sort, not keep insertion order.
    const shuffled = new Map([...parsed.tensors].sort(([a], [b]) => (a < b ? 1 : -1)));
    const out = serializeSafetensors(shuffled, { format: 'pt' });
    expect(out).toEqual(fileBytes);
  });

  it('matches the byte vectors of the reference Rust tests', () => {
    const data = new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer);
    // safetensors tests `test_serialization`, `test_empty`, `test_serialization_forced_alignement`.
    expect([...serializeSafetensors({ 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data } })]).toEqual([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34,
      115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48,
      44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
    expect([...serializeSafetensors({})]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    expect([...serializeSafetensors({}, { framework: 'pt' })]).toEqual([
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111,
      114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
    const aligned = serializeSafetensors({ attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data } });
    expect(aligned[0]).toBe(72);
    expect([...aligned.subarray(8 + 65, 80)]).toEqual([32, 32, 32, 32, 32, 32, 32]);
  });

  it('round-trips: parse(serialize(x)) has the same bytes, and serialize(parse(f)) == f', () => {
    const tensors = {
      'h.0.w': { dtype: 'BF16' as const, shape: [2, 2], data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) },
      'h.0.b': { dtype: 'U8' as const, shape: [3], data: new Uint8Array([9, 8, 7]) },
      'h.1.w': { dtype: 'F64' as const, shape: [1], data: new Uint8Array(new Float64Array([Math.PI]).buffer) },
      empty: { dtype: 'F32' as const, shape: [0, 4], data: new Uint8Array(0) },
    };
    const bytes = serializeSafetensors(tensors, { format: 'pt', note: 'x' });
    expect((bytes[0] + bytes[1] * 256) % 8).toBe(0);
    const back = parseSafetensors(bytes, 'rt.safetensors');
    expect(back.metadata).toEqual({ format: 'pt', note: 'x' });
    for (const [k, v] of Object.entries(tensors)) expect(back.tensors.get(k)).toEqual(v);
    expect(serializeSafetensors(back.tensors, back.metadata)).toEqual(bytes);
  });

  it('rejects data whose length does not match the shape, naming the key', () => {
    expect(() => serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Uint8Array(4) } })).toThrow(/'w'.*4 bytes.*needs 8/);
  });
});

describe('parseSafetensors errors name the file and the tensor', () => {
  const f32 = (n: number) => new Uint8Array(new Float32Array(n).fill(1.5).buffer);
  const cases: [string, Uint8Array, RegExp][] = [
    ['too short', new Uint8Array([1, 2, 3]), /bad\.st: file is 3 bytes/],
    ['header beyond file', handMade({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(1), 5000), /bad\.st: header length 5000 runs past the end/],
    ['bad JSON', handMade('{"w": {"dtype": "F32",', new Uint8Array()), /bad\.st: header is not valid JSON/],
    ['not an object', handMade('[1, 2]', new Uint8Array()), /bad\.st: header is not a JSON object/],
    ['unknown dtype', handMade({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 4] } }, f32(1)), /bad\.st: tensor 'w': unknown dtype "F128"/],
    ['bad shape', handMade({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32(1)), /tensor 'w': shape \[-1\]/],
    ['offsets out of range', handMade({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32(1)), /bad\.st: tensor 'w': data_offsets \[0, 8\] out of range of the 4-byte/],
    ['wrong size', handMade({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(2)), /tensor 'w': data_offsets \[0, 8\] hold 8 bytes but F32 \[3\] needs 12/],
    [
      'overlap',
      handMade({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32(3)),
      /bad\.st: tensor 'b': data_offsets \[4, 12\] overlap tensor 'a'/,
    ],
    [
      'hole',
      handMade({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, f32(3)),
      /tensor 'b': bytes \[4, 8\) of the data buffer belong to no tensor/,
    ],
    ['trailing bytes', handMade({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(2)), /data buffer is 8 bytes but the tensors cover only 4/],
    [
      'duplicate name',
      handMade('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32(2)),
      /bad\.st: tensor 'a': appears more than once/,
    ],
    ['non-string metadata', handMade({ __metadata__: { n: 3 } }, new Uint8Array()), /'__metadata__' entry 'n' is not a string/],
  ];
  for (const [label, bytes, pattern] of cases) {
    it(label, () => {
      expect(() => parseSafetensors(bytes, 'bad.st')).toThrow(pattern);
    });
  }

  it('a truncated copy of the reference file fails with a clear error', () => {
    expect(() => parseSafetensors(fileBytes.subarray(0, fileBytes.length - 3), 'cut.safetensors')).toThrow(/cut\.safetensors: .*(out of range|cover only)/);
  });
});
