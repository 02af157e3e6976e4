"""The second half of the merged-export check (tools/golden/README.md): transformers loads
the checkpoint folders OUR savePretrained wrote (tools/golden/write-our-exports.ts) and
must reproduce our logits; its logits become the fixture the test compares with.

For every `<dir>/<case>/` (config.json, model.safetensors, case.json): loads the folder
with transformers' AutoModelForCausalLM (float32, eager attention), runs the case's input
ids and compares the logits with ours (|ours - transformers| <= 1e-4). Writes
packages/peft/src/__tests__/fixtures/merged_export_golden.json: per case, the SHA-256 of
the files transformers loaded (the test rebuilds them and checks the hash) and
transformers' logits. Exits 1 if any case fails to load or mismatches.

Run: .venv-golden/bin/python tools/golden/check_our_exports.py <dir>
"""
import hashlib
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM

from common import b64f32, fixture_dir, versions, write_json

ATOL = 1e-4


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: check_our_exports.py <dir written by write-our-exports.ts>')
    root = sys.argv[1]
    names = sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, 'case.json')))
    if not names:
        sys.exit(f'{root}: no cases (run write-our-exports.ts first)')
    print(f'transformers {transformers.__version__}, torch {torch.__version__}')
    torch.manual_seed(0)
    cases = {}
    ok = True
    for name in names:
        d = os.path.join(root, name)
        with open(os.path.join(d, 'case.json')) as f:
            case = json.load(f)
        model, info = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation='eager', output_loading_info=True)
        model.eval()
        # Every weight must come from the file: none missing (randomly initialised), none left over.
        problems = {k: sorted(v) for k, v in info.items() if k in ('missing_keys', 'unexpected_keys', 'mismatched_keys') and v}
        ids = torch.tensor(case['inputIds'])
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        ours = torch.tensor(case['logits'], dtype=torch.float32).reshape(case['logitsShape'])
        diff = (logits - ours).abs().max().item()
        good = list(logits.shape) == list(ours.shape) and diff <= ATOL and not problems
        ok = ok and good
        print(f'{"ok  " if good else "FAIL"} {name}: {type(model).__name__}, max |ours - transformers| = {diff:.2e} over {ours.numel()} logits{f", {problems}" if problems else ""}')
        cases[name] = {
            'sha256': {f: sha256(os.path.join(d, f)) for f in sorted(os.listdir(d)) if f != 'case.json'},
            'input_ids': case['inputIds'],
            'logits_shape': list(logits.shape),
            'logits': b64f32(logits),
            'model_class': type(model).__name__,
        }
    if not ok:
        sys.exit(1)
    write_json(fixture_dir('peft', 'merged_export_golden.json'), {
        'description': 'checkpoints written by our savePretrained after mergeAndUnload (tools/golden/write-our-exports.ts), loaded by transformers AutoModelForCausalLM (tools/golden/check_our_exports.py): its logits',
        'versions': versions(),
        'cases': cases,
    })


if __name__ == '__main__':
    main()
