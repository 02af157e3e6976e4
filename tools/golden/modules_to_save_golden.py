"""Golden values for `modules_to_save` (PEFT's ModulesToSaveWrapper), from PEFT.

modules_to_save_golden.json (peft): the tiny untied LLaMA checkpoint of the nn fixtures
(packages/nn/src/__tests__/fixtures/models/llama.json) with PEFT's get_peft_model and a
LoraConfig(r=2, q_proj/v_proj, modules_to_save=["lm_head"]). Every LoRA B and the adapter's
copy of lm_head (`lm_head.modules_to_save.default.weight`) are moved off their init by a
seeded 0.3 * randn, as training would. Recorded: the base model's logits, the adapter's
logits, the logits inside `disable_adapter()` (the original lm_head), PEFT's save_pretrained
files (their keys listed: the copy is saved as `base_model.model.lm_head.weight`) and the
logits of those files loaded back with PeftModel.from_pretrained on a fresh base.

Run: .venv-golden/bin/python tools/golden/modules_to_save_golden.py   (see tools/golden/README.md)
"""
import base64
import json
import os
import sys
import tempfile

if os.environ.get('PYTHONHASHSEED') != '0':
    # PEFT keeps module names in sets: a fixed string hash makes saved files reproducible.
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, 'PYTHONHASHSEED': '0'})

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from common import b64, b64f32, fixture_dir, saved_files, versions, write_json



def base_model(d):
    return AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation='eager').eval()


def main():
    with open(fixture_dir('nn', 'models', 'llama.json')) as f:
        fx = json.load(f)
    ids = torch.tensor(fx['input_ids'])
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, 'config.json'), 'w') as f:
            f.write(fx['files']['config.json'])
        with open(os.path.join(d, 'model.safetensors'), 'wb') as f:
            f.write(base64.b64decode(fx['files']['model.safetensors']))
        model = base_model(d)
        with torch.no_grad():
            base_logits = model(input_ids=ids).logits
        config = LoraConfig(r=2, lora_alpha=4, target_modules=['q_proj', 'v_proj'], modules_to_save=['lm_head'], task_type='CAUSAL_LM')
        pm = get_peft_model(model, config)
        g = torch.Generator().manual_seed(31)
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if p.requires_grad:
                    p.add_(0.3 * torch.randn(p.shape, generator=g))
        pm.eval()
        with torch.no_grad():
            logits = pm(input_ids=ids).logits
            with pm.disable_adapter():
                disabled = pm(input_ids=ids).logits
        assert torch.equal(disabled, base_logits), 'disable_adapter must restore the base logits exactly'
        trainable = sorted(n for n, p in pm.named_parameters() if p.requires_grad)
        files = saved_files(pm.save_pretrained)
        with tempfile.TemporaryDirectory() as a:
            for name, data in files.items():
                with open(os.path.join(a, name), 'wb') as f:
                    f.write(data)
            keys = sorted(load_file(os.path.join(a, 'adapter_model.safetensors')).keys())
            reloaded = PeftModel.from_pretrained(base_model(d), a).eval()
            with torch.no_grad():
                reloaded_logits = reloaded(input_ids=ids).logits
        assert torch.allclose(reloaded_logits, logits, atol=1e-6)
    write_json(fixture_dir('peft', 'modules_to_save_golden.json'), {
        'generator': 'tools/golden/modules_to_save_golden.py (PEFT get_peft_model with LoraConfig(modules_to_save=["lm_head"]) / save_pretrained / from_pretrained)',
        'versions': versions(),
        'base': 'packages/nn/src/__tests__/fixtures/models/llama.json',
        'inputIds': fx['input_ids'],
        'logitsShape': list(logits.shape),
        'baseLogits': b64f32(base_logits),
        'logits': b64f32(logits),
        'disabledLogits': b64f32(disabled),
        'reloadedLogits': b64f32(reloaded_logits),
        'trainable': trainable,
        'savedKeys': keys,
        'files': {'adapter_config.json': files['adapter_config.json'].decode('utf8'), 'adapter_model.safetensors': b64(files['adapter_model.safetensors'])},
    })


if __name__ == '__main__':
    main()
