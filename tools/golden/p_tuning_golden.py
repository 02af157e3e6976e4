"""Golden values for P-tuning (PEFT's P_TUNING) and the LSTM it uses, from torch and PEFT.

- lstm.json (nn): torch.nn.LSTM(batch_first=True) with seeded weights, one unidirectional
  1-layer case and one bidirectional 2-layer case (as PEFT's prompt encoder builds it):
  weights under torch's parameter names, the input, the output, and the gradients of the
  input and of every weight for loss = sum(output * g) with a fixed random g.
- p_tuning_golden.json (peft): PEFT's get_peft_model with PromptEncoderConfig (MLP and LSTM
  reparameterisation) on a tiny transformers GPT2LMHeadModel and LlamaForCausalLM (saved
  with save_pretrained into the fixture). PEFT's own seeded init of the prompt encoder is
  recorded (every tensor of prompt_encoder.default), then logits, loss and the gradient of
  every encoder tensor of one forward/backward with labels, PEFT's save_pretrained files,
  and the logits of those files loaded back with PeftModel.from_pretrained.

Run: .venv-golden/bin/python tools/golden/p_tuning_golden.py   (see tools/golden/README.md)
"""
import copy
import os
import sys

if os.environ.get('PYTHONHASHSEED') != '0':
    # PEFT keeps module names in sets: a fixed string hash makes saved files reproducible.
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, 'PYTHONHASHSEED': '0'})

import peft
import torch
import transformers
from peft import PeftModel, PromptEncoderConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from common import b64, fixture_dir, saved_files, versions, write_json

G = torch.Generator().manual_seed(4321)


def flat(t):
    """A tensor as a flat list, 8 significant digits (the tests compare float32 results)."""
    return [float('%.8g' % v) for v in t.detach().reshape(-1).tolist()]


# ---------------------------------------------------------------- LSTM

def lstm_case(input_size, hidden_size, num_layers, bidirectional, batch, steps):
    torch.manual_seed(5)
    lstm = torch.nn.LSTM(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                         bidirectional=bidirectional, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for p in lstm.parameters():
            p.copy_((torch.rand(p.shape, generator=G, dtype=torch.float64) * 2 - 1) * 0.6)
    x = ((torch.rand(batch, steps, input_size, generator=G, dtype=torch.float64) * 2 - 1) * 1.5).requires_grad_(True)
    out, (h_n, c_n) = lstm(x)
    g = torch.rand(out.shape, generator=G, dtype=torch.float64) * 2 - 1
    (out * g).sum().backward()
    return {
        'inputSize': input_size, 'hiddenSize': hidden_size, 'numLayers': num_layers, 'bidirectional': bidirectional,
        'input': {'shape': list(x.shape), 'value': flat(x), 'grad': flat(x.grad)},
        'weights': {n: {'shape': list(p.shape), 'value': flat(p), 'grad': flat(p.grad)} for n, p in lstm.named_parameters()},
        'output': {'shape': list(out.shape), 'value': flat(out)},
        'outputGrad': flat(g),
        'hN': flat(h_n), 'cN': flat(c_n),
    }


# ---------------------------------------------------------------- P-tuning

GPT2 = dict(vocab_size=32, n_positions=32, n_embd=16, n_layer=2, n_head=2, n_inner=32, activation_function='gelu_new',
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=2)
# The tiny LLaMA of peft_golden.py's prompt-learning cases (grouped-query attention).
LLAMA = dict(vocab_size=32, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=32, rms_norm_eps=1e-6, rope_theta=10000.0,
             tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
B_, T_ = 2, 5


def tiny(family):
    if family == 'gpt2':
        cfg = GPT2Config(**GPT2)
        cls = GPT2LMHeadModel
    else:
        cfg = LlamaConfig(**LLAMA)
        cls = LlamaForCausalLM
    cfg._attn_implementation = 'eager'
    torch.manual_seed(7)
    model = cls(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm = 'norm' in name or '.ln_' in name
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=G) if is_norm and name.endswith('weight') else 0.3 * torch.randn(p.shape, generator=G))
    return model


def p_tuning_case(family, base_state, ids, **config):
    model = tiny(family)
    model.load_state_dict(base_state)
    torch.manual_seed(11)
    pm = get_peft_model(model, PromptEncoderConfig(task_type='CAUSAL_LM', **config))
    encoder = pm.prompt_encoder['default']
    init = {n: {'shape': list(p.shape), 'value': flat(p)} for n, p in encoder.named_parameters()}
    out = pm(input_ids=ids, labels=ids)
    out.loss.backward()
    for n, p in encoder.named_parameters():
        init[n]['grad'] = flat(p.grad)
    res = {
        'config': dict(config),
        'encoder': init,
        'logits': flat(out.logits),
        'logitsShape': list(out.logits.shape),
        'loss': out.loss.item(),
    }
    pm.eval()
    with torch.no_grad():
        res['promptEmbeddings'] = flat(pm.get_prompt_embedding_to_save('default'))
    files = saved_files(lambda d: pm.save_pretrained(d, safe_serialization=True))
    res['files'] = {'adapter_config.json': files['adapter_config.json'].decode('utf-8'), 'adapter_model.safetensors': b64(files['adapter_model.safetensors'])}
    # PEFT's own loader on a fresh base: the inference logits of the saved files.
    fresh = tiny(family)
    fresh.load_state_dict(base_state)
    with saved_dir(files) as d:
        loaded = PeftModel.from_pretrained(fresh, d).eval()
        with torch.no_grad():
            res['inferenceLogits'] = flat(loaded(input_ids=ids).logits)
    return res


class saved_dir:
    """A temporary folder holding `files` ({relative path: bytes})."""

    def __init__(self, files):
        import tempfile
        self.tmp = tempfile.TemporaryDirectory()
        for rel, data in files.items():
            path = os.path.join(self.tmp.name, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'wb') as f:
                f.write(data)

    def __enter__(self):
        return self.tmp.name

    def __exit__(self, *exc):
        self.tmp.cleanup()


def family_fixture(family):
    model = tiny(family)
    base_state = copy.deepcopy(model.state_dict())
    files = saved_files(lambda d: model.save_pretrained(d, safe_serialization=True))
    ids = torch.randint(3, 32, (B_, T_), generator=G)
    return {
        'checkpoint': {'config.json': files['config.json'].decode('utf-8'), 'model.safetensors': b64(files['model.safetensors'])},
        'inputIds': ids.tolist(),
        'mlp': p_tuning_case(family, base_state, ids, num_virtual_tokens=3, encoder_reparameterization_type='MLP', encoder_hidden_size=8),
        'lstm': p_tuning_case(family, base_state, ids, num_virtual_tokens=4, encoder_reparameterization_type='LSTM', encoder_hidden_size=6, encoder_num_layers=2),
    }


if __name__ == '__main__':
    write_json(fixture_dir('nn', 'lstm.json'), {
        'generator': 'tools/golden/p_tuning_golden.py (torch.nn.LSTM, float64)',
        'versions': versions(),
        'unidirectional': lstm_case(5, 4, 1, False, 2, 3),
        'bidirectional': lstm_case(6, 5, 2, True, 2, 4),
    })
    write_json(fixture_dir('peft', 'p_tuning_golden.json'), {
        'generator': 'tools/golden/p_tuning_golden.py (PEFT get_peft_model with PromptEncoderConfig / save_pretrained / from_pretrained)',
        'versions': versions(),
        'gpt2': family_fixture('gpt2'),
        'llama': family_fixture('llama'),
    })
    print(f'transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}')
