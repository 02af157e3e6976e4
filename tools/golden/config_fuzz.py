"""Fuzz corpora of mutated config files, with the real libraries' verdicts.

Writes
- packages/peft/src/__tests__/fixtures/adapter_config_fuzz.json: mutations of
  adapter_config.json files written by PEFT's own `save_pretrained` (LoRA, IA3, prompt
  tuning, prefix tuning on a tiny transformers LlamaForCausalLM). For each mutation the
  verdict of PEFT's `PeftModel.from_pretrained` (with the adapter's real, unmutated
  adapter_model.safetensors) followed by a forward pass: `accepted` (and whether the
  logits are finite) or `rejected` (with the exception).
- packages/nn/src/__tests__/fixtures/models/config_fuzz.json: mutations of config.json
  files written by transformers (`GPT2Config`, `LlamaConfig`, `Qwen2Config`,
  `MistralConfig`); the verdict of `AutoConfig.from_pretrained` +
  `AutoModelForCausalLM.from_config` + a forward pass.

A mutation is a patch of the real file: `set` (keys to new values), `drop` (keys
removed) or `text` (the whole file text, for text that is not a JSON object). The
tests apply the same patch to the same base file and compare verdicts.

Run: .venv-golden/bin/python tools/golden/config_fuzz.py   (see tools/golden/README.md)
"""
import json
import os
import re
import sys
import tempfile
import warnings

if os.environ.get('PYTHONHASHSEED') != '0':
    # PEFT keeps target_modules in a set: a fixed string hash makes its saved order reproducible.
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, 'PYTHONHASHSEED': '0'})

import torch
import transformers
from peft import IA3Config, LoraConfig, PeftModel, PrefixTuningConfig, PromptTuningConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config, LlamaConfig, MistralConfig, Qwen2Config

from common import b64, fixture_dir, saved_files, versions, write_json

warnings.filterwarnings('ignore')
transformers.logging.set_verbosity_error()

LLAMA = dict(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False)
IDS = [[0, 1, 2, 3]]


def tiny_llama():
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(LlamaConfig(**LLAMA)).eval()


def verdict(run):
    """`run()` returns logits; the verdict of running it."""
    try:
        with torch.no_grad():
            logits = run()
        return {'verdict': 'accepted', 'finite': bool(torch.isfinite(logits).all())}
    except Exception as e:  # noqa: BLE001 - any exception is the library's rejection
        first = str(e).splitlines()[0][:160] if str(e) else ''
        # The temporary folder's name varies from run to run and is no part of the verdict.
        first = re.sub(r"[^\s'\"]*tmp\w{6,}(/[\w.]+)?", '<dir>', first)
        return {'verdict': 'rejected', 'error': f'{type(e).__name__}: {first}'}


def apply(base_text, m):
    if 'text' in m:
        return m['text']
    j = json.loads(base_text)
    for k in m.get('drop', []):
        j.pop(k, None)
    j.update(m.get('set', {}))
    return json.dumps(j, indent=2, allow_nan=True)


# ---------------------------------------------------------------- adapter_config.json

def adapter_bases():
    """{name: (peft config, files)} saved by PEFT's own save_pretrained, weights off their init."""
    out = {}
    configs = {
        'lora': LoraConfig(r=2, lora_alpha=4, target_modules=['q_proj', 'v_proj'], task_type='CAUSAL_LM'),
        'ia3': IA3Config(target_modules=['k_proj', 'v_proj', 'down_proj'], feedforward_modules=['down_proj'], task_type='CAUSAL_LM'),
        'prompt': PromptTuningConfig(num_virtual_tokens=3, task_type='CAUSAL_LM'),
        'prefix': PrefixTuningConfig(num_virtual_tokens=3, task_type='CAUSAL_LM'),
    }
    for name, cfg in configs.items():
        model = get_peft_model(tiny_llama(), cfg)
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.requires_grad:
                    p.copy_(torch.rand(p.shape, generator=g) * 0.2 - 0.1 + (1 if 'ia3' in n else 0))
        files = saved_files(model.save_pretrained)
        out[name] = files
    return out


S = 'set'
LORA_MUTATIONS = [
    ('valid', {}, None),
    ('invalid JSON (truncated)', {'text': '{"peft_type": "LORA", "r": 2,'}, None),
    ('JSON array', {'text': '[1, 2]'}, None),
    ('JSON string', {'text': '"LORA"'}, None),
    ('empty object', {'text': '{}'}, 'peft_type'),
    ('NaN literal for lora_alpha', {'text': None, 'nan': 'lora_alpha'}, None),
    ('peft_type missing', {'drop': ['peft_type']}, 'peft_type'),
    ('peft_type unknown', {S: {'peft_type': 'NOPE'}}, 'peft_type'),
    ('peft_type lower case', {S: {'peft_type': 'lora'}}, 'peft_type'),
    ('peft_type number', {S: {'peft_type': 123}}, 'peft_type'),
    ('r zero', {S: {'r': 0}}, 'r'),
    ('r negative', {S: {'r': -2}}, 'r'),
    ('r fractional', {S: {'r': 2.5}}, 'r'),
    ('r string', {S: {'r': '2'}}, 'r'),
    ('r null', {S: {'r': None}}, 'r'),
    ('r boolean', {S: {'r': True}}, 'r'),
    ('r disagrees with the file', {S: {'r': 3}}, None),
    ('r huge', {S: {'r': 100000}}, None),
    ('lora_alpha null', {S: {'lora_alpha': None}}, 'lora_alpha'),
    ('lora_alpha string', {S: {'lora_alpha': '4'}}, 'lora_alpha'),
    ('lora_alpha zero', {S: {'lora_alpha': 0}}, None),
    ('lora_alpha negative', {S: {'lora_alpha': -4}}, None),
    ('lora_alpha missing', {'drop': ['lora_alpha']}, None),
    ('lora_dropout above 1', {S: {'lora_dropout': 1.5}}, 'lora_dropout'),
    ('lora_dropout negative', {S: {'lora_dropout': -0.1}}, 'lora_dropout'),
    ('lora_dropout string', {S: {'lora_dropout': '0.1'}}, 'lora_dropout'),
    ('lora_dropout null', {S: {'lora_dropout': None}}, 'lora_dropout'),
    ('lora_dropout 0.5', {S: {'lora_dropout': 0.5}}, None),
    ('target_modules number', {S: {'target_modules': 123}}, 'target_modules'),
    ('target_modules empty list', {S: {'target_modules': []}}, 'target_modules'),
    ('target_modules list of numbers', {S: {'target_modules': [1, 2]}}, 'target_modules'),
    ('target_modules not in the model', {S: {'target_modules': ['nonexistent']}}, 'target_modules'),
    ('target_modules null (model defaults)', {S: {'target_modules': None}}, None),
    ('target_modules regex of both', {S: {'target_modules': r'.*\.(q|v)_proj'}}, None),
    ('target_modules fewer than the file', {S: {'target_modules': ['q_proj']}}, None),
    ('target_modules more than the file', {S: {'target_modules': ['q_proj', 'v_proj', 'k_proj']}}, None),
    ('use_rslora string "false"', {S: {'use_rslora': 'false'}}, 'use_rslora'),
    ('use_rslora number 1', {S: {'use_rslora': 1}}, 'use_rslora'),
    ('use_rslora null', {S: {'use_rslora': None}}, None),
    ('use_rslora true', {S: {'use_rslora': True}}, None),
    ('use_dora string', {S: {'use_dora': 'yes'}}, 'use_dora'),
    ('use_dora true without magnitudes in the file', {S: {'use_dora': True}}, None),
    ('fan_in_fan_out string', {S: {'fan_in_fan_out': 'no'}}, 'fan_in_fan_out'),
    ('bias unknown', {S: {'bias': 'everything'}}, 'bias'),
    ('bias null', {S: {'bias': None}}, 'bias'),
    ('bias all', {S: {'bias': 'all'}}, None),
    ('init_lora_weights gaussian', {S: {'init_lora_weights': 'gaussian'}}, None),
    ('init_lora_weights number', {S: {'init_lora_weights': 5}}, 'init_lora_weights'),
    ('rank_pattern disagrees with the file', {S: {'rank_pattern': {'q_proj': 4}}}, None),
    ('rank_pattern string value', {S: {'rank_pattern': {'q_proj': '4'}}}, 'rank_pattern'),
    ('rank_pattern list', {S: {'rank_pattern': [4]}}, 'rank_pattern'),
    ('alpha_pattern', {S: {'alpha_pattern': {'q_proj': 32}}}, None),
    ('layers_to_transform one of two layers', {S: {'layers_to_transform': [0]}}, None),
    ('layers_to_transform string', {S: {'layers_to_transform': '0'}}, 'layers_to_transform'),
    ('layers_to_transform absent layer', {S: {'layers_to_transform': [5]}}, 'target_modules'),
    ('layers_pattern without layers_to_transform', {S: {'layers_pattern': 'layers'}}, 'layers_pattern'),
    ('modules_to_save not in the file', {S: {'modules_to_save': ['lm_head']}}, None),
    ('inference_mode string', {S: {'inference_mode': 'true'}}, 'inference_mode'),
    ('task_type number', {S: {'task_type': 5}}, 'task_type'),
    ('task_type unknown', {S: {'task_type': 'TRANSLATION'}}, 'task_type'),
    ('task_type null', {S: {'task_type': None}}, None),
    ('init_lora_weights unknown name', {S: {'init_lora_weights': 'nonsense'}}, 'init_lora_weights'),
    ('init_lora_weights pissa', {S: {'init_lora_weights': 'pissa'}}, None),
    ('revision number', {S: {'revision': 3}}, 'revision'),
    ('base_model_name_or_path number', {S: {'base_model_name_or_path': 123}}, 'base_model_name_or_path'),
    ('exclude_modules number', {S: {'exclude_modules': 5}}, 'exclude_modules'),
    ('unknown key', {S: {'some_future_option': {'a': 1}}}, None),
    ('lora_bias true', {S: {'lora_bias': True}}, 'lora_bias'),
    ('duplicate key, last wins', {'text': None, 'dup': ('r', 3)}, None),
]
IA3_MUTATIONS = [
    ('valid', {}, None),
    ('feedforward_modules not a subset', {S: {'feedforward_modules': ['up_proj']}}, 'feedforward_modules'),
    ('target_modules number', {S: {'target_modules': 5}}, 'target_modules'),
    ('init_ia3_weights string', {S: {'init_ia3_weights': 'no'}}, 'init_ia3_weights'),
    ('fan_in_fan_out null', {S: {'fan_in_fan_out': None}}, None),
    ('target_modules fewer than the file', {S: {'target_modules': ['k_proj', 'down_proj']}}, None),
]
PROMPT_MUTATIONS = [
    ('valid', {}, None),
    ('num_virtual_tokens zero', {S: {'num_virtual_tokens': 0}}, 'num_virtual_tokens'),
    ('num_virtual_tokens string', {S: {'num_virtual_tokens': '3'}}, 'num_virtual_tokens'),
    ('num_virtual_tokens disagrees with the file', {S: {'num_virtual_tokens': 5}}, None),
    ('token_dim disagrees with the file', {S: {'token_dim': 17}}, None),
    ('prompt_tuning_init unknown', {S: {'prompt_tuning_init': 'BAD'}}, 'prompt_tuning_init'),
    ('num_virtual_tokens missing', {'drop': ['num_virtual_tokens']}, 'num_virtual_tokens'),
]
PREFIX_MUTATIONS = [
    ('valid', {}, None),
    ('num_layers disagrees with the file', {S: {'num_layers': 3}}, None),
    ('prefix_projection string', {S: {'prefix_projection': 'false'}}, 'prefix_projection'),
    ('num_virtual_tokens fractional', {S: {'num_virtual_tokens': 2.5}}, 'num_virtual_tokens'),
]


def text_mutation(base_text, m):
    """Mutations written as text (NaN literals, duplicate keys), which json.dumps cannot make."""
    if 'nan' in m:
        j = json.loads(base_text)
        j[m['nan']] = float('nan')
        return json.dumps(j, indent=2, allow_nan=True)
    key, value = m['dup']
    return base_text.rstrip()[:-1].rstrip() + f',\n  "{key}": {json.dumps(value)}\n}}'


def adapter_corpus():
    bases = adapter_bases()
    ids = torch.tensor(IDS)
    cases = []
    groups = [('lora', LORA_MUTATIONS), ('ia3', IA3_MUTATIONS), ('prompt', PROMPT_MUTATIONS), ('prefix', PREFIX_MUTATIONS)]
    for base, mutations in groups:
        files = bases[base]
        base_text = files['adapter_config.json'].decode()
        for label, m, field in mutations:
            text = text_mutation(base_text, m) if m.get('text', '') is None else apply(base_text, m)
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, 'adapter_config.json'), 'w') as f:
                    f.write(text)
                with open(os.path.join(d, 'adapter_model.safetensors'), 'wb') as f:
                    f.write(files['adapter_model.safetensors'])
                v = verdict(lambda: PeftModel.from_pretrained(tiny_llama(), d).eval()(input_ids=ids).logits)
            record = {'base': base, 'label': label, 'field': field, **v}
            if 'text' in m:
                record['text'] = text
            else:
                record.update({k: m[k] for k in ('set', 'drop') if k in m})
            cases.append(record)
            print(f'  adapter {base:6} {label:45} {v["verdict"]} {v.get("error", "")[:90]}')
    return {
        'generator': 'tools/golden/config_fuzz.py',
        'versions': versions(),
        'llama': LLAMA,
        'ids': IDS,
        'bases': {name: {'adapter_config.json': f['adapter_config.json'].decode(), 'adapter_model.safetensors': b64(f['adapter_model.safetensors'])}
                  for name, f in bases.items()},
        'cases': cases,
    }


# ---------------------------------------------------------------- config.json

def model_bases():
    small = dict(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=64)
    cfgs = {
        'gpt2': GPT2Config(vocab_size=32, n_positions=64, n_embd=16, n_layer=2, n_head=4),
        'llama': LlamaConfig(**small),
        'qwen2': Qwen2Config(**small),
        'mistral': MistralConfig(**small, sliding_window=16),
    }
    out = {}
    for name, cfg in cfgs.items():
        with tempfile.TemporaryDirectory() as d:
            cfg.save_pretrained(d)
            with open(os.path.join(d, 'config.json')) as f:
                out[name] = f.read()
    return out


CONFIG_MUTATIONS = {
    'llama': [
        ('valid', {}, None),
        ('invalid JSON (truncated)', {'text': '{"model_type": "llama", "hidden_size": 16,'}, None),
        ('JSON array', {'text': '[]'}, None),
        ('model_type missing', {'drop': ['model_type']}, 'model_type'),
        ('model_type unknown', {S: {'model_type': 'llamaa'}}, 'model_type'),
        ('model_type number', {S: {'model_type': 5}}, 'model_type'),
        ('hidden_size string', {S: {'hidden_size': '16'}}, 'hidden_size'),
        ('hidden_size fractional', {S: {'hidden_size': 16.5}}, 'hidden_size'),
        ('hidden_size zero', {S: {'hidden_size': 0}}, 'hidden_size'),
        ('hidden_size negative', {S: {'hidden_size': -16}}, 'hidden_size'),
        ('hidden_size null', {S: {'hidden_size': None}}, 'hidden_size'),
        ('num_attention_heads does not divide hidden_size', {S: {'num_attention_heads': 5, 'num_key_value_heads': 5}}, 'hidden_size'),
        ('num_key_value_heads does not divide heads', {S: {'num_key_value_heads': 3}}, 'num_key_value_heads'),
        ('num_key_value_heads null (= heads)', {S: {'num_key_value_heads': None}}, None),
        ('vocab_size zero', {S: {'vocab_size': 0}}, 'vocab_size'),
        ('vocab_size string', {S: {'vocab_size': '32'}}, 'vocab_size'),
        ('intermediate_size zero', {S: {'intermediate_size': 0}}, 'intermediate_size'),
        ('num_hidden_layers fractional', {S: {'num_hidden_layers': 1.5}}, 'num_hidden_layers'),
        ('rms_norm_eps negative', {S: {'rms_norm_eps': -1.0}}, 'rms_norm_eps'),
        ('rms_norm_eps string', {S: {'rms_norm_eps': '1e-6'}}, 'rms_norm_eps'),
        ('rms_norm_eps null', {S: {'rms_norm_eps': None}}, 'rms_norm_eps'),
        ('rope_theta zero', {S: {'rope_parameters': {'rope_type': 'default', 'rope_theta': 0.0}}}, 'rope_parameters'),
        ('rope_theta negative', {S: {'rope_parameters': {'rope_type': 'default', 'rope_theta': -10000.0}}}, 'rope_parameters'),
        ('rope_theta string', {S: {'rope_parameters': {'rope_type': 'default', 'rope_theta': '10000'}}}, 'rope_parameters'),
        ('rope_parameters linear scaling', {S: {'rope_parameters': {'rope_type': 'linear', 'factor': 2.0, 'rope_theta': 10000.0}}}, None),
        ('rope_parameters not an object', {S: {'rope_parameters': 'x'}}, 'rope_parameters'),
        ('top-level rope_theta zero (transformers 4 layout)', {'drop': ['rope_parameters'], S: {'rope_theta': 0.0}}, 'rope_theta'),
        ('max_position_embeddings zero', {S: {'max_position_embeddings': 0}}, 'max_position_embeddings'),
        ('hidden_act unknown', {S: {'hidden_act': 'nonexistent'}}, 'hidden_act'),
        ('hidden_act number', {S: {'hidden_act': 5}}, 'hidden_act'),
        ('hidden_act gelu', {S: {'hidden_act': 'gelu'}}, None),
        ('tie_word_embeddings string', {S: {'tie_word_embeddings': 'yes'}}, 'tie_word_embeddings'),
        ('initializer_range negative', {S: {'initializer_range': -1.0}}, 'initializer_range'),
        ('eos_token_id list', {S: {'eos_token_id': [1, 2]}}, None),
        ('unknown key', {S: {'some_future_option': [1, {'a': None}]}}, None),
        ('NaN literal for rms_norm_eps', {'text': None, 'nan': 'rms_norm_eps'}, None),
        ('head_dim odd', {S: {'head_dim': 3}}, 'head_dim'),
        ('tie_word_embeddings null', {S: {'tie_word_embeddings': None}}, 'tie_word_embeddings'),
        ('attention_dropout null', {S: {'attention_dropout': None}}, None),
    ],
    'gpt2': [
        ('valid', {}, None),
        ('n_head does not divide n_embd', {S: {'n_head': 3}}, 'n_embd'),
        ('n_positions zero', {S: {'n_positions': 0}}, 'n_positions'),
        ('layer_norm_epsilon string', {S: {'layer_norm_epsilon': '1e-5'}}, 'layer_norm_epsilon'),
        ('activation_function unknown', {S: {'activation_function': 'bogus'}}, 'activation_function'),
        ('n_inner null (4 n_embd)', {S: {'n_inner': None}}, None),
        ('n_inner fractional', {S: {'n_inner': 2.5}}, 'n_inner'),
        ('resid_pdrop above 1', {S: {'resid_pdrop': 1.5}}, 'resid_pdrop'),
        ('embd_pdrop string', {S: {'embd_pdrop': '0.1'}}, 'embd_pdrop'),
        ('scale_attn_weights string', {S: {'scale_attn_weights': 'false'}}, 'scale_attn_weights'),
        ('n_embd fractional', {S: {'n_embd': 16.5}}, 'n_embd'),
        ('vocab_size negative', {S: {'vocab_size': -1}}, 'vocab_size'),
        ('unknown key', {S: {'my_note': 'hello'}}, None),
        ('layer_norm_epsilon null', {S: {'layer_norm_epsilon': None}}, 'layer_norm_epsilon'),
    ],
    'qwen2': [
        ('valid', {}, None),
        ('use_sliding_window string', {S: {'use_sliding_window': 'true'}}, 'use_sliding_window'),
        ('use_sliding_window null', {S: {'use_sliding_window': None}}, 'use_sliding_window'),
        ('rms_norm_eps negative', {S: {'rms_norm_eps': -1e-6}}, 'rms_norm_eps'),
        ('attention_dropout string', {S: {'attention_dropout': '0.0'}}, 'attention_dropout'),
    ],
    'mistral': [
        ('valid', {}, None),
        ('sliding_window string', {S: {'sliding_window': '16'}}, 'sliding_window'),
        ('sliding_window null', {S: {'sliding_window': None}}, None),
        ('sliding_window negative', {S: {'sliding_window': -1}}, 'sliding_window'),
    ],
}


def config_corpus():
    bases = model_bases()
    ids = torch.tensor(IDS)
    cases = []
    for base, mutations in CONFIG_MUTATIONS.items():
        base_text = bases[base]
        for label, m, field in mutations:
            text = text_mutation(base_text, m) if m.get('text', '') is None else apply(base_text, m)

            def run():
                with tempfile.TemporaryDirectory() as d:
                    with open(os.path.join(d, 'config.json'), 'w') as f:
                        f.write(text)
                    cfg = AutoConfig.from_pretrained(d)
                torch.manual_seed(0)
                model = AutoModelForCausalLM.from_config(cfg, attn_implementation='eager').eval()
                return model(input_ids=ids).logits

            v = verdict(run)
            record = {'base': base, 'label': label, 'field': field, **v}
            if 'text' in m:
                record['text'] = text
            else:
                record.update({k: m[k] for k in ('set', 'drop') if k in m})
            cases.append(record)
            print(f'  config {base:7} {label:45} {v["verdict"]} {v.get("error", "")[:90]}')
    return {'generator': 'tools/golden/config_fuzz.py', 'versions': versions(), 'ids': IDS, 'bases': bases, 'cases': cases}


def main():
    write_json(fixture_dir('peft', 'adapter_config_fuzz.json'), adapter_corpus())
    write_json(fixture_dir('nn', 'models', 'config_fuzz.json'), config_corpus())


if __name__ == '__main__':
    main()
