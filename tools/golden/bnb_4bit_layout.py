"""Checkpoints in bitsandbytes' 4-bit layout, as transformers saves a 4-bit model.

bitsandbytes is not installable on the machines that generate fixtures, so the 4-bit
codes come from quant_reference.py (an independent numpy implementation of bitsandbytes'
rules). Everything else is the real libraries': the base checkpoints are transformers'
own (packages/nn's model fixtures), the layers quantized are those transformers'
bitsandbytes integration converts (`nn.Linear` and GPT-2 `Conv1D`, transposed first,
minus `get_keys_to_not_convert` and `should_convert_module`), `quantization_config` is
`BitsAndBytesConfig(...).to_dict()`, and the state entries follow bitsandbytes'
`Linear4bit._save_to_state_dict` / `QuantState.as_dict(packed=True)`:

  <layer>.weight                                  uint8 [ceil(n/2), 1] packed codes
  <layer>.weight.absmax                           float32 [blocks], or uint8 codes with double quant
  <layer>.weight.quant_map                        float32 [16]
  <layer>.weight.nested_absmax                    float32 [ceil(blocks/256)] (double quant)
  <layer>.weight.nested_quant_map                 float32 [256] (double quant)
  <layer>.weight.quant_state.bitsandbytes__<type> uint8 json.dumps({quant_type, blocksize, dtype, shape,
                                                  nested_blocksize, nested_dtype, nested_offset})

The folder is written with safetensors' own `save` ({"format": "pt"}). The reference
logits come from transformers' float32 model with every quantized weight replaced by its
dequantization (what bitsandbytes computes with, up to its compute dtype).

Writes packages/quant/src/__tests__/fixtures/bnb-4bit-layout.json.
Run: .venv-golden/bin/python tools/golden/bnb_4bit_layout.py   (see tools/golden/README.md)
"""
import base64
import json
import os
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load as st_load, save as st_save
from transformers import AutoModelForCausalLM, BitsAndBytesConfig
from transformers.pytorch_utils import Conv1D
from transformers.quantizers.base import get_keys_to_not_convert
from transformers.quantizers.quantizers_utils import should_convert_module

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quant_reference as qr  # noqa: E402
from common import b64, b64f32, fixture_dir, versions, write_json  # noqa: E402

BLOCKSIZE = 64
# (base fixture, quant type, double quant, compute dtype, torch dtype the weights were loaded in)
CASES = [
    ("llama", "nf4", True, "bfloat16", torch.bfloat16),
    ("gpt2", "fp4", False, "float32", torch.float32),
]


def layer_record(w, quant_type, double, dtype_name):
    """bitsandbytes' serialised state of a [out, in] weight (float32 values), and its dequantization."""
    x = w.detach().to(torch.float32).contiguous().numpy().reshape(-1).astype(np.float32)
    packed, absmax = qr.quantize_4bit(x, BLOCKSIZE, quant_type)
    table = qr.NF4 if quant_type == "nf4" else qr.FP4
    rec = {"weight": torch.from_numpy(packed.copy()).reshape(-1, 1)}
    meta = {"quant_type": quant_type, "blocksize": BLOCKSIZE, "dtype": dtype_name, "shape": list(w.shape)}
    if double:
        dyn = qr.dynamic_map(True)
        c, q, absmax2, restored = qr.double_quant(absmax, dyn)
        rec["weight.absmax"] = torch.from_numpy(q.copy())
        rec["weight.nested_absmax"] = torch.from_numpy(absmax2.copy())
        rec["weight.nested_quant_map"] = torch.from_numpy(dyn.astype(np.float32).copy())
        meta.update({"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": float(c)})
        scales = restored
    else:
        rec["weight.absmax"] = torch.from_numpy(absmax.copy())
        scales = absmax
    rec["weight.quant_map"] = torch.from_numpy(table.astype(np.float32).copy())
    rec[f"weight.quant_state.bitsandbytes__{quant_type}"] = torch.tensor(list(json.dumps(meta).encode("utf-8")), dtype=torch.uint8)
    deq = qr.dequantize_4bit(packed, scales, x.size, BLOCKSIZE, quant_type)
    return rec, torch.from_numpy(deq.copy()).reshape(w.shape)


def build(name, quant_type, double, compute, load_dtype):
    with open(fixture_dir("nn", "models", f"{name}.json")) as f:
        fx = json.load(f)
    config = json.loads(fx["files"]["config.json"])
    base = st_load(base64.b64decode(fx["files"]["model.safetensors"]))
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(fx["files"]["config.json"])
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(base64.b64decode(fx["files"]["model.safetensors"]))
        model = AutoModelForCausalLM.from_pretrained(d, dtype=load_dtype)
        reference = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    skip = get_keys_to_not_convert(model)
    dtype_name = str(load_dtype).replace("torch.", "")
    tensors = {k: v for k, v in base.items()}
    layers = []
    with torch.no_grad():
        for path, module in model.named_modules():
            if not (isinstance(module, Conv1D) or type(module) is torch.nn.Linear) or not should_convert_module(path, skip):
                continue
            # transformers transposes a Conv1D weight to [out, in] before quantizing it.
            w = module.weight.T if isinstance(module, Conv1D) else module.weight
            rec, deq = layer_record(w, quant_type, double, dtype_name)
            key = next(k for k in (f"{path}.weight", f"{path.split('.', 1)[1]}.weight") if k in tensors)
            del tensors[key]
            prefix = key[: -len(".weight")]
            for rel, t in rec.items():
                tensors[f"{prefix}.{rel}"] = t
            target = reference.get_submodule(path)
            target.weight.copy_(deq.T if isinstance(module, Conv1D) else deq)
            layers.append(path)
        ids = torch.tensor(fx["input_ids"])
        logits = reference(input_ids=ids).logits
    config["quantization_config"] = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=quant_type, bnb_4bit_use_double_quant=double, bnb_4bit_compute_dtype=compute
    ).to_dict()
    weights = st_save(tensors, metadata={"format": "pt"})
    return {
        "name": f"{name}-{quant_type}{'-dq' if double else ''}",
        "base": name,
        "quantType": quant_type,
        "doubleQuant": double,
        "computeDtype": compute,
        "layers": layers,
        "skipped": skip,
        "files": {"config.json": json.dumps(config, indent=2, sort_keys=True) + "\n", "model.safetensors": b64(weights)},
        "input_ids": fx["input_ids"],
        "logits": b64f32(logits),
        "logitsShape": list(logits.shape),
    }


def main():
    torch.manual_seed(0)
    out = {"description": __doc__.split("\n")[0], "versions": versions(), "cases": [build(*c) for c in CASES]}
    write_json(fixture_dir("quant", "bnb-4bit-layout.json"), out)


if __name__ == "__main__":
    main()
