"""Golden greedy generations of prompt-learning models, from PEFT's PeftModelForCausalLM.generate.

The bases are the tiny transformers GPT-2 and LLaMA checkpoints committed in
p_tuning_golden.json (written by p_tuning_golden.py), loaded with from_pretrained. On each,
PEFT's get_peft_model builds prompt tuning (RANDOM init), P-tuning (MLP encoder) and prefix
tuning (no projection) adapters from a seeded init; for each adapter the fixture holds PEFT's
save_pretrained files and PEFT's greedy `generate` (KV cache on, pad 0; eos 2 on LLaMA, none on GPT-2) for two prompt
batches: equal-length rows (no padding) and a left-padded batch with its attention mask. For
every step the next-token scores (`output_scores`, the raw logits of greedy search) are kept.

Run: .venv-golden/bin/python tools/golden/prompt_generate_golden.py   (see tools/golden/README.md)
"""
import json
import os
import sys

if os.environ.get('PYTHONHASHSEED') != '0':
    # PEFT keeps module names in sets: a fixed string hash makes saved files reproducible.
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, 'PYTHONHASHSEED': '0'})

import base64

import peft
import torch
import transformers
from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, get_peft_model
from transformers import AutoModelForCausalLM

from common import b64, fixture_dir, saved_files, versions, write_json

MAX_NEW = 8
PAD = 0
# GPT-2's tiny base emits its eos (2) at once under most adapters, so its cases run without
# one (every row makes MAX_NEW tokens); LLaMA's keep eos 2, which two of its rows reach.
EOS = {'gpt2': None, 'llama': 2}
PROMPTS = {
    # Equal-length rows: no padding, no mask.
    'unpadded': {'ids': [[5, 17, 9, 23], [30, 4, 12, 8]], 'mask': None},
    # Row 1 is left-padded with the pad id; the mask marks the pads.
    'padded': {'ids': [[7, 21, 14, 3], [PAD, PAD, 19, 26]], 'mask': [[1, 1, 1, 1], [0, 0, 1, 1]]},
}
METHODS = {
    'promptTuning': lambda: PromptTuningConfig(task_type='CAUSAL_LM', num_virtual_tokens=3, prompt_tuning_init='RANDOM'),
    'pTuningMlp': lambda: PromptEncoderConfig(task_type='CAUSAL_LM', num_virtual_tokens=3, encoder_reparameterization_type='MLP', encoder_hidden_size=8),
    'prefixTuning': lambda: PrefixTuningConfig(task_type='CAUSAL_LM', num_virtual_tokens=4),
}


def flat(t):
    """A tensor as a flat list, 8 significant digits (the tests compare float32 results)."""
    return [float('%.8g' % v) for v in t.detach().reshape(-1).tolist()]


class checkpoint_dir:
    """The base checkpoint of p_tuning_golden.json's `family` in a temporary folder."""

    def __init__(self, family):
        import tempfile
        with open(fixture_dir('peft', 'p_tuning_golden.json')) as f:
            ck = json.load(f)[family]['checkpoint']
        self.tmp = tempfile.TemporaryDirectory()
        with open(os.path.join(self.tmp.name, 'config.json'), 'w') as f:
            f.write(ck['config.json'])
        with open(os.path.join(self.tmp.name, 'model.safetensors'), 'wb') as f:
            f.write(base64.b64decode(ck['model.safetensors']))

    def __enter__(self):
        return self.tmp.name

    def __exit__(self, *exc):
        self.tmp.cleanup()


def generate_case(pm, prompt, eos):
    ids = torch.tensor(prompt['ids'])
    kwargs = {'attention_mask': torch.tensor(prompt['mask'])} if prompt['mask'] else {}
    # PEFT hands its generation_config to the base model; None there means no eos at all.
    pm.generation_config.eos_token_id = eos
    with torch.no_grad():
        out = pm.generate(input_ids=ids, max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=PAD,
                          use_cache=True, output_scores=True, return_dict_in_generate=True, **kwargs)
    return {'sequences': out.sequences.tolist(), 'scores': [flat(s) for s in out.scores]}


def family_fixture(family):
    res = {'eosTokenId': EOS[family]}
    with checkpoint_dir(family) as d:
        for name, make in METHODS.items():
            base = AutoModelForCausalLM.from_pretrained(d, attn_implementation='eager').eval()
            torch.manual_seed(23)
            pm = get_peft_model(base, make()).eval()
            files = saved_files(lambda out: pm.save_pretrained(out, safe_serialization=True))
            # The base was read from a temporary folder: keep its path out of the fixture.
            adapter_config = json.loads(files['adapter_config.json'])
            adapter_config['base_model_name_or_path'] = None
            res[name] = {
                'files': {'adapter_config.json': json.dumps(adapter_config, indent=2, sort_keys=True), 'adapter_model.safetensors': b64(files['adapter_model.safetensors'])},
                **{k: generate_case(pm, p, EOS[family]) for k, p in PROMPTS.items()},
            }
    return res


if __name__ == '__main__':
    write_json(fixture_dir('peft', 'prompt_generate_golden.json'), {
        'generator': 'tools/golden/prompt_generate_golden.py (PEFT PeftModelForCausalLM.generate, greedy, KV cache)',
        'versions': versions(),
        'maxNewTokens': MAX_NEW, 'padTokenId': PAD,
        'prompts': PROMPTS,
        'gpt2': family_fixture('gpt2'),
        'llama': family_fixture('llama'),
    })
    print(f'transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}')
