"""One training step of the bench's GPT-2 shapes in PyTorch, for a side-by-side row.

The same models as the bench's `dispatches` rows (4 layers, 128 wide, batch 4 x 64) and
`fine-tuning step` rows (GPT-2 small's blocks, vocabulary 32000, batch 1 x 64), built
with transformers' own `GPT2LMHeadModel`, LoRA r=8 alpha 16 on `c_attn` with peft's
`get_peft_model`, AdamW (weight decay 0, lr 1e-4): median wall milliseconds of a step
(forward, backward, optimizer, zero_grad) after warm-up, synchronised on CUDA. QLoRA
needs bitsandbytes on CUDA; where it does not import, its rows say so.

Prints one JSON object. `--quick` runs only the small model, one timed step, so the
script can be checked on a machine without a GPU.
"""
import argparse
import json
import statistics
import sys
import time

import peft
import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

SMALL = dict(vocab_size=1024, n_positions=128, n_embd=128, n_layer=4, n_head=4, batch=4, tokens=64)
GPT2_SMALL = dict(vocab_size=32000, n_positions=1024, n_embd=768, n_layer=12, n_head=12, batch=1, tokens=64)


def build(method, shape, device):
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=shape["vocab_size"], n_positions=shape["n_positions"], n_embd=shape["n_embd"],
                     n_layer=shape["n_layer"], n_head=shape["n_head"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    if method == "qlora":
        from transformers import BitsAndBytesConfig  # needs bitsandbytes and CUDA
        import bitsandbytes  # noqa: F401  (fails here where it is not installed)
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.float32)
        model = GPT2LMHeadModel(cfg)
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            model.save_pretrained(d)
            model = GPT2LMHeadModel.from_pretrained(d, quantization_config=q, device_map={"": device})
    else:
        model = GPT2LMHeadModel(cfg).to(device)
    if method != "full":
        model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules=["c_attn"], fan_in_fan_out=True))
    model.train()
    return model


def step_ms(method, shape, device, warm, runs):
    model = build(method, shape, device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    n = shape["batch"] * shape["tokens"]
    ids = (torch.arange(n) * 997 % shape["vocab_size"]).reshape(shape["batch"], shape["tokens"]).to(device)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(warm):
        step()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small model only, one timed step (checks the script on a CPU machine)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shapes = {"gpt2-4x128, 4x64 tokens": SMALL} if args.quick else {"gpt2-4x128, 4x64 tokens": SMALL, "gpt2-small (vocab 32000), 1x64 tokens": GPT2_SMALL}
    runs = 1 if args.quick else args.runs
    rows = []
    for name, shape in shapes.items():
        for method in ("full", "lora", "qlora"):
            row = {"model": name, "method": method}
            try:
                row["ms"] = step_ms(method, shape, device, warm=1 if args.quick else 2, runs=runs)
            except Exception as e:  # one method's failure (no bitsandbytes) is reported, not fatal
                row["skipped"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            rows.append(row)
    out = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "runs": runs,
        "rows": rows,
    }
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
