"""Half-precision goldens for @webpeft/nn's models, from transformers itself.

For each committed model fixture (written by nn_models.py: GPT-2, LLaMA, Qwen2,
Mistral), loads the saved checkpoint with transformers' own class twice, in float32 and
in float16 (`torch_dtype=torch.float16`, eager attention, which runs its softmax in
float32 as autocast would), runs the fixture's inputs, and records:
- the float16 logits (widened to f32),
- PyTorch's own discrepancy: max |logits_f16 - logits_f32| over the kept (non-padding)
  positions, and the same divided by max |logits_f32| (the tolerance an f16
  implementation is held to, since PyTorch itself shows it between its two runs).

The f32 run reproduces the committed fixture's logits (checked here), so the f16 numbers
belong to exactly the model the f32 tests use.

Run: .venv-golden/bin/python tools/golden/nn_models_f16.py   (see tools/golden/README.md)
Output: packages/nn/src/__tests__/fixtures/models/f16/{gpt2,llama,qwen2,mistral}.json
"""
import base64
import json
import os
import tempfile

import numpy as np
import torch
from transformers import GPT2LMHeadModel, LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM

from common import b64f32, fixture_dir, versions, write_json

SRC = fixture_dir('nn', 'models')
OUT = fixture_dir('nn', 'models', 'f16')
CLASSES = {'gpt2': GPT2LMHeadModel, 'llama': LlamaForCausalLM, 'qwen2': Qwen2ForCausalLM, 'mistral': MistralForCausalLM}


def load(cls, d, dtype):
    model = cls.from_pretrained(d, torch_dtype=dtype, attn_implementation='eager').eval()
    model.config.use_cache = False
    return model


def run(name):
    with open(f'{SRC}/{name}.json') as f:
        fx = json.load(f)
    ids = torch.tensor(fx['input_ids'])
    mask = torch.tensor(fx['attention_mask'])
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, 'config.json'), 'w') as f:
            f.write(fx['files']['config.json'])
        with open(os.path.join(d, 'model.safetensors'), 'wb') as f:
            f.write(base64.b64decode(fx['files']['model.safetensors']))
        m32 = load(CLASSES[name], d, torch.float32)
        m16 = load(CLASSES[name], d, torch.float16)
    with torch.no_grad():
        l32 = m32(input_ids=ids, attention_mask=mask).logits
        l16 = m16(input_ids=ids, attention_mask=mask).logits
    assert l16.dtype == torch.float16
    committed = np.frombuffer(base64.b64decode(fx['logits']), dtype='<f4').reshape(l32.shape)
    assert np.abs(committed - l32.numpy()).max() < 1e-5, 'the f32 run must reproduce the committed fixture'
    kept = mask.bool()
    diff = (l16.float() - l32)[kept].abs().max().item()
    scale = l32[kept].abs().max().item()
    write_json(f'{OUT}/{name}.json', {
        'description': f'transformers float16 logits of the {name} fixture (tools/golden/nn_models_f16.py); '
                       'maxAbsDiff = max |f16 - f32| of PyTorch itself at kept positions',
        'versions': versions(),
        'logits_f16': b64f32(l16),
        'maxAbsDiff': diff,
        'maxAbsLogit': scale,
    })
    print(f'  {name}: torch max |f16 - f32| = {diff:.5f} (max |logit| {scale:.3f})')


if __name__ == '__main__':
    for name in ['gpt2', 'llama', 'qwen2', 'mistral']:
        run(name)
