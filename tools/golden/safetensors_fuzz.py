"""Fuzz corpus of mutated safetensors files, with the reference reader's verdicts.

The base file is written by `safetensors.torch.save` (tensors of several dtypes, a
scalar, an empty tensor, `{"format": "pt"}` metadata). Each mutation changes its bytes:
truncations, a wrong header length, header text that is not UTF-8 / JSON / an object,
bad entries (dtype, shape, offsets), overlaps, holes, trailing bytes, duplicate names,
bad metadata, and valid variants (other key order, padding, new dtypes); and two
systematic families: the base file cut at every length, and every header byte replaced
by another character. The verdict is
that of the Rust reader in the `safetensors` package (`safetensors.deserialize`, the
parser behind `safe_open` and `load`): `accepted` or `rejected` with its message.

Writes packages/nn/src/__tests__/fixtures/io/safetensors_fuzz.json (each file base64).

Run: .venv-golden/bin/python tools/golden/safetensors_fuzz.py   (see tools/golden/README.md)
"""
import json
import struct

import safetensors
import torch
from safetensors.torch import save

from common import b64, fixture_dir, versions, write_json


def base_file():
    g = torch.Generator().manual_seed(5)
    tensors = {
        'w': torch.randn(2, 3, generator=g),
        'h': torch.randn(2, generator=g).to(torch.bfloat16),
        'ids': torch.tensor([7, -3], dtype=torch.int64),
        'mask': torch.tensor([True, False, True]),
        'scalar': torch.tensor(1.5),
        'empty': torch.zeros(0, 4),
    }
    return save(tensors, metadata={'format': 'pt'})


def split(data):
    n = struct.unpack('<Q', data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def build(header, buffer, pad=b' ', raw_header=None):
    """A file from a header object (or raw header bytes), padded to a multiple of 8."""
    text = raw_header if raw_header is not None else json.dumps(header, separators=(',', ':')).encode()
    text += pad * ((8 - len(text) % 8) % 8)
    return struct.pack('<Q', len(text)) + text + buffer


def edit(fn):
    """A mutation that edits the parsed header (and may return a new buffer)."""
    def apply(data):
        header, buffer = split(data)
        out = fn(header, buffer)
        return build(header, buffer if out is None else out)
    return apply


def entry(key, **fields):
    def fn(h, b):
        h[key].update(fields)
        for k, v in fields.items():
            if v is DROP:
                del h[key][k]
    return edit(fn)


DROP = object()


def with_header_len(n):
    return lambda data: struct.pack('<Q', n) + data[8:]


def raw_text(text):
    return lambda data: build(None, b'', raw_header=text)


def rename_order(data):
    header, buffer = split(data)
    return build(dict(reversed(list(header.items()))), buffer)


def duplicate_name(data):
    header, buffer = split(data)
    text = json.dumps(header, separators=(',', ':'))
    dup = text[:-1] + ',"w":' + json.dumps(header['w'], separators=(',', ':')) + '}'
    return build(None, buffer, raw_header=dup.encode())


def trailing(data):
    return data + b'\x00\x00\x00\x00'


def overlap(h, b):
    h['h']['data_offsets'] = [h['w']['data_offsets'][0], h['w']['data_offsets'][0] + 4]


def hole(h, b):
    # Shift every tensor 4 bytes up: bytes [0, 4) belong to no tensor.
    for k, v in h.items():
        if k != '__metadata__':
            v['data_offsets'] = [v['data_offsets'][0] + 4, v['data_offsets'][1] + 4]
    return b'\x00' * 4 + b


def new_dtype(dtype, itemsize_bits):
    def fn(h, b):
        # 'mask' has 3 elements of 1 byte; a 3-element 8-bit tensor needs the same bytes.
        h['mask']['dtype'] = dtype
        if itemsize_bits == 4:
            h['mask']['shape'] = [6]
    return edit(fn)


def huge_shape(h, b):
    h['w']['shape'] = [2 ** 62, 4]


def metadata(value):
    def fn(h, b):
        if value is DROP:
            h.pop('__metadata__', None)
        else:
            h['__metadata__'] = value
    return edit(fn)


def main():
    data = base_file()
    header, buffer = split(data)
    n = len(data) - len(buffer) - 8
    m = {
        'valid (as written)': lambda d: d,
        'valid: keys in another order': rename_order,
        'valid: no metadata': metadata(DROP),
        'valid: header padded to no multiple of 8': lambda d: struct.pack('<Q', n - 1) + d[8:8 + n - 1] + d[8 + n:] if d[8 + n - 1:8 + n] == b' ' else d,
        'valid: empty file header {} only': raw_text(b'{}'),
        'valid: unicode tensor name': edit(lambda h, b: h.__setitem__('ünï.ç', h.pop('w'))),
        'valid: a U8 tensor': new_dtype('U8', 8),
        'truncated to 0 bytes': lambda d: b'',
        'truncated to 7 bytes': lambda d: d[:7],
        'truncated to the length field': lambda d: d[:8],
        'truncated inside the header': lambda d: d[:8 + n // 2],
        'truncated after the header': lambda d: d[:8 + n],
        'truncated one byte short': lambda d: d[:-1],
        'truncated inside the first tensor': lambda d: d[:8 + n + 3],
        'header length past the end': with_header_len(len(data)),
        'header length one too long': with_header_len(n + 1),
        'header length one too short': with_header_len(n - 1),
        'header length 2^40': with_header_len(2 ** 40),
        'header length 0': with_header_len(0),
        'header not UTF-8': raw_text(b'{"w\xff":1}'),
        'header not JSON': raw_text(b'{"w": {dtype: F32}}'),
        'header a JSON array': raw_text(b'[1,2,3]'),
        'header a JSON string': raw_text(b'"text"'),
        'header padded with NUL bytes': lambda d: build(*split(d), pad=b'\x00') if (n % 8) else build(None, split(d)[1], pad=b'\x00', raw_header=d[8:8 + n].rstrip(b' ') + b' '),
        'header JSON followed by garbage': lambda d: build(None, split(d)[1], raw_header=d[8:8 + n].rstrip(b' ') + b'xx'),
        'unknown dtype': entry('w', dtype='F128'),
        'lower-case dtype': entry('w', dtype='f32'),
        'dtype a number': entry('w', dtype=4),
        'dtype missing': entry('w', dtype=DROP),
        'shape missing': entry('w', shape=DROP),
        'data_offsets missing': entry('w', data_offsets=DROP),
        'shape negative': entry('w', shape=[-2, -3]),
        'shape fractional': entry('w', shape=[2.0, 3.0]),
        'shape a string': entry('w', shape='2,3'),
        'shape null': entry('w', shape=None),
        'shape product overflows': edit(lambda h, b: huge_shape(h, b)),
        'shape product wrong (fewer elements)': entry('w', shape=[2, 2]),
        'shape product wrong (more elements)': entry('w', shape=[3, 3]),
        'data_offsets reversed': edit(lambda h, b: h['w'].__setitem__('data_offsets', h['w']['data_offsets'][::-1])),
        'data_offsets out of range': edit(lambda h, b: h['w'].__setitem__('data_offsets', [h['w']['data_offsets'][0], len(b) + 24])),
        'data_offsets of three numbers': edit(lambda h, b: h['w'].__setitem__('data_offsets', h['w']['data_offsets'] + [0])),
        'data_offsets strings': edit(lambda h, b: h['w'].__setitem__('data_offsets', [str(x) for x in h['w']['data_offsets']])),
        'data_offsets negative': edit(lambda h, b: h['w'].__setitem__('data_offsets', [-24, 0])),
        'two tensors overlap': edit(overlap),
        'a hole before the first tensor': edit(hole),
        'trailing bytes after the last tensor': trailing,
        'duplicate tensor name': duplicate_name,
        'entry not an object': edit(lambda h, b: h.__setitem__('w', [1, 2])),
        'entry with an extra field': entry('w', note='x'),
        'metadata with a number value': metadata({'format': 'pt', 'n': 3}),
        'metadata a list': metadata(['format', 'pt']),
        'metadata null': metadata(None),
        'metadata nested object': metadata({'format': {'a': 'b'}}),
        'F8_E8M0 dtype (newer than the format we read)': new_dtype('F8_E8M0', 8),
        'F4 dtype (newer than the format we read)': new_dtype('F4', 4),
        'a tensor named __metadata__ with tensor fields': metadata({'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4]}),
    }
    cases = []
    for label, fn in m.items():
        file = fn(data)
        try:
            safetensors.deserialize(bytes(file))
            v = {'verdict': 'accepted'}
        except Exception as e:  # noqa: BLE001 - any exception is the reader's rejection
            v = {'verdict': 'rejected', 'error': f'{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ""}'}
        cases.append({'label': label, **v, 'base64': b64(file)})
        print(f'  {label:55} {v["verdict"]} {v.get("error", "")[:80]}')
    # Systematic families, stored as one verdict letter per file ('a' accepted, 'r' rejected):
    # the base file cut at every length, and every header byte replaced by 'x' (or 'y').
    def letter(file):
        try:
            safetensors.deserialize(bytes(file))
            return 'a'
        except Exception:  # noqa: BLE001
            return 'r'
    truncations = ''.join(letter(data[:k]) for k in range(len(data)))
    flips = ''.join(letter(data[:i] + (b'y' if data[i:i + 1] == b'x' else b'x') + data[i + 1:]) for i in range(8, 8 + n))
    print(f'  {len(truncations)} truncations ({truncations.count("a")} accepted), {len(flips)} header byte flips ({flips.count("a")} accepted)')
    write_json(fixture_dir('nn', 'io', 'safetensors_fuzz.json'), {
        'generator': 'tools/golden/safetensors_fuzz.py', 'versions': versions(), 'reader': 'safetensors.deserialize', 'cases': cases,
        'base': b64(data), 'truncations': truncations, 'headerFlips': flips})


if __name__ == '__main__':
    main()
