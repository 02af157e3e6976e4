"""Helpers shared by the golden generators: base64 encodings, saved checkpoints, versions."""
import base64
import json
import os
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')


def fixture_dir(package, *parts):
    return os.path.join(ROOT, 'packages', package, 'src', '__tests__', 'fixtures', *parts)


def versions():
    """The library versions that produced a fixture (recorded in every fixture)."""
    out = {}
    for name in ('torch', 'transformers', 'peft', 'safetensors', 'numpy'):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


def b64(data):
    return base64.b64encode(data).decode('ascii')


def b64f32(t):
    """Little-endian float32 bytes of a tensor, base64."""
    import torch
    return b64(t.detach().to(torch.float32).contiguous().cpu().numpy().astype('<f4').tobytes())


def flat(t):
    """A tensor as a flat list of Python floats (float64 precision kept)."""
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def saved_files(save):
    """Runs `save(dir)` (a save_pretrained call) in a fresh temporary folder and returns
    {relative path: bytes} of everything it wrote."""
    with tempfile.TemporaryDirectory() as d:
        save(d)
        out = {}
        for root, _, files in os.walk(d):
            for f in files:
                p = os.path.join(root, f)
                with open(p, 'rb') as fh:
                    out[os.path.relpath(p, d).replace(os.sep, '/')] = fh.read()
        return out


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f)
    print(f'wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)')
