"""Golden values for @webpeft/peft's LoRA tests, from an independent PyTorch implementation.

PEFT itself is not needed: the LoRA, rsLoRA and DoRA math below follows PEFT's
`tuners/lora/layer.py` and `tuners/lora/dora.py` (v0.14) in plain torch, in float64.

Toy model (Hugging Face names, GPT-2 style):
  transformer.wte               Embedding(V, D)
  transformer.h.0.attn.c_attn   Conv1D D -> 3D  (weight [in, out], fan-in-fan-out)
  transformer.h.0.mlp.c_proj    Linear 3D -> D  (weight [out, in])
  lm_head                       Linear D -> V, no bias
  logits = lm_head(c_proj(tanh(c_attn(wte(ids)))));  loss = mean cross-entropy(logits, labels)

LoRA targets all three kinds of layers. Writes
packages/peft/src/__tests__/fixtures/lora_golden.json, including an adapter in PEFT's
file layout (adapter_config.json + adapter_model.safetensors, written by hand:
8-byte little-endian header length, JSON header, raw float32 data) as base64.

Run: /usr/bin/python3 tools/golden/peft_lora.py
"""
import base64
import json
import math
import os
import struct

import torch

torch.manual_seed(1234)
DT = torch.float64
V, D, H = 11, 8, 12  # vocab, hidden, c_attn out
B_, T_ = 2, 5
R = 4
ALPHA = 8.0


def rnd(*shape, scale=0.5):
    return (torch.rand(*shape, dtype=DT) * 2 - 1) * scale


base = {
    "transformer.wte.weight": rnd(V, D),
    "transformer.h.0.attn.c_attn.weight": rnd(D, H),  # Conv1D [in, out]
    "transformer.h.0.attn.c_attn.bias": rnd(H, scale=0.1),
    "transformer.h.0.mlp.c_proj.weight": rnd(D, H),  # Linear [out, in]
    "transformer.h.0.mlp.c_proj.bias": rnd(D, scale=0.1),
    "lm_head.weight": rnd(V, D),
}
ids = torch.randint(0, V, (B_, T_))
labels = torch.randint(0, V, (B_, T_))


def lora_weights():
    # Non-zero B (as after some training) so that every gradient is informative.
    return {
        "transformer.wte": {"A": rnd(R, V), "B": rnd(D, R)},  # lora_embedding_A [r, V], lora_embedding_B [D, r]
        "transformer.h.0.attn.c_attn": {"A": rnd(R, D), "B": rnd(H, R)},  # lora_A [r, in], lora_B [out, r]
        "transformer.h.0.mlp.c_proj": {"A": rnd(R, H), "B": rnd(D, R)},
    }


def dense_weight(name):
    """[out, in] weight of a linear target."""
    w = base[name + ".weight"]
    return w.t() if name.endswith("c_attn") else w


def forward(lw, scaling, dora_m=None):
    """Returns logits; lw tensors may require grad. dora_m: magnitudes of the linear targets."""
    emb = base["transformer.wte.weight"][ids]
    if "transformer.wte" in lw:
        A, Bm = lw["transformer.wte"]["A"], lw["transformer.wte"]["B"]
        emb = emb + (A.t()[ids] @ Bm.t()) * scaling

    def lin(x, name):
        W = dense_weight(name)
        b = base[name + ".bias"]
        A, Bm = lw[name]["A"], lw[name]["B"]
        y = x @ W.t() + b
        if dora_m is None:
            return y + (x @ A.t() @ Bm.t()) * scaling
        # PEFT DoRA (dropout 0): base_result = y - b; norm of W + s*B@A detached.
        norm = torch.linalg.norm(W + scaling * (Bm @ A).detach(), dim=1).detach()
        mns = (dora_m[name] / norm).view(1, -1)
        lora = x @ A.t() @ Bm.t()
        return y + (mns - 1) * (y - b) + mns * lora * scaling

    h = torch.tanh(lin(emb, "transformer.h.0.attn.c_attn"))
    o = lin(h, "transformer.h.0.mlp.c_proj")
    return o @ base["lm_head.weight"].t()


def loss_of(logits):
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), labels.reshape(-1))


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def run_variant(use_rslora, use_dora):
    scaling = ALPHA / math.sqrt(R) if use_rslora else ALPHA / R
    lw = lora_weights()
    if use_dora:
        # The DoRA variant targets the linear layers only.
        del lw["transformer.wte"]
    for m in lw.values():
        for t in m.values():
            t.requires_grad_(True)
    dora_m = None
    if use_dora:
        dora_m = {}
        for name in ["transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_proj"]:
            W = dense_weight(name)
            init = torch.linalg.norm(W + scaling * (lw[name]["B"] @ lw[name]["A"]).detach(), dim=1)
            # Perturb so the magnitude's effect is visible (as after training).
            dora_m[name] = (init.detach() * (1 + rnd(init.shape[0], scale=0.2))).requires_grad_(True)
    logits = forward(lw, scaling, dora_m)
    loss = loss_of(logits)
    loss.backward()
    out = {
        "useRslora": use_rslora,
        "useDora": use_dora,
        "scaling": scaling,
        "logits": flat(logits),
        "loss": float(loss),
        "lora": {n: {"A": flat(m["A"]), "B": flat(m["B"]), "gradA": flat(m["A"].grad), "gradB": flat(m["B"].grad)} for n, m in lw.items()},
    }
    # Merged weights (HF layout of each base weight).
    merged = {}
    with torch.no_grad():
        for name in ["transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_proj"]:
            W = dense_weight(name)
            delta = scaling * (lw[name]["B"] @ lw[name]["A"])
            Wm = W + delta
            if use_dora:
                Wm = (dora_m[name] / torch.linalg.norm(Wm, dim=1)).view(-1, 1) * Wm
            merged[name + ".weight"] = flat(Wm.t() if name.endswith("c_attn") else Wm)
        if "transformer.wte" in lw:
            e = lw["transformer.wte"]
            merged["transformer.wte.weight"] = flat(base["transformer.wte.weight"] + scaling * (e["B"] @ e["A"]).t())
    out["merged"] = merged
    if use_dora:
        out["magnitude"] = {n: {"value": flat(m), "grad": flat(m.grad)} for n, m in dora_m.items()}
        out["magnitudeInit"] = {
            n: flat(torch.linalg.norm(dense_weight(n) + scaling * (lw[n]["B"] @ lw[n]["A"]), dim=1)) for n in dora_m
        }
    return out, lw, dora_m


def safetensors_bytes(tensors, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for k in sorted(tensors):
        t = tensors[k].detach().to(torch.float32).contiguous()
        data = struct.pack("<%df" % t.numel(), *t.reshape(-1).tolist())
        header[k] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


variants = {}
plain, plain_lw, _ = run_variant(False, False)
variants["lora"] = plain
variants["rslora"] = run_variant(True, False)[0]
variants["dora"] = run_variant(False, True)[0]

# A PEFT-layout adapter for the plain variant: keys without the adapter name.
pre = "base_model.model."
adapter = {
    pre + "transformer.wte.lora_embedding_A": plain_lw["transformer.wte"]["A"],
    pre + "transformer.wte.lora_embedding_B": plain_lw["transformer.wte"]["B"],
}
for name in ["transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_proj"]:
    adapter[pre + name + ".lora_A.weight"] = plain_lw[name]["A"]
    adapter[pre + name + ".lora_B.weight"] = plain_lw[name]["B"]
adapter_config = {
    "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "toy-gpt2", "bias": "none",
    "eva_config": None, "exclude_modules": None, "fan_in_fan_out": True, "inference_mode": True,
    "init_lora_weights": True, "layer_replication": None, "layers_pattern": None, "layers_to_transform": None,
    "loftq_config": {}, "lora_alpha": int(ALPHA), "lora_bias": False, "lora_dropout": 0.1, "megatron_config": None,
    "megatron_core": "megatron.core", "modules_to_save": None, "peft_type": "LORA", "r": R, "rank_pattern": {},
    "revision": None, "target_modules": ["c_attn", "c_proj", "wte"], "task_type": "CAUSAL_LM",
    "use_dora": False, "use_rslora": False,
}
# Inference logits of that adapter (dropout is off at inference).
with torch.no_grad():
    adapter_logits = flat(forward(plain_lw, ALPHA / R))

fixture = {
    "generator": "tools/golden/peft_lora.py (torch %s, float64)" % torch.__version__,
    "sizes": {"vocab": V, "hidden": D, "attnOut": H, "batch": B_, "seq": T_, "r": R, "alpha": ALPHA},
    "base": {k: flat(v) for k, v in base.items()},
    "ids": [int(v) for v in ids.reshape(-1).tolist()],
    "labels": [int(v) for v in labels.reshape(-1).tolist()],
    "variants": variants,
    "peftAdapter": {
        "adapter_config.json": json.dumps(adapter_config, indent=2, sort_keys=True),
        "adapter_model.safetensors": base64.b64encode(safetensors_bytes(adapter, {"format": "pt"})).decode(),
        "logits": adapter_logits,
    },
}
here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "..", "packages", "peft", "src", "__tests__", "fixtures", "lora_golden.json")
with open(out, "w") as f:
    json.dump(fixture, f)
print("wrote", os.path.relpath(out), os.path.getsize(out), "bytes")
