import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CausalLM, type Conv1D, GPT2LMHeadModel, Linear, fromPretrained, memoryTarget, openSource, parseSafetensors, savePretrained } from '@webpeft/nn';
import { assign, noGrad, tensor, transpose } from '@webpeft/tensor';
import { expectClose, initBackends, takeData } from '@webpeft/test-utils';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import gpt2 from './fixtures/models/gpt2.json' with { type: 'json' };
import llama from './fixtures/models/llama.json' with { type: 'json' };
import { type ModelFixture, b64F32, fixtureFiles } from './fixtures/models/fixture.js';

// Reference values: the golden checkpoints and logits of tools/golden/nn_models.py
// (transformers' GPT2LMHeadModel / LlamaForCausalLM). The folders savePretrained writes
// load in transformers too: tools/golden/check_our_exports.py.

let dir: string;
beforeAll(async () => {
  await initBackends();
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webpeft-save-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const load = (fx: ModelFixture) => fromPretrained(openSource(fixtureFiles(fx)), { backend: 'cpu' });

async function firstRowLogits(model: CausalLM, fx: ModelFixture): Promise<Float32Array> {
  const row = fx.input_ids[0];
  const x = tensor(Int32Array.from(row), [1, row.length], { dtype: 'i32', backend: 'cpu' });
  const logits = await takeData(noGrad(() => model.forward({ inputIds: x }).logits));
  x.dispose();
  return logits as Float32Array;
}
const golden = (fx: ModelFixture) => b64F32(fx.logits).subarray(0, fx.input_ids[0].length * (JSON.parse(fx.files['config.json']) as { vocab_size: number }).vocab_size);

describe('savePretrained writes a Hugging Face checkpoint folder', () => {
  it('gpt2: Conv1D layout, tied head written once, format pt; reloads to the same logits', async () => {
    const { model, rawConfig } = await load(gpt2);
    const out = join(dir, 'gpt2');
    const saved = await savePretrained(model, out, { config: rawConfig });
    expect(saved.files).toEqual(['config.json', 'model.safetensors']);
    expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors']);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toEqual({ ...rawConfig, dtype: 'float32' });
    const st = parseSafetensors(await readFile(join(out, 'model.safetensors')));
    expect(st.metadata).toEqual({ format: 'pt' });
    // Same keys as transformers' own save_pretrained of this model (the fixture).
    const theirs = parseSafetensors(fixtureFiles(gpt2)['model.safetensors'] as Uint8Array);
    expect([...st.tensors.keys()].sort()).toEqual([...theirs.tensors.keys()].sort());
    expect(st.tensors.has('lm_head.weight')).toBe(false);
    expect(st.tensors.get('transformer.h.0.attn.c_attn.weight')!.shape).toEqual([32, 96]);
    for (const [key, t] of theirs.tensors) expect(Buffer.from(st.tensors.get(key)!.data).equals(Buffer.from(t.data)), key).toBe(true);
    const again = await fromPretrained(out, { backend: 'cpu' });
    expectClose(await firstRowLogits(again.model, gpt2), golden(gpt2), { rtol: 2e-4, atol: 2e-5, label: 'reloaded gpt2 vs transformers' });
    for (const m of [model, again.model]) m.dispose();
  });

  it('shards above maxShardBytes: an index and shards as transformers writes them, which reload to the same logits', async () => {
    const { model, rawConfig } = await load(gpt2);
    const out = join(dir, 'sharded');
    const saved = await savePretrained(model, out, { config: rawConfig, maxShardBytes: 40_000 });
    expect(saved.files).toEqual(['config.json', 'model.safetensors.index.json', 'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    const index = JSON.parse(await readFile(join(out, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    const theirs = parseSafetensors(fixtureFiles(gpt2)['model.safetensors'] as Uint8Array);
    expect(Object.keys(index.weight_map).sort()).toEqual([...theirs.tensors.keys()].sort());
    expect(index.metadata.total_size).toBe([...theirs.tensors.values()].reduce((n, t) => n + t.data.byteLength, 0));
    for (let i = 1; i <= 3; i++) expect((await readFile(join(out, `model-0000${i}-of-00003.safetensors`))).byteLength).toBeLessThanOrEqual(40_000 + 4096);
    expect(saved.weightBytes).toBeGreaterThan(index.metadata.total_size);
    const again = await fromPretrained(out, { backend: 'cpu' });
    expectClose(await firstRowLogits(again.model, gpt2), golden(gpt2), { rtol: 2e-4, atol: 2e-5, label: 'sharded gpt2 vs transformers' });
    for (const m of [model, again.model]) m.dispose();
  });

  it('gpt2: Linear layers left by a merge are written back in Conv1D layout', async () => {
    const { model, rawConfig } = await load(gpt2);
    const want = await firstRowLogits(model, gpt2);
    // What mergeAndUnload({ dequantize: true }) leaves: an f32 Linear [out, in] per layer.
    for (const path of ['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_proj', 'transformer.h.0.mlp.c_fc']) {
      const conv = model.getSubmodule(path) as Conv1D;
      const lin = new Linear(conv.inFeatures, conv.outFeatures, { backend: 'cpu' });
      noGrad(() => {
        const w = transpose(conv.weight);
        lin.loadWeight(w);
        w.dispose();
        assign(lin.bias!, conv.bias);
      });
      model.replaceSubmodule(path, lin).dispose();
    }
    const out = join(dir, 'merged');
    await savePretrained(model, out, { config: rawConfig });
    const st = parseSafetensors(await readFile(join(out, 'model.safetensors')));
    expect(st.tensors.get('transformer.h.0.attn.c_attn.weight')!.shape).toEqual([32, 96]);
    expect(st.tensors.get('transformer.h.0.mlp.c_fc.weight')!.shape).toEqual([32, 64]);
    const theirs = parseSafetensors(fixtureFiles(gpt2)['model.safetensors'] as Uint8Array);
    // c_proj is square: only the values tell the layouts apart.
    const key = 'transformer.h.1.attn.c_proj.weight';
    expect(Buffer.from(st.tensors.get(key)!.data).equals(Buffer.from(theirs.tensors.get(key)!.data))).toBe(true);
    const again = await fromPretrained(out, { backend: 'cpu' });
    expectClose(await firstRowLogits(again.model, gpt2), want, { rtol: 0, atol: 0, label: 'reloaded merged gpt2' });
    for (const m of [model, again.model]) m.dispose();
  });

  it('llama: a head untied by a merge is written with its own weight and tie_word_embeddings false', async () => {
    const { model, rawConfig } = await load(llama);
    const tiedConfig = { ...rawConfig, tie_word_embeddings: true };
    const tiedModel = await fromPretrained(openSource({ 'config.json': JSON.stringify(tiedConfig), 'model.safetensors': fixtureFiles(llama)['model.safetensors'] }), { backend: 'cpu' });
    const head = tiedModel.model.getSubmodule('lm_head') as Linear;
    const own = new Linear(head.inFeatures, head.outFeatures, { bias: false, backend: 'cpu' });
    tiedModel.model.replaceSubmodule('lm_head', own);
    const want = await firstRowLogits(tiedModel.model, llama);
    const saved = memoryTarget();
    await savePretrained(tiedModel.model, saved, { config: tiedConfig });
    const config = JSON.parse(new TextDecoder().decode(saved.files.get('config.json'))) as Record<string, unknown>;
    expect(config.tie_word_embeddings).toBe(false);
    const st = parseSafetensors(saved.files.get('model.safetensors')!);
    expect(st.tensors.has('lm_head.weight')).toBe(true);
    const again = await fromPretrained(openSource(Object.fromEntries(saved.files)), { backend: 'cpu' });
    expectClose(await firstRowLogits(again.model, llama), want, { rtol: 0, atol: 0, label: 'reloaded untied llama' });
    for (const m of [model, tiedModel.model, again.model, own]) m.dispose();
  });

  it('bf16 and f16: values rounded to nearest even in the file, config dtype set', async () => {
    const { model, rawConfig } = await load(gpt2);
    const f32 = parseSafetensors(fixtureFiles(gpt2)['model.safetensors'] as Uint8Array); // F32 in the fixture
    for (const [dtype, name, st] of [['bf16', 'bfloat16', 'BF16'], ['f16', 'float16', 'F16']] as const) {
      const target = memoryTarget();
      await savePretrained(model, target, { config: rawConfig, dtype });
      expect((JSON.parse(new TextDecoder().decode(target.files.get('config.json'))) as { dtype: string }).dtype).toBe(name);
      const file = parseSafetensors(target.files.get('model.safetensors')!);
      const key = 'transformer.h.0.attn.c_attn.weight';
      expect(f32.tensors.get(key)!.dtype).toBe('F32');
      const raw = file.tensors.get(key)!;
      expect(raw.dtype).toBe(st);
      const src = new Float32Array(f32.tensors.get(key)!.data.slice().buffer);
      const got = new Uint16Array(raw.data.slice().buffer);
      for (let i = 0; i < src.length; i++) expect(got[i], `${dtype} ${key}[${i}]`).toBe(dtype === 'bf16' ? bf16Reference(src[i]) : f16Reference(src[i]));
    }
    model.dispose();
  });

  it('refuses a non-empty directory unless overwrite; a mismatched config writes nothing', async () => {
    const { model, rawConfig } = await load(gpt2);
    const out = join(dir, 'busy');
    await mkdir(out);
    await writeFile(join(out, 'keep.txt'), 'mine');
    await expect(savePretrained(model, out, { config: rawConfig })).rejects.toThrow(/'.*busy' exists and is not empty \(keep\.txt\); pass overwrite: true/);
    expect(await readdir(out)).toEqual(['keep.txt']);
    const wrong = { ...rawConfig, n_inner: 48 };
    await expect(savePretrained(model, out, { config: wrong, overwrite: true })).rejects.toThrow(/does not match its config\.json, 4 problem\(s\):\n {2}shape mismatch: transformer\.h\.0\.mlp\.c_fc\.weight: model \[32, 64\], config \[32, 48\]/);
    expect(await readdir(out)).toEqual(['keep.txt']);
    expect((await readdir(dir)).sort()).toEqual(['busy']); // no temporary folder left
    await savePretrained(model, out, { config: rawConfig, overwrite: true });
    expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors']);
    expect((await readdir(dir)).sort()).toEqual(['busy']);
    model.dispose();
  });

  it('copies generation and tokenizer files from copyFrom; names a module an adapter still wraps', async () => {
    const { model, rawConfig } = await load(gpt2);
    const source = openSource({ ...fixtureFiles(gpt2), 'generation_config.json': '{"eos_token_id": 0}', 'tokenizer.json': '{"model": {}}' });
    const target = memoryTarget();
    const saved = await savePretrained(model, target, { config: rawConfig, copyFrom: source });
    expect(saved.files).toEqual(['config.json', 'model.safetensors', 'generation_config.json', 'tokenizer.json']);
    expect(new TextDecoder().decode(target.files.get('generation_config.json'))).toBe('{"eos_token_id": 0}');
    class Wrapper extends GPT2LMHeadModel {}
    const wrapped = model.getSubmodule('transformer.h.0.attn.c_attn');
    const holder = new Wrapper({ n_embd: 4, n_layer: 1, n_head: 1, vocab_size: 4, n_positions: 4 }, { backend: 'cpu' });
    model.replaceSubmodule('transformer.h.0.attn.c_attn', holder);
    await expect(savePretrained(model, memoryTarget(), { config: rawConfig })).rejects.toThrow(/transformer\.h\.0\.attn\.c_attn: a Wrapper \(an adapter wrapper\?\), not a linear layer: merge and unload adapters first/);
    model.replaceSubmodule('transformer.h.0.attn.c_attn', wrapped);
    for (const m of [model, holder]) m.dispose();
  });
});

/** bf16 bits of an f32 value, round to nearest even (NaN kept quiet), from its IEEE bits. */
function bf16Reference(x: number): number {
  const bits = new Uint32Array(new Float32Array([x]).buffer)[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x40;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f16 bits of an f32 value, round to nearest even, written in float64 arithmetic. */
function f16Reference(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundEven(a / 2 ** -24);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  let m = roundEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e += 1;
  }
  return sign | ((e + 15) << 10) | m;
}

function roundEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}
