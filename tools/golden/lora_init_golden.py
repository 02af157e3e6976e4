"""Golden values for PiSSA, OLoRA and LoftQ LoRA initialisation, from PEFT 0.21's own init code.

A tiny transformers LlamaForCausalLM (seeded, saved with save_pretrained into the fixture) is
wrapped by PEFT's get_peft_model with LoraConfig(init_lora_weights=...), which runs PEFT's
`LoraLayer.pissa_init` / `olora_init` / `loftq_init` on every target. The fixture records, per target, the
rewritten base weight and `get_delta_weight` (scaling * B A: sign-free, unlike A and B), and
the logits of the initialised model:
- 'pissa' (exact SVD): deterministic;
- 'pissa_niter_4' (torch.svd_lowrank, random): the exact top-r singular values of each base
  weight and those of PEFT's delta, so the test can hold ours to torch's accuracy;
- 'olora' (torch.linalg.qr, reduced): deterministic;
- 'loftq' (loftq_bits 4, loftq_iter 1 and 3). PEFT 0.21 quantizes with bitsandbytes'
  Params4bit (NF4, blocksize 64, compress_statistics=False) on a CUDA device; bitsandbytes
  does not install here, so PEFT's own `loftq_init` source runs with its compute device pinned
  to the cpu and bitsandbytes replaced by quant_reference.py's NF4 codec (an independent
  restatement of bitsandbytes' rules, byte-identical to @webpeft/quant's), and LoraConfig's
  check that scipy is importable (loftq_init does not use it) is answered yes. Everything else
  (the alternating loop, torch.linalg.svd, the L/R split, A = R, B = L) is PEFT's code.
Also: the logits of the full-precision model, for the LoftQ quantization-error check.

Run: .venv-golden/bin/python tools/golden/lora_init_golden.py   (see tools/golden/README.md)
"""
import importlib.util
import inspect
import os
import sys
import types

if os.environ.get('PYTHONHASHSEED') != '0':
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, 'PYTHONHASHSEED': '0'})

import numpy as np
import peft
import peft.tuners.lora.layer as lora_layer
import peft.utils.loftq_utils as loftq_utils
import torch
import transformers
from peft import LoftQConfig, LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import LlamaConfig, LlamaForCausalLM

import quant_reference as qr
from common import b64, b64f32, fixture_dir, saved_files, versions, write_json

G = torch.Generator().manual_seed(8642)
LLAMA = dict(vocab_size=32, hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=32, rms_norm_eps=1e-6, rope_theta=10000.0,
             tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
TARGETS = ['q_proj', 'v_proj', 'down_proj']


class _Params4bit:
    """The slice of bitsandbytes.nn.Params4bit that loftq_init uses, over quant_reference's NF4."""

    def __init__(self, data, requires_grad=False, compress_statistics=False, quant_type='nf4'):
        assert quant_type == 'nf4' and not compress_statistics
        x = data.detach().to(torch.float32).contiguous().numpy().reshape(-1)
        packed, absmax = qr.quantize_4bit(x, 64, 'nf4')
        self.data = packed
        self.quant_state = (absmax, x.size, tuple(data.shape))

    def to(self, device):
        return self


def _dequantize_4bit(packed, state):
    absmax, n, shape = state
    return torch.from_numpy(qr.dequantize_4bit(packed, absmax, n, 64, 'nf4').reshape(shape).copy())


def install_cpu_loftq():
    """PEFT's loftq_init with its compute device pinned to the cpu and the bitsandbytes stand-in."""
    bnb = types.SimpleNamespace(
        nn=types.SimpleNamespace(Params4bit=_Params4bit),
        functional=types.SimpleNamespace(dequantize_4bit=_dequantize_4bit))
    src = inspect.getsource(loftq_utils.loftq_init)
    pinned = src.replace('compute_device = "xpu" if is_xpu_available() else "cuda"', 'compute_device = "cpu"')
    pinned = pinned.replace('import bitsandbytes as bnb', 'pass  # the stand-in `bnb` below')
    assert pinned.count('compute_device = "cpu"') == 1 and 'import bitsandbytes' not in pinned, 'PEFT loftq_init changed: update the pins'
    env = dict(loftq_utils.__dict__, bnb=bnb, is_bnb_available=lambda: True, is_bnb_4bit_available=lambda: True, clear_device_cache=lambda: None)
    exec(pinned, env)
    lora_layer.loftq_init = env['loftq_init']
    # LoraConfig refuses 'loftq' unless scipy is importable, which loftq_init never uses.
    find_spec = importlib.util.find_spec
    importlib.util.find_spec = lambda name, *a: True if name == 'scipy' else find_spec(name, *a)


def tiny():
    cfg = LlamaConfig(**LLAMA)
    cfg._attn_implementation = 'eager'
    torch.manual_seed(7)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=G) if 'norm' in name else 0.3 * torch.randn(p.shape, generator=G))
    return model


def init_case(state, ids, **config):
    model = tiny()
    model.load_state_dict(state)
    torch.manual_seed(3)
    pm = get_peft_model(model, LoraConfig(r=4, lora_alpha=4 if config.get('init_lora_weights') == 'loftq' else 8, target_modules=TARGETS, **config)).eval()
    out = {'modules': {}}
    with torch.no_grad():
        for path, m in pm.base_model.model.named_modules():
            if not isinstance(m, LoraLayer):
                continue
            d = m.get_delta_weight('default')
            w = m.get_base_layer().weight
            rec = {'shape': list(w.shape), 'base': b64f32(w), 'delta': b64f32(d)}
            if config.get('init_lora_weights', '').startswith('pissa_niter'):
                orig = state[path + '.weight']
                rec['exactTopS'] = torch.linalg.svdvals(orig.double())[:4].tolist()
                rec['peftDeltaS'] = torch.linalg.svdvals(d.double())[:4].tolist()
            out['modules'][path] = rec
        out['logits'] = b64f32(pm(input_ids=ids).logits)
    return out


def main():
    install_cpu_loftq()
    model = tiny()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    files = saved_files(lambda d: model.save_pretrained(d, safe_serialization=True))
    ids = torch.randint(3, 32, (2, 6), generator=G)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    write_json(fixture_dir('peft', 'lora_init_golden.json'), {
        'generator': 'tools/golden/lora_init_golden.py (PEFT get_peft_model with init_lora_weights pissa / pissa_niter_4 / olora / loftq)',
        'versions': versions(),
        'checkpoint': {'config.json': files['config.json'].decode('utf-8'), 'model.safetensors': b64(files['model.safetensors'])},
        'inputIds': ids.tolist(),
        'targets': TARGETS,
        'baseLogits': b64f32(logits),
        'pissa': init_case(state, ids, init_lora_weights='pissa'),
        'pissaNiter4': init_case(state, ids, init_lora_weights='pissa_niter_4'),
        'olora': init_case(state, ids, init_lora_weights='olora'),
        'loftq1': init_case(state, ids, init_lora_weights='loftq', loftq_config=LoftQConfig(loftq_bits=4, loftq_iter=1)),
        'loftq3': init_case(state, ids, init_lora_weights='loftq', loftq_config=LoftQConfig(loftq_bits=4, loftq_iter=3)),
    })
    print(f'transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}')


if __name__ == '__main__':
    main()
