"""Golden values for mixed-adapter batches (PEFT 0.21's per-sample `adapter_names`).

The bases are the tiny transformers GPT-2 and LLaMA checkpoints committed in
p_tuning_golden.json. On each, PEFT's get_peft_model / add_adapter builds two LoRA adapters
with different ranks, alphas and target modules (so some layers hold only one of them; on
LLaMA adapter `a` also wraps `embed_tokens`), their weights set to seeded values (as after
training) and saved with save_pretrained (the test loads these files). A third case (`llamaSaved`) gives
both LLaMA adapters their own copy of the untied lm_head (`modules_to_save`, moved off the original), so
PEFT's ModulesToSaveWrapper runs each row through its adapter's copy or, for `__base__`, the original. For a batch whose
rows use adapter `a`, `b` and `__base__` (no adapter) the fixture records, in eval mode:
- the logits of PEFT's forward with `adapter_names`;
- PEFT's greedy `generate` with `adapter_names` (KV cache, no eos: every row makes
  MAX_NEW tokens) and every step's scores;
- the loss of the forward with labels and its gradient with respect to every LoRA tensor of
  both adapters (PEFT refuses `adapter_names` in training mode, not autograd in eval mode).

Run: .venv-golden/bin/python tools/golden/mixed_batch_golden.py   (see tools/golden/README.md)
"""
import json
import os
import sys

if os.environ.get('PYTHONHASHSEED') != '0':
    # PEFT keeps target_modules in a set: a fixed string hash makes saved files reproducible.
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, 'PYTHONHASHSEED': '0'})

import base64
import tempfile

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from peft.utils import ModulesToSaveWrapper
from transformers import AutoModelForCausalLM

from common import b64, fixture_dir, saved_files, versions, write_json

MAX_NEW = 6
PAD = 0
ADAPTERS = {
    'gpt2': {
        'a': dict(r=4, lora_alpha=8, target_modules=['c_attn', 'c_proj'], fan_in_fan_out=True),
        'b': dict(r=2, lora_alpha=6, target_modules=['c_attn', 'c_fc'], fan_in_fan_out=True, use_rslora=True),
    },
    'llama': {
        'a': dict(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj', 'down_proj', 'embed_tokens']),
        'b': dict(r=2, lora_alpha=6, target_modules=['k_proj', 'v_proj', 'up_proj'], use_rslora=True),
    },
    # Both adapters also keep their own copy of the (untied) lm_head: PEFT's ModulesToSaveWrapper mixed batch.
    'llamaSaved': {
        'a': dict(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj'], modules_to_save=['lm_head']),
        'b': dict(r=2, lora_alpha=6, target_modules=['k_proj', 'v_proj'], modules_to_save=['lm_head']),
    },
}
BASES = {'gpt2': 'gpt2', 'llama': 'llama', 'llamaSaved': 'llama'}
SEEDS = {'gpt2': 1357, 'llama': 2468, 'llamaSaved': 3579}
# Rows per adapter; `__base__` runs the base model alone.
ADAPTER_NAMES = ['a', 'b', '__base__', 'b']
IDS = [[5, 17, 9, 23, 11], [30, 4, 12, 8, 19], [7, 21, 14, 3, 26], [13, 6, 28, 2, 15]]
LABELS = [[17, 9, 23, 11, 4], [4, 12, 8, 19, 3], [21, 14, -100, 26, 9], [6, 28, 2, 15, 30]]


def flat(t):
    """A tensor as a flat list, 8 significant digits (the tests compare float32 results)."""
    return [float('%.8g' % v) for v in t.detach().reshape(-1).tolist()]


def base_model(family, d):
    with open(fixture_dir('peft', 'p_tuning_golden.json')) as f:
        ck = json.load(f)[family]['checkpoint']
    with open(os.path.join(d, 'config.json'), 'w') as f:
        f.write(ck['config.json'])
    with open(os.path.join(d, 'model.safetensors'), 'wb') as f:
        f.write(base64.b64decode(ck['model.safetensors']))
    return AutoModelForCausalLM.from_pretrained(d, attn_implementation='eager').eval()


def family_fixture(family):
    g = torch.Generator().manual_seed(SEEDS[family])
    with tempfile.TemporaryDirectory() as d:
        base = base_model(BASES[family], d)
        specs = ADAPTERS[family]
        pm = get_peft_model(base, LoraConfig(lora_dropout=0.0, **specs['a']), adapter_name='a')
        pm.add_adapter('b', LoraConfig(lora_dropout=0.0, **specs['b']))
        for m in pm.modules():
            if isinstance(m, LoraLayer):
                for name in ('a', 'b'):
                    for p in [*(m.lora_A[name].weight, m.lora_B[name].weight)] if name in m.lora_A else []:
                        p.data = torch.randn(p.shape, generator=g) * 0.3
                    if name in m.lora_embedding_A:
                        for p in (m.lora_embedding_A[name], m.lora_embedding_B[name]):
                            p.data = torch.randn(p.shape, generator=g) * 0.3
            if isinstance(m, ModulesToSaveWrapper):
                # Each adapter's copy moves off the original (as after training).
                for name in ('a', 'b'):
                    w = m.modules_to_save[name].weight
                    w.data = w.data + torch.randn(w.shape, generator=g) * 0.3
        pm.eval()
        files = {}
        for name in ('a', 'b'):
            saved = saved_files(lambda out: pm.save_pretrained(out, selected_adapters=[name], safe_serialization=True, save_embedding_layers=False))
            prefix = '' if name == 'default' else f'{name}/'
            cfg = json.loads(saved[f'{prefix}adapter_config.json'])
            cfg['base_model_name_or_path'] = None
            files[name] = {'adapter_config.json': json.dumps(cfg, indent=2, sort_keys=True), 'adapter_model.safetensors': b64(saved[f'{prefix}adapter_model.safetensors'])}
        ids = torch.tensor(IDS)
        with torch.no_grad():
            logits = pm(input_ids=ids, adapter_names=ADAPTER_NAMES).logits
            # Each row alone with its adapter active (or disabled): PEFT's mixed batch equals these.
            single = []
            for i, n in enumerate(ADAPTER_NAMES):
                if n == '__base__':
                    with pm.disable_adapter():
                        single.append(pm(input_ids=ids[i:i + 1]).logits)
                else:
                    pm.set_adapter(n)
                    single.append(pm(input_ids=ids[i:i + 1]).logits)
            pm.set_adapter('a')
            assert torch.allclose(torch.cat(single), logits, atol=1e-5), 'mixed batch differs from per-row runs'
            pm.generation_config.eos_token_id = None
            out = pm.generate(input_ids=ids[:, :3], adapter_names=ADAPTER_NAMES, max_new_tokens=MAX_NEW, do_sample=False,
                              pad_token_id=PAD, use_cache=True, output_scores=True, return_dict_in_generate=True)
        # Gradients in eval mode (mark every LoRA tensor of both adapters trainable).
        for n, p in pm.named_parameters():
            p.requires_grad = 'lora_' in n or 'modules_to_save' in n
        loss = pm(input_ids=ids, labels=torch.tensor(LABELS), adapter_names=ADAPTER_NAMES).loss
        loss.backward()
        grads = {n.replace('base_model.model.', '', 1): flat(p.grad) for n, p in pm.named_parameters() if p.requires_grad and 'lora_' in n}
        return {
            'files': files,
            'logits': flat(logits),
            'logitsShape': list(logits.shape),
            'generate': {'sequences': out.sequences.tolist(), 'scores': [flat(s) for s in out.scores]},
            'loss': float(loss),
            'grads': grads,
        }


if __name__ == '__main__':
    write_json(fixture_dir('peft', 'mixed_batch_golden.json'), {
        'generator': 'tools/golden/mixed_batch_golden.py (PEFT forward/generate with adapter_names)',
        'versions': versions(),
        'adapterNames': ADAPTER_NAMES, 'ids': IDS, 'labels': LABELS, 'promptLength': 3, 'maxNewTokens': MAX_NEW, 'padTokenId': PAD,
        'gpt2': family_fixture('gpt2'),
        'llama': family_fixture('llama'),
        'llamaSaved': family_fixture('llamaSaved'),
    })
    print(f'transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}')
