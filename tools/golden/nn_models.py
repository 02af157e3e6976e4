"""Golden numbers for @webpeft/nn's GPT-2 and LLaMA-family models, from transformers itself.

Each model is transformers' own class (GPT2LMHeadModel, LlamaForCausalLM,
Qwen2ForCausalLM, MistralForCausalLM) built from a small config, given seeded random
weights (larger than the library's init so every layer matters), and saved with
`save_pretrained(safe_serialization=True)`: the fixture holds the saved config.json and
model.safetensors bytes as written, plus transformers' results of one forward and
backward pass with eager attention: logits, causal-LM loss (labels -100 on padding) and
the gradient of every parameter.

- GPT-2 is saved in float32; the LLaMA family in bfloat16 (as released checkpoints), its
  reference computed in float32 from the bf16-rounded weights (what a loader that
  decodes bf16 to f32 computes with).
- Row 1 is left-padded by 2 tokens. Query rows that see only padding are
  convention-dependent, so tests compare logits at kept positions, and the first kept
  token (scored from the last pad position) is not a label.
- Mistral uses an explicit head_dim (16) different from hidden_size / heads (8), and a
  sliding window longer than the inputs.
- GPT-2 is also saved as the bare GPT2Model (`bareModelSafetensors`: keys without the
  `transformer.` prefix, as the original GPT-2 checkpoints are laid out).
- LLaMA also gets a prefix-tuning case: per-layer past keys/values [B, H_kv, P, Dh] passed
  to the model as a DynamicCache (what PEFT's prefix tuning hands the model), the mask
  covering prefix + tokens; gradients of the prefix tensors.

Run: .venv-golden/bin/python tools/golden/nn_models.py   (see tools/golden/README.md)
Output: packages/nn/src/__tests__/fixtures/models/{gpt2,llama,qwen2,mistral}.json
"""
import copy
import json

import torch
import transformers
from transformers import (DynamicCache, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

from common import b64, b64f32, fixture_dir, saved_files, versions, write_json

OUT = fixture_dir('nn', 'models')


def seeded_weights(model, g):
    """Overwrites every parameter in named_parameters() order with seeded normal values:
    norms around 1, biases small, embeddings larger than projections."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'norm' in name or 'ln_' in name:
                v = (1 + 0.1 * torch.randn(p.shape, generator=g)) if name.endswith('weight') else 0.1 * torch.randn(p.shape, generator=g)
            elif name.endswith('bias'):
                v = 0.1 * torch.randn(p.shape, generator=g)
            elif 'wte' in name or 'embed_tokens' in name:
                v = 0.5 * torch.randn(p.shape, generator=g)
            elif 'wpe' in name or 'lm_head' in name:
                v = 0.3 * torch.randn(p.shape, generator=g)
            else:
                v = 0.2 * torch.randn(p.shape, generator=g)
            p.copy_(v)


def inputs(g, vocab):
    B, T = 2, 8
    ids = torch.randint(3, vocab, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.int64)
    mask[1, :2] = 0
    ids[1, :2] = 0
    labels = ids.clone()
    labels[mask == 0] = -100
    labels[1, 2] = -100
    return ids, mask, labels


def build(name, g):
    common_llama = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, hidden_act='silu', max_position_embeddings=64, rms_norm_eps=1e-6,
                        bos_token_id=1, eos_token_id=2, attention_dropout=0.0)
    if name == 'gpt2':
        cfg = GPT2Config(vocab_size=50, n_positions=32, n_embd=32, n_layer=2, n_head=4, n_inner=64, activation_function='gelu_new',
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5, bos_token_id=0, eos_token_id=0)
        cls, bf16 = GPT2LMHeadModel, False
    elif name == 'llama':
        cfg = LlamaConfig(**common_llama, rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False)
        cls, bf16 = LlamaForCausalLM, True
    elif name == 'qwen2':
        cfg = Qwen2Config(**common_llama, rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False)
        cls, bf16 = Qwen2ForCausalLM, True
    elif name == 'mistral':
        cfg = MistralConfig(**{**common_llama, 'max_position_embeddings': 128}, head_dim=16, rope_theta=10000.0,
                            sliding_window=32, tie_word_embeddings=False)
        cls, bf16 = MistralForCausalLM, True
    cfg._attn_implementation = 'eager'
    cfg.use_cache = False
    model = cls(cfg).eval()
    seeded_weights(model, g)
    if bf16:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    to_save = copy.deepcopy(model).to(torch.bfloat16) if bf16 else model
    files = saved_files(lambda d: to_save.save_pretrained(d, safe_serialization=True))
    return model, files


def run(name, g):
    model, files = build(name, g)
    assert sorted(files) == ['config.json', 'generation_config.json', 'model.safetensors'] or sorted(files) == ['config.json', 'model.safetensors'], sorted(files)
    ids, mask, labels = inputs(g, model.config.vocab_size)
    model.zero_grad()
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    fx = {
        'description': f'tiny random {model.config.model_type} checkpoint saved by transformers {transformers.__version__} '
                       f'({type(model).__name__}.save_pretrained) and its eager forward/backward (tools/golden/nn_models.py)',
        'versions': versions(),
        'files': {'config.json': files['config.json'].decode('utf-8'), 'model.safetensors': b64(files['model.safetensors'])},
        'input_ids': ids.tolist(),
        'attention_mask': mask.tolist(),
        'labels': labels.tolist(),
        'logits': b64f32(out.logits),
        'loss': out.loss.item(),
        'grads': {k: b64f32(p.grad) for k, p in model.named_parameters()},
    }
    if name == 'gpt2':
        # The bare GPT2Model (keys without 'transformer.', no lm_head): the layout of the
        # original GPT-2 checkpoints on the Hub.
        bare = saved_files(lambda d: model.transformer.save_pretrained(d, safe_serialization=True))
        fx['bareModelSafetensors'] = b64(bare['model.safetensors'])
    if name == 'llama':
        fx['prefix'] = prefix_case(model, g, ids, mask, labels)
    write_json(f'{OUT}/{name}.json', fx)
    print(f'  {name}: loss {out.loss.item():.6f}')


def prefix_case(model, g, ids, mask, labels):
    cfg = model.config
    B, P = ids.shape[0], 3
    Hkv, Dh = cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads
    shape = [B, Hkv, P, Dh]
    keys = [torch.randn(shape, generator=g).requires_grad_(True) for _ in range(cfg.num_hidden_layers)]
    values = [torch.randn(shape, generator=g).requires_grad_(True) for _ in range(cfg.num_hidden_layers)]
    cache = DynamicCache(config=cfg)
    for i in range(cfg.num_hidden_layers):
        cache.update(keys[i], values[i], i)
    model.zero_grad()
    full_mask = torch.cat([torch.ones(B, P, dtype=mask.dtype), mask], dim=1)
    out = model(input_ids=ids, attention_mask=full_mask, labels=labels, past_key_values=cache, use_cache=True)
    out.loss.backward()
    return {
        'shape': shape,
        'keys': [b64f32(k) for k in keys],
        'values': [b64f32(v) for v in values],
        'logits': b64f32(out.logits),
        'loss': out.loss.item(),
        'key_grads': [b64f32(k.grad) for k in keys],
        'value_grads': [b64f32(v.grad) for v in values],
    }


if __name__ == '__main__':
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    for name in ['gpt2', 'llama', 'qwen2', 'mistral']:
        run(name, g)
