"""Writes packages/nn/src/__tests__/fixtures/io/safetensors.json.

A small safetensors file with one tensor of each common dtype plus metadata, written
per the format spec (8-byte little-endian header length, compact JSON header sorted as
the reference Rust writer sorts it, header padded with spaces to a multiple of 8, then
the data). Tensor bytes and the expected values come from PyTorch's own dtype
conversions (f32 -> f16 / bf16 rounding), so the TypeScript reader and writer are
checked against torch, not against themselves.

Run: .venv-golden/bin/python tools/golden/safetensors_fixtures.py   (see tools/golden/README.md)
"""

import base64
import json
import os
import struct

import torch

from common import versions

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'packages', 'nn', 'src', '__tests__', 'fixtures', 'io', 'safetensors.json')

# Rust `safetensors::Dtype` declaration order ("increasing alignment").
DTYPE_ORDER = ['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64']
NAMES = {
    torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.float64: 'F64',
    torch.int64: 'I64', torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8', torch.uint8: 'U8', torch.bool: 'BOOL',
}


def raw_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret the bits
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def serialize(tensors, metadata):
    items = sorted(tensors.items(), key=lambda kv: (-DTYPE_ORDER.index(NAMES[kv[1].dtype]), kv[0].encode('utf-8')))
    parts = []
    if metadata is not None:
        parts.append('"__metadata__":' + json.dumps(metadata, separators=(',', ':')))
    offset = 0
    blobs = []
    for name, t in items:
        b = raw_bytes(t)
        parts.append(json.dumps(name) + ':' + json.dumps(
            {'dtype': NAMES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}, separators=(',', ':')))
        offset += len(b)
        blobs.append(b)
    header = ('{' + ','.join(parts) + '}').encode('utf-8')
    header += b' ' * ((8 - len(header) % 8) % 8)
    return struct.pack('<Q', len(header)) + header + b''.join(blobs), header.decode('utf-8')


def main():
    g = torch.Generator().manual_seed(1234)
    # Float sources include values that round: 1/3, an f16 subnormal, f16 max, bf16 ties.
    f32 = torch.randn(2, 3, generator=g) * 3
    src16 = torch.cat([torch.randn(5, generator=g), torch.tensor([1 / 3, 1e-5, 65504.0])])
    srcbf = torch.cat([torch.randn(3, generator=g) * 100, torch.tensor([1 / 3, 1.00390625, 1.01171875, -3.0e38])]).reshape(7)
    tensors = {
        'model.f32': f32,
        'model.f16': src16.to(torch.float16),
        'model.bf16': srcbf.to(torch.bfloat16),
        'model.f64': torch.randn(3, generator=g, dtype=torch.float64),
        'model.i32': torch.randint(-1000, 1000, (2, 2), generator=g, dtype=torch.int32),
        'model.i64': torch.tensor([-(2 ** 31), 2 ** 31 - 1, -7, 123456], dtype=torch.int64),
        'model.i16': torch.tensor([-32768, 32767, -5], dtype=torch.int16),
        'model.i8': torch.tensor([-128, 127, -3, 9], dtype=torch.int8),
        'model.u8': torch.tensor([0, 255, 7, 128, 64], dtype=torch.uint8),
        'model.bool': torch.tensor([True, False, True], dtype=torch.bool),
        'a.scalar': torch.tensor(2.5, dtype=torch.float32),
    }
    metadata = {'format': 'pt'}
    data, header = serialize(tensors, metadata)

    def values(t):
        if t.dtype in (torch.float16, torch.bfloat16):
            return t.float().reshape(-1).tolist()
        if t.dtype == torch.bool:
            return [int(v) for v in t.reshape(-1).tolist()]
        return t.reshape(-1).tolist()

    out = {
        'generator': 'tools/golden/safetensors_fixtures.py',
        'versions': versions(),
        'metadata': metadata,
        'header': header,
        'base64': base64.b64encode(data).decode('ascii'),
        'tensors': {name: {'dtype': NAMES[t.dtype], 'shape': list(t.shape), 'values': values(t)} for name, t in tensors.items()},
        # f32 inputs of the narrow tensors, to check our f32 -> f16 / bf16 rounding against torch's.
        'sources': {'model.f16': src16.tolist(), 'model.bf16': srcbf.tolist()},
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print(f'wrote {OUT} ({len(data)} bytes of safetensors)')


if __name__ == '__main__':
    main()
