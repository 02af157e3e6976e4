"""Golden values for LoRA adapter combination (PEFT 0.21's `add_weighted_adapter`).

A tiny transformers LlamaForCausalLM (seeded, saved with save_pretrained into the fixture)
gets three LoRA adapters from PEFT's get_peft_model / add_adapter, their weights set to
seeded values (as after training), saved with PEFT's save_pretrained (the test loads these
files). Adapter `p3` skips `down_proj` and `embed_tokens`, so modules some adapters lack are
covered. For every combination type (linear, cat, svd, ties, ties_svd, magnitude_prune,
magnitude_prune_svd, the single-adapter rule; negative weights) PEFT's own
add_weighted_adapter builds the new adapter and the fixture records, per wrapped module,
its `get_delta_weight` (scaling * B A: `[out, in]`, `[vocab, dim]` for the embedding) and
the logits with it active.

DARE (`dare_linear`, `dare_ties` and their _svd forms) draws `torch.bernoulli` masks. Here
they come from a seeded generator, are recorded in PEFT's call order (module by module;
for the non-SVD forms the lora_A tensors of the present adapters, then their lora_B; for
the SVD forms one mask per adapter delta) and stored per module, so the test can feed the
same masks to our merge and expect PEFT's result exactly.

`svd_clamp` (a quantile of the entries of U S and Vh) depends on the sign torch's SVD picks for
each singular pair, so its case also records torch's factors per module: the test applies our
clamp to them and expects PEFT's delta. `svd_full_matrices=False` cases are compared as usual.

Run: .venv-golden/bin/python tools/golden/merge_golden.py   (see tools/golden/README.md)
"""
import os
import sys

if os.environ.get('PYTHONHASHSEED') != '0':
    # PEFT keeps target_modules in a set: a fixed string hash makes its saved order reproducible.
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, 'PYTHONHASHSEED': '0'})

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import LlamaConfig, LlamaForCausalLM

from common import b64, b64f32, fixture_dir, saved_files, versions, write_json

G = torch.Generator().manual_seed(2468)
LLAMA = dict(vocab_size=32, hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=32, rms_norm_eps=1e-6, rope_theta=10000.0,
             tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
ADAPTERS = {
    'p1': dict(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj', 'down_proj', 'embed_tokens']),
    'p2': dict(r=4, lora_alpha=4, target_modules=['q_proj', 'v_proj', 'down_proj', 'embed_tokens']),
    'p3': dict(r=4, lora_alpha=16, target_modules=['q_proj', 'v_proj']),
}
W3 = [0.7, -0.4, 0.5]
CASES = [
    ('linear', ['p1', 'p2', 'p3'], W3, {}),
    ('cat', ['p1', 'p2', 'p3'], W3, {}),
    ('svd', ['p1', 'p2', 'p3'], W3, {}),
    ('svd', ['p1', 'p2'], [0.9, 0.6], {'svd_rank': 3}),
    ('ties', ['p1', 'p2', 'p3'], W3, {'density': 0.5}),
    ('ties', ['p1', 'p2', 'p3'], W3, {'density': 0.6, 'majority_sign_method': 'frequency'}),
    ('ties_svd', ['p1', 'p2', 'p3'], W3, {'density': 0.5}),
    ('magnitude_prune', ['p1', 'p2', 'p3'], W3, {'density': 0.4}),
    ('magnitude_prune_svd', ['p1', 'p2', 'p3'], W3, {'density': 0.4}),
    # PEFT's single-adapter rule: 'cat' is combined as 'linear'.
    ('cat', ['p2'], [-0.8], {}),
    ('dare_linear', ['p1', 'p2', 'p3'], W3, {'density': 0.5}),
    ('dare_ties', ['p1', 'p2', 'p3'], W3, {'density': 0.6}),
    ('dare_linear_svd', ['p1', 'p2', 'p3'], W3, {'density': 0.5}),
    ('dare_ties_svd', ['p1', 'p2', 'p3'], W3, {'density': 0.5, 'majority_sign_method': 'frequency'}),
    # svd_full_matrices=False: the rank-r result uses only the vectors a thin SVD also has.
    ('svd', ['p1', 'p2', 'p3'], W3, {'svd_full_matrices': False}),
    ('ties_svd', ['p1', 'p2'], [0.9, 0.6], {'density': 0.5, 'svd_rank': 3, 'svd_full_matrices': False}),
    # svd_clamp: U S and Vh clamped at a quantile of their entries.
    ('svd', ['p1', 'p2', 'p3'], W3, {'svd_clamp': 0.9}),
]


class SvdRecorder:
    """Records every torch.linalg.svd result (U, S, Vh) while active."""

    def __enter__(self):
        self.calls = []
        self.orig = torch.linalg.svd

        def svd(*a, **k):
            out = self.orig(*a, **k)
            self.calls.append(tuple(t.detach().clone() for t in out))
            return out
        torch.linalg.svd = svd
        return self

    def __exit__(self, *exc):
        torch.linalg.svd = self.orig


def flat(t):
    """A tensor as a flat list, 9 significant digits (the tests compare float32 results)."""
    return [float('%.9g' % v) for v in t.detach().reshape(-1).tolist()]


def tiny():
    cfg = LlamaConfig(**LLAMA)
    cfg._attn_implementation = 'eager'
    torch.manual_seed(7)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=G) if 'norm' in name else 0.3 * torch.randn(p.shape, generator=G))
    return model


def lora_modules(pm, adapter):
    """(path without PEFT's prefix, layer) of every LoRA layer holding `adapter`, in named_modules order."""
    out = []
    for key, m in pm.base_model.model.named_modules():
        if isinstance(m, LoraLayer) and (adapter in m.lora_A or adapter in m.lora_embedding_A):
            out.append((key, m))
    return out


class MaskRecorder:
    """Replaces torch.bernoulli (used only by PEFT's random_pruning here) with a seeded, recorded draw."""

    def __init__(self):
        self.gen = torch.Generator().manual_seed(97531)
        self.masks = []
        self.orig = torch.bernoulli

    def __call__(self, p, *args, **kwargs):
        mask = self.orig(p, generator=self.gen)
        self.masks.append(mask.clone())
        return mask

    def __enter__(self):
        torch.bernoulli = self
        return self

    def __exit__(self, *exc):
        torch.bernoulli = self.orig


def main():
    model = tiny()
    base_files = saved_files(lambda d: model.save_pretrained(d, safe_serialization=True))
    ids = torch.randint(3, 32, (2, 5), generator=G)
    names = list(ADAPTERS)
    pm = get_peft_model(model, LoraConfig(**ADAPTERS[names[0]]), adapter_name=names[0])
    for n in names[1:]:
        pm.add_adapter(n, LoraConfig(**ADAPTERS[n]))
    with torch.no_grad():
        for pname, p in pm.named_parameters():
            if 'lora_' in pname:
                p.copy_(0.4 * torch.randn(p.shape, generator=G))
    pm.eval()
    adapter_files = {}
    for n in names:
        files = saved_files(lambda d, n=n: pm.save_pretrained(d, selected_adapters=[n], safe_serialization=True, save_embedding_layers=False))
        sub = '' if n == 'default' else f'{n}/'
        adapter_files[n] = {'adapter_config.json': files[f'{sub}adapter_config.json'].decode('utf-8'),
                            'adapter_model.safetensors': b64(files[f'{sub}adapter_model.safetensors'])}
    cases = []
    for i, (ctype, adapters, weights, kw) in enumerate(CASES):
        name = f'm{i}'
        with MaskRecorder() as rec, SvdRecorder() as svds:
            pm.add_weighted_adapter(adapters, weights, name, combination_type=ctype, **kw)
        modules = lora_modules(pm, name)
        case = {'combinationType': ctype, 'adapters': adapters, 'weights': weights,
                'options': {k: v for k, v in kw.items()}, 'r': pm.peft_config[name].r,
                'deltas': {}, 'masks': {}}
        if rec.masks:
            # Split the draws by module in PEFT's order (see the docstring).
            k = 0
            for path, m in modules:
                present = [a for a in adapters if a in m.lora_A or a in m.lora_embedding_A]
                count = len(present) if ctype.endswith('_svd') else 2 * len(present)
                case['masks'][path] = [{'shape': list(t.shape), 'bits': ''.join(str(int(v)) for v in t.reshape(-1).tolist())} for t in rec.masks[k:k + count]]
                k += count
            assert k == len(rec.masks), (k, len(rec.masks))
        if 'svd_clamp' in kw:
            # The clamp's quantile depends on the sign torch's SVD picks for each singular pair:
            # keep torch's factors (U_r S_r, Vh_r) per module, in PEFT's module order.
            r = pm.peft_config[name].r
            assert len(svds.calls) == len(modules), (len(svds.calls), len(modules))
            case['factors'] = {}
            for (path, _), (U, S, Vh) in zip(modules, svds.calls):
                case['factors'][path] = {'U': b64f32(U[:, :r] @ torch.diag(S[:r])), 'Vh': b64f32(Vh[:r, :]), 'rows': U.shape[0], 'cols': Vh.shape[1]}
        with torch.no_grad():
            for path, m in modules:
                d = m.get_delta_weight(name)
                case['deltas'][path] = {'shape': list(d.shape), 'f32': b64f32(d)}
            pm.set_adapter(name)
            case['logits'] = b64f32(pm(input_ids=ids).logits)
        cases.append(case)
    write_json(fixture_dir('peft', 'merge_golden.json'), {
        'generator': 'tools/golden/merge_golden.py (PEFT get_peft_model / add_weighted_adapter / save_pretrained)',
        'versions': versions(),
        'checkpoint': {'config.json': base_files['config.json'].decode('utf-8'), 'model.safetensors': b64(base_files['model.safetensors'])},
        'inputIds': ids.tolist(),
        'adapters': adapter_files,
        'cases': cases,
    })
    print(f'transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}')


if __name__ == '__main__':
    main()
