"""Golden numbers for @webpeft/nn's GPT-2 and LLaMA-family models.

Writes tiny random checkpoints in Hugging Face layout (config.json + model.safetensors,
the safetensors bytes written by hand) and the PyTorch reference results of a forward
and backward pass: logits, causal-LM loss, and the gradient of every parameter.
The forward passes below re-implement Hugging Face's modeling_gpt2.py and
modeling_llama.py (eager attention) in plain torch, following their semantics:

- GPT-2: Conv1D weights [in, out]; gelu_new; scores / sqrt(Dh); causal mask with
  torch.where(causal, w, finfo.min) then + (1 - mask) * finfo.min (padding); tied lm_head.
- LLaMA: RMSNorm in f32; RoPE with rotate_half, inv_freq = 1 / theta^(arange(0, d, 2) / d),
  positions arange(past, past + T); repeat_kv for grouped-query attention; additive mask
  of finfo.min where causal or padded; SwiGLU MLP; Qwen2 adds q/k/v biases.
- Query rows that see only padding are convention-dependent (HF's GPT-2 eager path
  yields -inf + finfo.min mixes there); tests compare logits at kept positions and no
  label is scored from a pad position.
- Loss: labels padded with -100 on the right and shifted left, mean cross-entropy over
  labels != -100 (transformers' ForCausalLMLoss).
- Prefix tuning (PEFT): per-layer prefix keys/values [B, H_kv, P, Dh] prepended to the
  (rotated) keys, positions offset by P, ones prepended to the attention mask.

Run: /usr/bin/python3 tools/golden/nn_models.py  (torch >= 1.13, numpy)
Output: packages/nn/src/__tests__/fixtures/models/{gpt2,llama,qwen2}.json
"""
import base64
import json
import math
import os
import struct

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'packages', 'nn', 'src', '__tests__', 'fixtures', 'models')
MIN = torch.finfo(torch.float32).min


def b64f32(t):
    return base64.b64encode(t.detach().to(torch.float32).contiguous().numpy().astype('<f4').tobytes()).decode()


def safetensors_bytes(tensors, dtype):
    """tensors: list of (key, f32 tensor); dtype 'F32' or 'BF16'. Returns bytes."""
    header = {'__metadata__': {'format': 'pt'}}
    chunks = []
    offset = 0
    for key, t in tensors:
        t = t.detach().contiguous()
        if dtype == 'BF16':
            raw = t.to(torch.bfloat16).view(torch.int16).numpy().astype('<i2').tobytes()
        else:
            raw = t.to(torch.float32).numpy().astype('<f4').tobytes()
        header[key] = {'dtype': dtype, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    return struct.pack('<Q', len(h)) + h + b''.join(chunks)


def causal_lm_loss(logits, labels):
    labels = torch.nn.functional.pad(labels, (0, 1), value=-100)[:, 1:]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)


# ---------------------------------------------------------------- GPT-2

def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_forward(p, cfg, ids, mask):
    B, T = ids.shape
    d, H = cfg['n_embd'], cfg['n_head']
    Dh = d // H
    eps = cfg['layer_norm_epsilon']
    pos = torch.arange(T)
    x = p['transformer.wte.weight'][ids] + p['transformer.wpe.weight'][pos]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))[None, None]
    ext = (1.0 - mask[:, None, None, :].float()) * MIN
    for i in range(cfg['n_layer']):
        pre = f'transformer.h.{i}.'
        h = torch.nn.functional.layer_norm(x, (d,), p[pre + 'ln_1.weight'], p[pre + 'ln_1.bias'], eps)
        qkv = h @ p[pre + 'attn.c_attn.weight'] + p[pre + 'attn.c_attn.bias']
        q, k, v = qkv.split(d, dim=2)
        heads = lambda t: t.view(B, T, H, Dh).permute(0, 2, 1, 3)
        q, k, v = heads(q), heads(k), heads(v)
        w = q @ k.transpose(-1, -2)
        w = w / torch.full([], v.size(-1) ** 0.5, dtype=w.dtype)
        w = torch.where(causal, w, torch.full([], MIN, dtype=w.dtype))
        w = w + ext
        w = torch.softmax(w, dim=-1)
        o = (w @ v).permute(0, 2, 1, 3).reshape(B, T, d)
        o = o @ p[pre + 'attn.c_proj.weight'] + p[pre + 'attn.c_proj.bias']
        x = x + o
        h = torch.nn.functional.layer_norm(x, (d,), p[pre + 'ln_2.weight'], p[pre + 'ln_2.bias'], eps)
        h = gelu_new(h @ p[pre + 'mlp.c_fc.weight'] + p[pre + 'mlp.c_fc.bias'])
        x = x + (h @ p[pre + 'mlp.c_proj.weight'] + p[pre + 'mlp.c_proj.bias'])
    x = torch.nn.functional.layer_norm(x, (d,), p['transformer.ln_f.weight'], p['transformer.ln_f.bias'], eps)
    return x @ p['transformer.wte.weight'].T


def make_gpt2(g):
    cfg = {
        'model_type': 'gpt2', 'architectures': ['GPT2LMHeadModel'], 'vocab_size': 50, 'n_positions': 32, 'n_embd': 32,
        'n_layer': 2, 'n_head': 4, 'n_inner': 64, 'activation_function': 'gelu_new', 'resid_pdrop': 0.0,
        'embd_pdrop': 0.0, 'attn_pdrop': 0.0, 'layer_norm_epsilon': 1e-5, 'tie_word_embeddings': True,
        'bos_token_id': 0, 'eos_token_id': 0,
    }
    d, V, inner = cfg['n_embd'], cfg['vocab_size'], cfg['n_inner']
    r = lambda *s, std=0.2: (torch.randn(*s, generator=g) * std)
    p = {'transformer.wte.weight': r(V, d, std=0.5), 'transformer.wpe.weight': r(cfg['n_positions'], d, std=0.3)}
    for i in range(cfg['n_layer']):
        pre = f'transformer.h.{i}.'
        p[pre + 'ln_1.weight'] = 1 + r(d, std=0.1)
        p[pre + 'ln_1.bias'] = r(d, std=0.1)
        p[pre + 'attn.c_attn.weight'] = r(d, 3 * d)
        p[pre + 'attn.c_attn.bias'] = r(3 * d, std=0.1)
        p[pre + 'attn.c_proj.weight'] = r(d, d)
        p[pre + 'attn.c_proj.bias'] = r(d, std=0.1)
        p[pre + 'ln_2.weight'] = 1 + r(d, std=0.1)
        p[pre + 'ln_2.bias'] = r(d, std=0.1)
        p[pre + 'mlp.c_fc.weight'] = r(d, inner)
        p[pre + 'mlp.c_fc.bias'] = r(inner, std=0.1)
        p[pre + 'mlp.c_proj.weight'] = r(inner, d)
        p[pre + 'mlp.c_proj.bias'] = r(d, std=0.1)
    p['transformer.ln_f.weight'] = 1 + r(d, std=0.1)
    p['transformer.ln_f.bias'] = r(d, std=0.1)
    # The original GPT-2 files store the bare GPT2Model (no 'transformer.' prefix, no
    # lm_head) plus the causal-mask buffers attn.bias / attn.masked_bias.
    file_tensors = []
    n = cfg['n_positions']
    for k, v in p.items():
        file_tensors.append((k[len('transformer.'):], v))
    for i in range(cfg['n_layer']):
        file_tensors.append((f'h.{i}.attn.bias', torch.tril(torch.ones(n, n)).view(1, 1, n, n)))
        file_tensors.append((f'h.{i}.attn.masked_bias', torch.tensor(-1e4)))
    return cfg, p, safetensors_bytes(file_tensors, 'F32'), gpt2_forward


# ---------------------------------------------------------------- LLaMA family

def rms_norm(x, w, eps):
    var = x.float().pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def llama_forward(p, cfg, ids, mask, prefix=None):
    B, T = ids.shape
    d, H, Hkv = cfg['hidden_size'], cfg['num_attention_heads'], cfg['num_key_value_heads']
    Dh = d // H
    eps = cfg['rms_norm_eps']
    P = 0 if prefix is None else prefix[0][0].shape[2]
    L = P + T
    if prefix is not None:
        mask = torch.cat([torch.ones(B, P, dtype=mask.dtype), mask], dim=1)
    inv_freq = 1.0 / (cfg['rope_theta'] ** (torch.arange(0, Dh, 2, dtype=torch.int64).float() / Dh))
    position_ids = torch.arange(P, P + T)[None].expand(B, T)
    freqs = (inv_freq[None, :, None].float().expand(B, -1, 1) @ position_ids[:, None, :].float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]
    # transformers' _prepare_4d_causal_attention_mask_with_cache_position (eager).
    causal = torch.full((T, L), MIN)
    causal = torch.triu(causal, diagonal=1)
    causal *= torch.arange(L) > (torch.arange(T) + P).reshape(-1, 1)
    causal = causal[None, None].expand(B, 1, -1, -1).clone()
    padding = causal + mask[:, None, None, :].float()
    causal = causal.masked_fill(padding == 0, MIN)
    x = p['model.embed_tokens.weight'][ids]
    n_rep = H // Hkv
    for i in range(cfg['num_hidden_layers']):
        pre = f'model.layers.{i}.'
        h = rms_norm(x, p[pre + 'input_layernorm.weight'], eps)
        lin = lambda name, t: t @ p[pre + name + '.weight'].T + (p[pre + name + '.bias'] if pre + name + '.bias' in p else 0)
        q = lin('self_attn.q_proj', h).view(B, T, H, Dh).transpose(1, 2)
        k = lin('self_attn.k_proj', h).view(B, T, Hkv, Dh).transpose(1, 2)
        v = lin('self_attn.v_proj', h).view(B, T, Hkv, Dh).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if prefix is not None:
            k = torch.cat([prefix[i][0], k], dim=2)
            v = torch.cat([prefix[i][1], v], dim=2)
        k = k[:, :, None].expand(B, Hkv, n_rep, L, Dh).reshape(B, H, L, Dh)
        v = v[:, :, None].expand(B, Hkv, n_rep, L, Dh).reshape(B, H, L, Dh)
        w = (q @ k.transpose(2, 3)) * (Dh ** -0.5) + causal
        w = torch.softmax(w, dim=-1, dtype=torch.float32)
        o = (w @ v).transpose(1, 2).reshape(B, T, d)
        x = x + lin('self_attn.o_proj', o)
        h = rms_norm(x, p[pre + 'post_attention_layernorm.weight'], eps)
        g = lin('mlp.gate_proj', h)
        x = x + lin('mlp.down_proj', torch.nn.functional.silu(g) * lin('mlp.up_proj', h))
    x = rms_norm(x, p['model.norm.weight'], eps)
    head = p['model.embed_tokens.weight'] if cfg.get('tie_word_embeddings') else p['lm_head.weight']
    return x @ head.T


def make_llama(g, qwen2=False):
    cfg = {
        'model_type': 'qwen2' if qwen2 else 'llama', 'architectures': ['Qwen2ForCausalLM' if qwen2 else 'LlamaForCausalLM'],
        'vocab_size': 64, 'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 2,
        'num_attention_heads': 4, 'num_key_value_heads': 2, 'hidden_act': 'silu', 'max_position_embeddings': 64,
        'rms_norm_eps': 1e-6, 'rope_theta': 1000000.0 if qwen2 else 10000.0, 'tie_word_embeddings': qwen2,
        'attention_bias': False, 'bos_token_id': 1, 'eos_token_id': 2, 'torch_dtype': 'bfloat16',
    }
    d, V, inner, H, Hkv = cfg['hidden_size'], cfg['vocab_size'], cfg['intermediate_size'], cfg['num_attention_heads'], cfg['num_key_value_heads']
    Dh = d // H
    r = lambda *s, std=0.2: (torch.randn(*s, generator=g) * std)
    p = {'model.embed_tokens.weight': r(V, d, std=0.5)}
    for i in range(cfg['num_hidden_layers']):
        pre = f'model.layers.{i}.'
        p[pre + 'self_attn.q_proj.weight'] = r(H * Dh, d)
        p[pre + 'self_attn.k_proj.weight'] = r(Hkv * Dh, d)
        p[pre + 'self_attn.v_proj.weight'] = r(Hkv * Dh, d)
        if qwen2:
            p[pre + 'self_attn.q_proj.bias'] = r(H * Dh, std=0.1)
            p[pre + 'self_attn.k_proj.bias'] = r(Hkv * Dh, std=0.1)
            p[pre + 'self_attn.v_proj.bias'] = r(Hkv * Dh, std=0.1)
        p[pre + 'self_attn.o_proj.weight'] = r(d, H * Dh)
        p[pre + 'mlp.gate_proj.weight'] = r(inner, d)
        p[pre + 'mlp.up_proj.weight'] = r(inner, d)
        p[pre + 'mlp.down_proj.weight'] = r(d, inner)
        p[pre + 'input_layernorm.weight'] = 1 + r(d, std=0.1)
        p[pre + 'post_attention_layernorm.weight'] = 1 + r(d, std=0.1)
    p['model.norm.weight'] = 1 + r(d, std=0.1)
    if not qwen2:
        p['lm_head.weight'] = r(V, d, std=0.3)
    # Stored as bf16 (as released LLaMA-family checkpoints): the reference uses the
    # bf16-rounded values, which is what a loader converting bf16 -> f32 computes with.
    for k in p:
        p[k] = p[k].to(torch.bfloat16).to(torch.float32)
    blob = safetensors_bytes(list(p.items()), 'BF16')
    return cfg, p, blob, llama_forward


def run(name, g, make, **kw):
    cfg, p, blob, forward = make(g, **kw)
    V = cfg['vocab_size']
    B, T = 2, 8
    ids = torch.randint(3, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.int64)
    mask[1, :2] = 0  # left padding in row 1
    ids[1, :2] = 0
    labels = ids.clone()
    labels[mask == 0] = -100
    # The first kept token would be scored from the last pad position, whose query sees
    # only padding; libraries (and HF versions) differ on such rows, so it is not scored.
    labels[1, 2] = -100
    params = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    logits = forward(params, cfg, ids, mask)
    loss = causal_lm_loss(logits, labels)
    loss.backward()
    out = {
        'description': f'tiny random {cfg["model_type"]} checkpoint and PyTorch reference results (tools/golden/nn_models.py)',
        'files': {'config.json': json.dumps(cfg, indent=2), 'model.safetensors': base64.b64encode(blob).decode()},
        'input_ids': ids.tolist(),
        'attention_mask': mask.tolist(),
        'labels': labels.tolist(),
        'logits': b64f32(logits),
        'loss': loss.item(),
        'grads': {k: b64f32(v.grad) for k, v in params.items()},
    }
    if forward is llama_forward:
        Hkv, Dh, P = cfg['num_key_value_heads'], cfg['hidden_size'] // cfg['num_attention_heads'], 3
        prefix = [(torch.randn(B, Hkv, P, Dh, generator=g).requires_grad_(True), torch.randn(B, Hkv, P, Dh, generator=g).requires_grad_(True)) for _ in range(cfg['num_hidden_layers'])]
        params = {k: v.clone() for k, v in p.items()}
        plogits = forward(params, cfg, ids, mask, prefix)
        ploss = causal_lm_loss(plogits, labels)
        ploss.backward()
        out['prefix'] = {
            'shape': [B, Hkv, P, Dh],
            'keys': [b64f32(k) for k, _ in prefix],
            'values': [b64f32(v) for _, v in prefix],
            'logits': b64f32(plogits),
            'loss': ploss.item(),
            'key_grads': [b64f32(k.grad) for k, _ in prefix],
            'value_grads': [b64f32(v.grad) for _, v in prefix],
        }
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f'{name}.json')
    with open(path, 'w') as f:
        json.dump(out, f)
    print(f'{path}: {os.path.getsize(path)} bytes, loss {loss.item():.6f}')


if __name__ == '__main__':
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    run('gpt2', g, make_gpt2)
    run('llama', g, make_llama)
    run('qwen2', g, make_llama, qwen2=True)
