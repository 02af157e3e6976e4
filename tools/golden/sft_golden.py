"""Golden outputs for @webpeft/nn's SFT data path, from transformers and TRL themselves.

- Batch encoding: transformers' `tokenizer(texts, padding=..., truncation=..., max_length=...,
  pad_to_multiple_of=..., add_special_tokens=...)` on the default model's tokenizer
  (`packages/default-model/model`, byte-level BPE, no special tokens added), and on a variant
  of it whose post-processor is a `TemplateProcessing` adding `<|im_start|>` before and
  `<|im_end|>` after the text (as LLaMA/BERT-style tokenizers add BOS/EOS), so truncation
  must keep both. The variant's post-processor is recorded in the fixture; the test applies
  it to the same tokenizer.json.
- Chat templates: transformers' `apply_chat_template` (text and ids) with the default
  model's ChatML template and three real-world templates (Llama 3 and Qwen2.5 as TRL ships
  them in `trl/chat_templates`, SmolLM2's written below), on the same conversations, with
  and without `add_generation_prompt`.
- SFT: TRL's `SFTTrainer` itself (a tiny LlamaForCausalLM, never trained) prepares text,
  prompt/completion and chat datasets; the fixture holds its prepared `train_dataset`
  (input_ids, labels, seq_lengths) and its `data_collator` output on the first rows, for
  plain batches, completion-only loss, assistant-only loss (Qwen2.5's training template with
  `{% generation %}` markers) and packing (bfd, bfd_split, wrapped).

Run: OMP_NUM_THREADS=1 .venv-golden/bin/python tools/golden/sft_golden.py  (see README.md)
Output: packages/nn/src/__tests__/fixtures/sft/sft_golden.json
"""
import copy
import json
import os
import tempfile

import torch
from datasets import Dataset
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

import trl
from trl import SFTConfig, SFTTrainer

from common import ROOT, fixture_dir, versions, write_json

MODEL_DIR = os.path.join(ROOT, 'packages', 'default-model', 'model')
TRL_TEMPLATES = os.path.join(os.path.dirname(trl.__file__), 'chat_templates')

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TEMPLATE_POST_PROCESSOR = {
    'type': 'TemplateProcessing',
    'single': [
        {'SpecialToken': {'id': '<|im_start|>', 'type_id': 0}},
        {'Sequence': {'id': 'A', 'type_id': 0}},
        {'SpecialToken': {'id': '<|im_end|>', 'type_id': 0}},
    ],
    'pair': [
        {'SpecialToken': {'id': '<|im_start|>', 'type_id': 0}},
        {'Sequence': {'id': 'A', 'type_id': 0}},
        {'Sequence': {'id': 'B', 'type_id': 1}},
        {'SpecialToken': {'id': '<|im_end|>', 'type_id': 0}},
    ],
    'special_tokens': {
        '<|im_start|>': {'id': '<|im_start|>', 'ids': [1], 'tokens': ['<|im_start|>']},
        '<|im_end|>': {'id': '<|im_end|>', 'ids': [2], 'tokens': ['<|im_end|>']},
    },
}

TEXTS = [
    'Call me Ishmael.',
    'It is a way I have of driving off the spleen, and regulating the circulation.',
    'Whale!',
    '',
    ' Two  spaces and a\nnewline, then numbers 1851 and 42.',
]

ENCODE_CASES = [
    {'padding': True},
    {'padding': 'longest', 'padding_side': 'left'},
    {'padding': 'max_length', 'max_length': 24, 'truncation': True},
    {'padding': 'longest', 'truncation': True, 'max_length': 8, 'padding_side': 'left'},
    {'padding': False, 'truncation': True, 'max_length': 5, 'truncation_side': 'left'},
    {'padding': True, 'pad_to_multiple_of': 8},
    {'padding': True, 'add_special_tokens': False},
]

CONVERSATIONS = [
    [
        {'role': 'system', 'content': 'You are a sailor who answers briefly.'},
        {'role': 'user', 'content': 'What is the ship called?'},
        {'role': 'assistant', 'content': 'The Pequod.'},
    ],
    [
        {'role': 'user', 'content': 'Who is the captain?'},
        {'role': 'assistant', 'content': 'Ahab, a grand, ungodly, god-like man.'},
        {'role': 'user', 'content': 'And the whale?'},
        {'role': 'assistant', 'content': ' Moby Dick, white as snow. '},
    ],
    [
        {'role': 'user', 'content': 'Where does the voyage start?'},
    ],
]

TEXT_SAMPLES = [
    {'text': 'Call me Ishmael.'},
    {'text': 'Some years ago, never mind how long precisely, having little or no money in my purse.'},
    {'text': 'It is a way I have of driving off the spleen.'},
    {'text': 'Whenever I find myself growing grim about the mouth; whenever it is a damp, drizzly November in my soul.'},
    {'text': 'Then I account it high time to get to sea.'},
    {'text': 'There now is your insular city of the Manhattoes.'},
]

PC_SAMPLES = [
    {'prompt': 'Q: What is the ship called?\nA:', 'completion': ' The Pequod.'},
    {'prompt': 'Q: Who is the captain?\nA:', 'completion': ' Ahab, a grand, ungodly, god-like man.'},
    {'prompt': 'Translate to French: whale\n', 'completion': 'baleine'},
    {'prompt': 'Q: ' + 'Why does the narrator go to sea, and what does he say about the damp, drizzly November in his soul? ' * 2 + '\nA:',
     'completion': ' To drive off the spleen.'},
    {'prompt': 'Q: Name a harpooneer.\nA:', 'completion': ' Queequeg.'},
]

CHAT_SAMPLES = [{'messages': m} for m in CONVERSATIONS[:2]] + [
    {'messages': [
        {'role': 'user', 'content': 'Name a harpooneer.'},
        {'role': 'assistant', 'content': 'Queequeg.'},
    ]},
    {'messages': [
        {'role': 'system', 'content': 'Answer in one word.'},
        {'role': 'user', 'content': 'Color of the whale?'},
        {'role': 'assistant', 'content': 'White.'},
    ]},
]


def load_tokenizer(post_processor=None, drop_pad=False):
    with open(os.path.join(MODEL_DIR, 'tokenizer.json')) as f:
        tj = json.load(f)
    with open(os.path.join(MODEL_DIR, 'tokenizer_config.json')) as f:
        cfg = json.load(f)
    if post_processor is not None:
        tj['post_processor'] = post_processor
    if drop_pad:
        cfg.pop('pad_token', None)
    d = tempfile.mkdtemp()
    with open(os.path.join(d, 'tokenizer.json'), 'w') as f:
        json.dump(tj, f)
    with open(os.path.join(d, 'tokenizer_config.json'), 'w') as f:
        json.dump(cfg, f)
    return AutoTokenizer.from_pretrained(d)


def encode_goldens():
    out = []
    for variant, tok in (('default', load_tokenizer()), ('template', load_tokenizer(TEMPLATE_POST_PROCESSOR))):
        for case in ENCODE_CASES:
            t = copy.deepcopy(tok)
            kw = dict(case)
            if 'truncation_side' in kw:
                t.truncation_side = kw.pop('truncation_side')
            enc = t(TEXTS, **kw)
            out.append({'tokenizer': variant, 'options': case, 'input_ids': enc['input_ids'],
                        'attention_mask': enc['attention_mask']})
    try:
        load_tokenizer(drop_pad=True)(TEXTS, padding=True)
        no_pad = None
    except ValueError as e:
        no_pad = str(e)
    assert no_pad is not None, 'transformers padded without a pad token'
    return out, no_pad


def chat_goldens(tok):
    def read(name):
        with open(os.path.join(TRL_TEMPLATES, name)) as f:
            return f.read()

    templates = {
        'chatml-default-model': tok.chat_template,
        'llama3': read('llama3.jinja'),
        'qwen2.5': read('qwen2_5.jinja'),
        'smollm2': SMOLLM2_TEMPLATE,
    }
    cases = []
    for name, template in templates.items():
        for ci, conv in enumerate(CONVERSATIONS):
            for gen in (False, True):
                text = tok.apply_chat_template(conv, chat_template=template, add_generation_prompt=gen, tokenize=False)
                ids = tok.apply_chat_template(conv, chat_template=template, add_generation_prompt=gen, tokenize=True,
                                              return_dict=False)
                cases.append({'template': name, 'conversation': ci, 'add_generation_prompt': gen, 'text': text,
                              'ids': list(ids)})
    return templates, cases


def tiny_model(vocab):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256)
    return LlamaForCausalLM(cfg)


def sft_case(name, samples, tok, collate_rows, **config):
    with tempfile.TemporaryDirectory() as d:
        args = SFTConfig(output_dir=d, report_to='none', use_cpu=True, bf16=False, **config)
        trainer = SFTTrainer(model=tiny_model(len(tok)), args=args, processing_class=tok,
                             train_dataset=Dataset.from_list(samples))
        ds = trainer.train_dataset
        cols = [c for c in ('input_ids', 'labels', 'seq_lengths') if c in ds.column_names]
        rows = [{c: list(ds[i][c]) for c in cols} for i in range(len(ds))]
        batch = trainer.data_collator([ds[i] for i in range(min(collate_rows, len(ds)))])
        batch = {k: v.tolist() for k, v in batch.items()}
    print(f'  {name}: {len(rows)} rows')
    return {'name': name, 'config': config, 'rows': rows, 'collated_rows': min(collate_rows, len(rows)),
            'batch': batch}


def sft_goldens(tok):
    with open(os.path.join(TRL_TEMPLATES, 'qwen2_5_training.jinja')) as f:
        qwen_training = f.read()
    tok_train = copy.deepcopy(tok)
    tok_train.chat_template = qwen_training
    cases = [
        sft_case('text', TEXT_SAMPLES, tok, 3, max_length=20),
        sft_case('prompt_completion', PC_SAMPLES, tok, 3, max_length=32),
        sft_case('prompt_completion_full_loss', PC_SAMPLES, tok, 2, max_length=32, completion_only_loss=False),
        sft_case('messages', CHAT_SAMPLES, tok, 3, max_length=64),
        sft_case('messages_assistant_only', CHAT_SAMPLES, tok_train, 3, max_length=64, assistant_only_loss=True),
        sft_case('text_packed_bfd', TEXT_SAMPLES, tok, 3, max_length=24, packing=True),
        sft_case('prompt_completion_packed_bfd', PC_SAMPLES, tok, 2, max_length=32, packing=True),
        sft_case('text_packed_bfd_split', TEXT_SAMPLES, tok, 3, max_length=24, packing=True, packing_strategy='bfd_split'),
        sft_case('text_packed_wrapped', TEXT_SAMPLES, tok, 3, max_length=24, packing=True, packing_strategy='wrapped'),
    ]
    return {'qwen2.5-training': qwen_training}, cases


def main():
    torch.manual_seed(0)
    tok = load_tokenizer()
    encode, no_pad = encode_goldens()
    templates, chat = chat_goldens(tok)
    train_templates, sft = sft_goldens(tok)
    v = versions()
    v['trl'] = trl.__version__
    write_json(os.path.join(fixture_dir('nn', 'sft'), 'sft_golden.json'), {
        'description': __doc__.strip().split('\n')[0],
        'versions': v,
        'texts': TEXTS,
        'templatePostProcessor': TEMPLATE_POST_PROCESSOR,
        'encode': encode,
        'noPadError': no_pad,
        'conversations': CONVERSATIONS,
        'templates': {**templates, **train_templates},
        'chat': chat,
        'samples': {'text': TEXT_SAMPLES, 'prompt_completion': PC_SAMPLES, 'messages': CHAT_SAMPLES},
        'sft': sft,
    })


if __name__ == '__main__':
    main()
