"""Checkpoints with the exact shapes of released models, and transformers' logits for them.

Builds SmolLM2-135M (LlamaForCausalLM), Qwen2.5-0.5B (Qwen2ForCausalLM) and GPT-2 small
(GPT2LMHeadModel) from their published configs (the numbers below are those of the
models' `config.json` on the Hub; GPT-2 small's are also `GPT2Config()`'s defaults,
checked here) with seeded random weights, and saves each with `save_pretrained` into a
cache folder (too large to commit), in the variants the tests read (`VARIANTS`):

    <cache>/smollm2-135m/bf16/          bfloat16, one model.safetensors
    <cache>/smollm2-135m/f32-sharded/   float32, several shards + model.safetensors.index.json
    <cache>/gpt2/f32/                   float32, one model.safetensors
    <cache>/qwen2.5-0.5b/bf16-sharded/  bfloat16, several shards + index

Between them every loading path is covered (single file and shards, f32 and bf16) at
about 2.3 GB in all; each further variant of a model would hold the same numbers again.
The weights are drawn in float32 and rounded to bfloat16 values first, so every variant
of a model holds the same numbers and one set of reference logits serves all of them (a
bf16 checkpoint decoded to f32 must give exactly the f32 logits; the script checks that
transformers does). The init is scaled by fan-in (residual branches by 1/sqrt(2 * layers))
so the logits of a 12 to 30 layer stack stay finite and spread out. The model is built
without transformers' random init (`no_init_weights`: the seeded draw below replaces
every parameter anyway), which is most of the build time of a 0.5B model.

For fixed input ids (1 x 8, including the last vocabulary id) the committed golden
`packages/nn/src/__tests__/fixtures/real-shapes/<model>.json` records, from transformers
with eager attention in float32 (the checkpoint read back with `from_pretrained`):
- the logits at a fixed set of vocabulary indices (the first and last 16, the row's
  argmax, and 224 seeded random ones) for every position;
- per position, statistics of the full row computed in float64: max, min, argmax, sum
  and a weighted checksum sum_j w_j * logit_j with w_j = ((j * 2654435761) mod 1009) / 1009 - 0.5,
  so a test compares the whole row without the row being committed;
- PyTorch's own max |logits_f16 - logits_f32| over all positions and the whole vocabulary
  (the same weights in float16): the tolerance of an f16 implementation;
- the SHA-256 and size of every file written, so a cache built elsewhere is checked to
  hold exactly these weights.

By default the script builds the cache and checks it against the committed golden (file
hashes equal, logits within 1e-5); `--update-golden` rewrites the golden instead. A
`manifest.json` in the cache (the script's SHA-256 and every file's size) lets a second
run, and CI, skip the work when the cache is complete.

Run:  .venv-golden/bin/python tools/golden/real_shapes.py [--update-golden] [--force]
Cache folder: $WEBPEFT_REAL_SHAPES_DIR, default .cache/real-shapes at the repository root.
"""
import argparse
import base64
import hashlib
import json
import os
import shutil
import sys
import time

from common import ROOT, b64f32, fixture_dir, versions, write_json

# numpy, torch and transformers are imported by load_libraries(), after the cache check,
# so `--check` runs with any Python 3.
np = torch = transformers = None

GOLDEN_DIR = fixture_dir('nn', 'real-shapes')
# The checkpoints each model is saved as: <dtype>[-sharded]. Every variant of a model
# holds the same values; the tests read exactly these (test-utils' RealShapeVariant).
VARIANTS = {
    'smollm2-135m': ('bf16', 'f32-sharded'),
    'gpt2': ('f32',),
    'qwen2.5-0.5b': ('bf16-sharded',),
}
SEED = 20260
RANDOM_INDICES = 224

# The published config.json of each model (architecture fields only; token ids too).
MODELS = {
    'smollm2-135m': ('LlamaForCausalLM', 'LlamaConfig', dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, head_dim=64, hidden_act='silu',
        max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0,
        tie_word_embeddings=True, attention_bias=False, mlp_bias=False,
        initializer_range=0.041666666666666664, bos_token_id=0, eos_token_id=0)),
    'qwen2.5-0.5b': ('Qwen2ForCausalLM', 'Qwen2Config', dict(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, hidden_act='silu',
        max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=True, use_sliding_window=False, sliding_window=32768,
        max_window_layers=24, initializer_range=0.02, bos_token_id=151643, eos_token_id=151643)),
    'gpt2': ('GPT2LMHeadModel', 'GPT2Config', dict(
        vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
        activation_function='gelu_new', layer_norm_epsilon=1e-5, initializer_range=0.02,
        tie_word_embeddings=True, bos_token_id=50256, eos_token_id=50256)),
}
# Shard size of the sharded variants: several shards each (the largest tensor, the
# embedding, is 113 MB in SmolLM2's f32 and 272 MB in Qwen2.5's bf16).
SHARD_SIZE = {'smollm2-135m': '200MB', 'qwen2.5-0.5b': '300MB'}


def load_libraries():
    global np, torch, transformers
    os.environ.setdefault('TQDM_DISABLE', '1')
    os.environ.setdefault('HF_HUB_DISABLE_PROGRESS_BARS', '1')
    import numpy as np
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def classes(name):
    """transformers' model and config classes of `name`."""
    model_cls, config_cls, _ = MODELS[name]
    return getattr(transformers, model_cls), getattr(transformers, config_cls)


def cache_dir():
    return os.environ.get('WEBPEFT_REAL_SHAPES_DIR') or os.path.normpath(os.path.join(ROOT, '.cache', 'real-shapes'))


def script_hash():
    with open(os.path.abspath(__file__), 'rb') as f:
        h = hashlib.sha256(f.read())
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'common.py'), 'rb') as f:
        h.update(f.read())
    return h.hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 24), b''):
            h.update(chunk)
    return h.hexdigest()


def check_gpt2_defaults():
    """GPT-2 small is transformers' GPT2Config default: the numbers above must agree with it."""
    d = transformers.GPT2Config()
    for k, v in MODELS['gpt2'][2].items():
        if k in ('tie_word_embeddings', 'bos_token_id', 'eos_token_id', 'initializer_range'):
            continue
        assert getattr(d, k) == v, f'GPT-2 small {k}: {v} here, {getattr(d, k)} in GPT2Config()'


def build(name):
    """The model with seeded weights (see `draw`), eager attention, in float32."""
    cls, config_cls = classes(name)
    fields = MODELS[name][2]
    config = config_cls(**fields)
    config.use_cache = False
    config._attn_implementation = 'eager'
    from transformers.initialization import no_init_weights
    # transformers' own init would draw every weight once more only to be overwritten; the
    # tied lm_head is tied again by hand since the skipped init_weights is what ties it.
    with no_init_weights():
        model = cls(config).eval()
    model.tie_weights()
    g = torch.Generator().manual_seed(SEED)
    layers = fields.get('num_hidden_layers', fields.get('n_layer'))
    hidden = fields.get('hidden_size', fields.get('n_embd'))
    with torch.no_grad():
        for key, p in model.named_parameters():
            p.copy_(draw(key, p, g, layers, hidden))
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight, f'{name}: lm_head is not tied'
    return model


def draw(key, p, g, layers, hidden):
    """Seeded weights rounded to bfloat16 values: norms around 1, small biases, projections
    scaled by fan-in (GPT-2's Conv1D holds [in, out]), residual outputs by 1/sqrt(2 layers),
    embeddings so that tied logits have a spread of about 2."""
    shape = p.shape
    if 'norm' in key or '.ln_' in key:
        v = 1 + 0.1 * torch.randn(shape, generator=g) if key.endswith('weight') else 0.02 * torch.randn(shape, generator=g)
    elif key.endswith('bias'):
        v = 0.02 * torch.randn(shape, generator=g)
    elif 'embed_tokens' in key or 'wte' in key:
        v = (2.0 / hidden ** 0.5) * torch.randn(shape, generator=g)
    elif 'wpe' in key:
        v = 0.02 * torch.randn(shape, generator=g)
    else:
        fan_in = shape[0] if '.c_' in key else shape[1]
        residual = key.endswith(('o_proj.weight', 'down_proj.weight', 'attn.c_proj.weight', 'mlp.c_proj.weight'))
        v = torch.randn(shape, generator=g) / fan_in ** 0.5 * ((2 * layers) ** -0.5 if residual else 1.0)
    return v.to(torch.bfloat16).to(torch.float32)


def input_ids(vocab):
    """1 x 8 ids: small and large, the last vocabulary id included."""
    return torch.tensor([[1, 17, 1000, vocab // 2, vocab - 1, 12345 % vocab, vocab - 2, 42]])


def weights(vocab):
    j = np.arange(vocab, dtype=np.int64)
    return ((j * 2654435761) % 1009).astype(np.float64) / 1009 - 0.5


def row_stats(logits):
    """Per position, float64 statistics of the full row."""
    rows = logits[0].double().numpy()
    w = weights(rows.shape[1])
    return [{'max': float(r.max()), 'min': float(r.min()), 'argmax': int(r.argmax()),
             'sum': float(r.sum()), 'weighted': float((r * w).sum())} for r in rows]


def sample_indices(vocab, argmaxes):
    rng = np.random.default_rng(SEED + vocab)
    picked = set(range(16)) | set(range(vocab - 16, vocab)) | set(argmaxes)
    picked |= set(int(i) for i in rng.choice(vocab, RANDOM_INDICES, replace=False))
    return sorted(picked)


def load(cls, path, dtype):
    model = cls.from_pretrained(path, dtype=dtype, attn_implementation='eager').eval()
    model.config.use_cache = False
    return model


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def save_variants(model, name, out):
    """Writes `VARIANTS[name]` of `model` (float32) under `out`; the model ends in float32."""
    if os.path.exists(out):
        shutil.rmtree(out)
    # float32 variants first: the bf16 ones convert the model in place (no second copy).
    for variant in sorted(VARIANTS[name], key=lambda v: v.startswith('bf16')):
        dtype = torch.bfloat16 if variant.startswith('bf16') else torch.float32
        model.to(dtype)
        shard = SHARD_SIZE[name] if variant.endswith('-sharded') else '100GB'
        model.save_pretrained(os.path.join(out, variant), safe_serialization=True, max_shard_size=shard)
    model.to(torch.float32)


def listing(name, out):
    """{variant/file: {size, sha256}} of everything written."""
    files = {}
    for variant in VARIANTS[name]:
        for f in sorted(os.listdir(os.path.join(out, variant))):
            p = os.path.join(out, variant, f)
            files[f'{variant}/{f}'] = {'size': os.path.getsize(p), 'sha256': file_sha256(p)}
    return files


def run(name, update):
    cls = classes(name)[0]
    out = os.path.join(cache_dir(), name)
    t0 = time.time()
    model = build(name)
    vocab = model.config.vocab_size
    ids = input_ids(vocab)
    built = logits_of(model, ids)
    save_variants(model, name, out)
    t_saved = time.time()
    files = listing(name, out)
    for variant in VARIANTS[name]:
        if variant.endswith('-sharded'):
            shards = [k for k in files if k.startswith(f'{variant}/') and k.endswith('.safetensors')]
            assert len(shards) >= 3, f'{name}: {variant} has {len(shards)} shards, want several'

    # Each saved checkpoint read back by transformers in float32 with eager attention gives
    # exactly the built model's logits (bf16 ones decode to the same values); the same
    # checkpoint loaded in float16 gives PyTorch's own f16 error.
    for variant in VARIANTS[name]:
        loaded = load(cls, os.path.join(out, variant), torch.float32)
        d = (logits_of(loaded, ids) - built).abs().max().item()
        assert d == 0, f'{name} {variant}: transformers loads it to logits {d} away from the built model'
        del loaded
    del model
    l32 = built
    # from_pretrained in float16, as a user would run it (rotary frequencies stay float32
    # there, unlike a model cast with .to(float16)).
    l16 = logits_of(load(cls, os.path.join(out, VARIANTS[name][0]), torch.float16), ids)
    assert l16.dtype == torch.float16
    f16_diff = (l16.float() - l32).abs().max().item()
    assert np.isfinite(l32.numpy()).all() and np.isfinite(f16_diff)

    stats = row_stats(l32)
    idx = sample_indices(vocab, [s['argmax'] for s in stats])
    golden = {
        'description': f'{name}-shaped checkpoints (seeded random weights, tools/golden/real_shapes.py): '
                       'transformers float32 logits (eager attention) at sampled vocabulary indices, '
                       'float64 statistics of every full row, PyTorch\'s own max |f16 - f32|',
        'versions': versions(),
        'model_type': classes(name)[1].model_type,
        'config': MODELS[name][2],
        'input_ids': ids.tolist(),
        'vocab_size': vocab,
        'checksum_weights': 'w_j = ((j * 2654435761) mod 1009) / 1009 - 0.5',
        'sample_indices': idx,
        'logits_sample': b64f32(l32[0][:, idx]),
        'rows': stats,
        'maxAbsLogit': l32.abs().max().item(),
        'f16MaxAbsDiff': f16_diff,
        'bf16ToF32MaxAbsDiff': 0.0,
        'variants': list(VARIANTS[name]),
        'files': files,
    }
    path = os.path.join(GOLDEN_DIR, f'{name}.json')
    if update:
        write_json(path, golden)
    else:
        verify(name, golden, path)
    size = sum(f['size'] for f in files.values()) / 1e9
    print(f'  {name}: max |logit| {golden["maxAbsLogit"]:.3f}, torch max |f16 - f32| = {f16_diff:.5f}, '
          f'{", ".join(VARIANTS[name])}: {size:.2f} GB, built and saved in {t_saved - t0:.0f} s, '
          f'{time.time() - t0:.0f} s in all')


def verify(name, golden, path):
    """The cache just built must be the one the committed golden describes."""
    if not os.path.exists(path):
        sys.exit(f'{path} is missing: run with --update-golden to write it')
    with open(path) as f:
        committed = json.load(f)
    if committed['files'] != golden['files']:
        bad = sorted(k for k in set(committed['files']) | set(golden['files']) if committed['files'].get(k) != golden['files'].get(k))
        sys.exit(f'{name}: the checkpoints written differ from the committed golden ({", ".join(bad)}); '
                 'different library versions? Rerun with --update-golden only if that is intended.')
    a = np.frombuffer(base64.b64decode(committed['logits_sample']), dtype='<f4')
    b = np.frombuffer(base64.b64decode(golden['logits_sample']), dtype='<f4')
    if committed['sample_indices'] != golden['sample_indices'] or np.abs(a - b).max() > 1e-5:
        sys.exit(f'{name}: logits differ from the committed golden by more than 1e-5')


def manifest_path():
    return os.path.join(cache_dir(), 'manifest.json')


def cache_complete():
    """The manifest names this script's hash and every file it lists exists with its size."""
    try:
        with open(manifest_path()) as f:
            m = json.load(f)
    except (OSError, ValueError):
        return False
    if m.get('script') != script_hash():
        return False
    for rel, size in m.get('files', {}).items():
        p = os.path.join(cache_dir(), rel)
        if not os.path.isfile(p) or os.path.getsize(p) != size:
            return False
    return set(m.get('models', [])) == set(MODELS)


def write_manifest():
    files = {}
    for name in MODELS:
        for variant in VARIANTS[name]:
            d = os.path.join(cache_dir(), name, variant)
            for f in os.listdir(d):
                files[f'{name}/{variant}/{f}'] = os.path.getsize(os.path.join(d, f))
    tmp = manifest_path() + '.tmp'
    with open(tmp, 'w') as f:
        json.dump({'script': script_hash(), 'models': sorted(MODELS), 'files': files}, f, indent=1)
    os.replace(tmp, manifest_path())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--update-golden', action='store_true', help='rewrite the committed golden JSON files')
    ap.add_argument('--force', action='store_true', help='rebuild even when the cache is complete')
    ap.add_argument('--check', action='store_true', help='only say whether the cache is complete (exit 1 if not)')
    ap.add_argument('--only', action='append', choices=sorted(MODELS), help='rebuild only this model (repeatable; the manifest is kept only if it succeeds)')
    args = ap.parse_args()
    if args.check:
        complete = cache_complete()
        print(f'real-shape checkpoints: cache {"complete" if complete else "missing or stale"} at {cache_dir()}')
        sys.exit(0 if complete else 1)
    if not (args.force or args.update_golden or args.only) and cache_complete():
        print(f'real-shape checkpoints: cache complete at {cache_dir()}')
        return
    load_libraries()
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)
    check_gpt2_defaults()
    # A partial cache never looks complete: a full build writes the manifest last, and a
    # failed run (of some models only, too) leaves none.
    if not args.only:
        remove_manifest()
    try:
        for name in args.only or MODELS:
            run(name, args.update_golden)
    except BaseException:
        remove_manifest()
        raise
    if not args.only:
        write_manifest()
        print(f'real-shape checkpoints written to {cache_dir()}')


def remove_manifest():
    if os.path.exists(manifest_path()):
        os.remove(manifest_path())


if __name__ == '__main__':
    main()
