"""Golden values for @webpeft/peft, from Hugging Face PEFT itself.

Every adapter here is made by PEFT's own `get_peft_model`, its weights set to seeded
values (as after training: PEFT's init makes LoRA's B zero and IA3's vectors ones), run
forward and backward by PEFT's layers, merged by PEFT's `merge_adapter`, and written by
PEFT's `save_pretrained`. The base models are plain torch / transformers modules.

Toy model (float64; Hugging Face names, GPT-2 style), used by the LoRA-family and IA3 cases:
  transformer.wte               nn.Embedding(V, D)
  transformer.h.0.attn.c_attn   transformers' Conv1D D -> H  (weight [in, out])
  transformer.h.0.mlp.c_proj    nn.Linear H -> D             (weight [out, in])
  lm_head                       nn.Linear D -> V, no bias
  logits = lm_head(c_proj(tanh(c_attn(wte(ids)))));  loss = mean cross-entropy(logits, labels)

Prompt tuning and prefix tuning need a real causal LM: a tiny transformers
LlamaForCausalLM (grouped-query attention), saved with save_pretrained (float32) into
the fixture, wrapped by PEFT's PeftModelForCausalLM.

Writes, under packages/peft/src/__tests__/fixtures/:
- lora_golden.json: base toy weights, inputs; variants lora / rslora / dora / patterns
  (logits, loss, A/B (and DoRA magnitude) values and gradients, merged weights), and
  `peftAdapter`: PEFT's saved files of the plain LoRA adapter and its inference logits.
- peft_golden.json: IA3 (values, gradients, merged weights, saved files) and prompt
  learning on the tiny LLaMA (prompt tuning, prefix tuning with and without projection:
  logits, loss, gradient of the prompt table, saved files).

Run: .venv-golden/bin/python tools/golden/peft_golden.py   (see tools/golden/README.md)
"""
import copy
import os
import sys

if os.environ.get('PYTHONHASHSEED') != '0':
    # PEFT keeps target_modules in a set: a fixed string hash makes its saved order reproducible.
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, 'PYTHONHASHSEED': '0'})

import peft
import torch
import transformers
from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.pytorch_utils import Conv1D

from common import b64, fixture_dir, flat, saved_files, versions, write_json

DT = torch.float64
V, D, H = 11, 8, 12  # vocab, hidden, c_attn out
B_, T_ = 2, 5
R, ALPHA = 4, 8.0
G = torch.Generator().manual_seed(1234)
LINEARS = ['transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_proj']


def rnd(*shape, scale=0.5, lo=None, hi=None):
    u = torch.rand(*shape, dtype=DT, generator=G)
    return lo + u * (hi - lo) if lo is not None else (u * 2 - 1) * scale


class Node(nn.Module):
    """A module holding named children only (a path segment such as `transformer`, `attn`)."""

    def __init__(self, **children):
        super().__init__()
        for k, m in children.items():
            self.add_module(k, m)


class ToyGPT(nn.Module):
    def __init__(self):
        super().__init__()
        block = Node(attn=Node(c_attn=Conv1D(H, D)), mlp=Node(c_proj=nn.Linear(H, D)))
        self.transformer = Node(wte=nn.Embedding(V, D), h=nn.ModuleList([block]))
        self.lm_head = nn.Linear(D, V, bias=False)

    def forward(self, ids):
        block = self.transformer.h[0]
        return self.lm_head(block.mlp.c_proj(torch.tanh(block.attn.c_attn(self.transformer.wte(ids)))))


BASE = {
    'transformer.wte.weight': rnd(V, D),
    'transformer.h.0.attn.c_attn.weight': rnd(D, H),  # Conv1D [in, out]
    'transformer.h.0.attn.c_attn.bias': rnd(H, scale=0.1),
    'transformer.h.0.mlp.c_proj.weight': rnd(D, H),  # Linear [out, in]
    'transformer.h.0.mlp.c_proj.bias': rnd(D, scale=0.1),
    'lm_head.weight': rnd(V, D),
}
IDS = torch.randint(0, V, (B_, T_), generator=G)
LABELS = torch.randint(0, V, (B_, T_), generator=G)


def toy():
    m = ToyGPT().to(DT)
    m.load_state_dict(BASE)
    return m


def loss_of(logits):
    return nn.functional.cross_entropy(logits.reshape(-1, V), LABELS.reshape(-1))


def module(pm, path):
    return pm.base_model.model.get_submodule(path)


def lora_tensors(layer):
    """(A, B) parameters of PEFT's LoRA layer for adapter 'default' (Linear/Conv1D or Embedding)."""
    if hasattr(layer, 'lora_embedding_A') and 'default' in layer.lora_embedding_A:
        return layer.lora_embedding_A['default'], layer.lora_embedding_B['default']
    return layer.lora_A['default'].weight, layer.lora_B['default'].weight


def base_weight(pm, path):
    return module(pm, path).get_base_layer().weight


def lora_variant(targets, **config):
    """PEFT LoRA on the toy model: seeded A/B (and DoRA magnitude), forward, backward, merge."""
    pm = get_peft_model(toy(), LoraConfig(r=R, lora_alpha=ALPHA, target_modules=targets, lora_dropout=0.0, **config))
    paths = [p for p in ['transformer.wte', *LINEARS] if p.split('.')[-1] in targets]
    with torch.no_grad():
        for p in paths:
            A, Bm = lora_tensors(module(pm, p))
            A.copy_(rnd(*A.shape))
            Bm.copy_(rnd(*Bm.shape))
        magnitude_init = {}
        for p in paths:
            mags = getattr(module(pm, p), 'lora_magnitude_vector', {})
            if 'default' in mags:
                m = mags['default'].weight
                magnitude_init[p] = flat(m)  # PEFT's init: row norms of W (B was 0 at creation)
                m.copy_(m * (1 + rnd(*m.shape, scale=0.2)))  # perturbed, as after training
    logits = pm(IDS)
    loss = loss_of(logits)
    loss.backward()
    out = {
        'useRslora': config.get('use_rslora', False),
        'useDora': config.get('use_dora', False),
        'targets': targets,
        'scaling': module(pm, LINEARS[0]).scaling['default'],
        'scalings': {p: module(pm, p).scaling['default'] for p in paths},
        'ranks': {p: module(pm, p).r['default'] for p in paths},
        'logits': flat(logits),
        'loss': loss.item(),
        'lora': {},
    }
    for p in paths:
        A, Bm = lora_tensors(module(pm, p))
        out['lora'][p] = {'A': flat(A), 'B': flat(Bm), 'gradA': flat(A.grad), 'gradB': flat(Bm.grad)}
    if magnitude_init:
        out['magnitudeInit'] = magnitude_init
        out['magnitude'] = {}
        for p in magnitude_init:
            m = module(pm, p).lora_magnitude_vector['default'].weight
            out['magnitude'][p] = {'value': flat(m), 'grad': flat(m.grad)}
    with torch.no_grad():
        pm.merge_adapter()
        out['merged'] = {p + '.weight': flat(base_weight(pm, p)) for p in paths}
        merged_logits = pm(IDS)
        pm.unmerge_adapter()
    assert torch.allclose(merged_logits, logits, atol=1e-10), 'PEFT merged logits differ from unmerged'
    return out, pm


def saved_adapter(pm):
    """PEFT's save_pretrained of a float32 copy: {'adapter_config.json': text, 'adapter_model.safetensors': base64}."""
    pm32 = copy.deepcopy(pm).to(torch.float32)
    files = saved_files(lambda d: pm32.save_pretrained(d, safe_serialization=True))
    return {'adapter_config.json': files['adapter_config.json'].decode('utf-8'), 'adapter_model.safetensors': b64(files['adapter_model.safetensors'])}


def lora_fixture():
    variants = {}
    targets = ['c_attn', 'c_proj', 'wte']
    variants['lora'], plain = lora_variant(targets)
    variants['rslora'], _ = lora_variant(targets, use_rslora=True)
    variants['dora'], _ = lora_variant(['c_attn', 'c_proj'], use_dora=True)
    variants['patterns'], _ = lora_variant(targets, rank_pattern={'c_proj': 2, 'wte': 3}, alpha_pattern={'c_attn': 2.0, 'wte': 12.0})
    # The saved adapter: the plain variant's weights, with the dropout a training run
    # would configure (off at inference), saved as PEFT saves it.
    pm = get_peft_model(toy(), LoraConfig(r=R, lora_alpha=int(ALPHA), target_modules=targets, lora_dropout=0.1, fan_in_fan_out=True))
    with torch.no_grad():
        for p in ['transformer.wte', *LINEARS]:
            for dst, src in zip(lora_tensors(module(pm, p)), lora_tensors(module(plain, p))):
                dst.copy_(src.to(torch.float32).to(DT))  # the file holds float32: logits from those values
    pm.eval()
    with torch.no_grad():
        logits = pm(IDS)
    adapter = {**saved_adapter(pm), 'logits': flat(logits)}
    return {
        'generator': 'tools/golden/peft_golden.py (PEFT get_peft_model / merge_adapter / save_pretrained, float64)',
        'versions': versions(),
        'sizes': {'vocab': V, 'hidden': D, 'attnOut': H, 'batch': B_, 'seq': T_, 'r': R, 'alpha': ALPHA},
        'base': {k: flat(v) for k, v in BASE.items()},
        'ids': [int(v) for v in IDS.reshape(-1).tolist()],
        'labels': [int(v) for v in LABELS.reshape(-1).tolist()],
        'variants': variants,
        'peftAdapter': adapter,
    }


def ia3_fixture():
    pm = get_peft_model(toy(), IA3Config(target_modules=['c_attn', 'mlp.c_proj'], feedforward_modules=['mlp.c_proj']))
    with torch.no_grad():
        for p in LINEARS:
            v = module(pm, p).ia3_l['default']
            v.copy_(rnd(*v.shape, lo=0.5, hi=1.5).to(torch.float32).to(DT))
    logits = pm(IDS)
    loss = loss_of(logits)
    loss.backward()
    out = {
        'logits': flat(logits),
        'loss': loss.item(),
        'ia3': {p: {'shape': list(module(pm, p).ia3_l['default'].shape), 'value': flat(module(pm, p).ia3_l['default']),
                    'grad': flat(module(pm, p).ia3_l['default'].grad), 'isFeedforward': bool(module(pm, p).is_feedforward)} for p in LINEARS},
    }
    with torch.no_grad():
        pm.merge_adapter()
        out['merged'] = {p + '.weight': flat(base_weight(pm, p)) for p in LINEARS}
        pm.unmerge_adapter()
    pm.eval()
    out['files'] = saved_adapter(pm)
    return out


# ---------------------------------------------------------------- prompt learning

LLAMA = dict(vocab_size=32, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=32, rms_norm_eps=1e-6, rope_theta=10000.0,
             tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
PL_B, PL_T = 2, 5


def tiny_llama():
    cfg = LlamaConfig(**LLAMA)
    cfg._attn_implementation = 'eager'
    torch.manual_seed(7)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=G) if 'norm' in name else 0.3 * torch.randn(p.shape, generator=G))
    return model


def prompt_case(base_state, cfg_cls, **config):
    model = tiny_llama()
    model.load_state_dict(base_state)
    pm = get_peft_model(model, cfg_cls(task_type='CAUSAL_LM', **config))
    table = pm.prompt_encoder['default'].embedding.weight
    with torch.no_grad():
        table.copy_(torch.randn(table.shape, generator=G).to(torch.float32))
    out = pm(input_ids=PL_IDS, labels=PL_IDS)
    out.loss.backward()
    res = {
        'config': {k: v for k, v in config.items()},
        'logits': flat(out.logits),
        'logitsShape': list(out.logits.shape),
        'loss': out.loss.item(),
    }
    if not config.get('prefix_projection', False):
        res['table'] = {'shape': list(table.shape), 'value': flat(table), 'grad': flat(table.grad)}
    pm.eval()
    res['files'] = saved_adapter(pm)
    with torch.no_grad():
        res['inferenceLogits'] = flat(pm(input_ids=PL_IDS).logits)
    return res


PL_IDS = None


def prompt_fixture():
    global PL_IDS
    model = tiny_llama()
    base_state = copy.deepcopy(model.state_dict())
    files = saved_files(lambda d: model.save_pretrained(d, safe_serialization=True))
    PL_IDS = torch.randint(3, LLAMA['vocab_size'], (PL_B, PL_T), generator=G)
    return {
        'checkpoint': {'config.json': files['config.json'].decode('utf-8'), 'model.safetensors': b64(files['model.safetensors'])},
        'inputIds': PL_IDS.tolist(),
        'promptTuning': prompt_case(base_state, PromptTuningConfig, num_virtual_tokens=3, prompt_tuning_init='RANDOM'),
        'prefixTuning': prompt_case(base_state, PrefixTuningConfig, num_virtual_tokens=4),
        'prefixProjection': prompt_case(base_state, PrefixTuningConfig, num_virtual_tokens=4, prefix_projection=True, encoder_hidden_size=8),
    }


if __name__ == '__main__':
    lora = lora_fixture()
    write_json(fixture_dir('peft', 'lora_golden.json'), lora)
    write_json(fixture_dir('peft', 'peft_golden.json'), {
        'generator': 'tools/golden/peft_golden.py (PEFT get_peft_model / merge_adapter / save_pretrained)',
        'versions': versions(),
        'ia3': ia3_fixture(),
        'promptLearning': prompt_fixture(),
    })
    print(f'transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}')
