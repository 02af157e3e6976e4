"""The second half of the reverse check (tools/golden/README.md): Hugging Face PEFT loads
the adapters OUR code wrote (tools/golden/write-our-adapters.ts) and must reproduce our logits.

For every `<dir>/<case>/` (adapter_config.json, adapter_model.safetensors, case.json):
loads `<dir>/base/<base>/` with transformers' AutoModelForCausalLM (float32, eager
attention), the adapter with `PeftModel.from_pretrained`, runs the case's input ids in
eval mode and compares the logits with ours (|ours - peft| <= 1e-4 everywhere).
Prints one line per case and exits 1 if any case fails to load or mismatches.

Run: .venv-golden/bin/python tools/golden/check_our_adapters.py <dir>
"""
import json
import os
import sys
import traceback
import warnings

import peft
import torch
import transformers
from peft import PeftModel
from transformers import AutoModelForCausalLM

ATOL = 1e-4


def check(root, name):
    case_dir = os.path.join(root, name)
    with open(os.path.join(case_dir, 'case.json')) as f:
        case = json.load(f)
    model = AutoModelForCausalLM.from_pretrained(os.path.join(root, 'base', case['base']), dtype=torch.float32, attn_implementation='eager')
    pm = PeftModel.from_pretrained(model, case_dir).eval()
    ids = torch.tensor(case['inputIds'])
    with torch.no_grad():
        logits = pm(input_ids=ids).logits
    ours = torch.tensor(case['logits'], dtype=torch.float32).reshape(case['logitsShape'])
    if list(logits.shape) != list(ours.shape):
        return False, f'logits shape: ours {list(ours.shape)}, peft {list(logits.shape)}'
    diff = (logits - ours).abs().max().item()
    return diff <= ATOL, f'max |ours - peft| = {diff:.2e} over {ours.numel()} logits (peft_type {pm.peft_config["default"].peft_type.value})'


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: check_our_adapters.py <dir written by write-our-adapters.ts>')
    root = sys.argv[1]
    cases = sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, 'case.json')))
    if not cases:
        sys.exit(f'{root}: no cases (run write-our-adapters.ts first)')
    print(f'transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}')
    failed = 0
    for name in cases:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                ok, msg = check(root, name)
            notes = sorted({str(w.message).split('\n')[0][:120] for w in caught})
        except Exception:  # a load failure is a failed case, reported with its traceback
            ok, msg, notes = False, 'error:\n' + traceback.format_exc(), []
        failed += not ok
        print(f'{"ok  " if ok else "FAIL"} {name}: {msg}')
        for n in notes:
            print(f'       warning: {n}')
    print(f'{len(cases) - failed}/{len(cases)} cases match')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
