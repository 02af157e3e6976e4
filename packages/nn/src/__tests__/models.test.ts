import { GPT2LMHeadModel, LlamaForCausalLM, causalLMFromConfig, fromPretrained, openSource } from '@webpeft/nn';
import { expectClose, initBackends } from '@webpeft/test-utils';
import { type BackendName, setBackend, tensor, tidy } from '@webpeft/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import gpt2 from './fixtures/models/gpt2.json' with { type: 'json' };
import llama from './fixtures/models/llama.json' with { type: 'json' };
import qwen2 from './fixtures/models/qwen2.json' with { type: 'json' };
import mistral from './fixtures/models/mistral.json' with { type: 'json' };
import { type ModelFixture, b64Bytes, b64F32, fixtureFiles } from './fixtures/models/fixture.js';

// Reference: tools/golden/nn_models.py (transformers' own GPT2LMHeadModel / LlamaForCausalLM /
// Qwen2ForCausalLM / MistralForCausalLM, checkpoints written by their save_pretrained).
// Mistral's head_dim (16) differs from hidden_size / heads (8).
// Bounds: f32 everywhere, 2 layers; logits and loss within 2e-4 relative, gradients 2e-3
// relative with an absolute floor of 1e-5 (gradients pass through two softmax layers).
const FIXTURES: [string, ModelFixture][] = [
  ['gpt2', gpt2],
  ['llama', llama],
  ['qwen2', qwen2],
  ['mistral', mistral],
];

let backends: BackendName[] = [];
beforeAll(async () => {
  backends = await initBackends();
});

function ids2d(rows: number[][]) {
  return tensor(Int32Array.from(rows.flat()), [rows.length, rows[0].length], { dtype: 'i32' });
}

/** Logits at kept positions only: HF's GPT-2 and LLaMA masks differ on all-padding query rows. */
function keptRows(logits: ArrayLike<number>, mask: number[][], v: number): number[] {
  const out: number[] = [];
  mask.flat().forEach((m, i) => {
    if (m) for (let j = 0; j < v; j++) out.push(logits[i * v + j]);
  });
  return out;
}

describe('pretrained tiny checkpoints match PyTorch', () => {
  for (const [name, fx] of FIXTURES) {
    it(`${name}: logits, loss and every parameter gradient`, async () => {
      for (const backend of backends) {
        setBackend(backend);
        const { model } = await fromPretrained(openSource(fixtureFiles(fx)));
        expect(model).toBeInstanceOf(name === 'gpt2' ? GPT2LMHeadModel : LlamaForCausalLM);
        const v = model.config.vocab_size;
        const inputIds = ids2d(fx.input_ids);
        const attentionMask = ids2d(fx.attention_mask);
        const labels = ids2d(fx.labels);
        const { logits, loss } = model.forward({ inputIds, attentionMask, labels });
        const label = `${name} ${backend}`;
        expectClose(keptRows(await logits.data(), fx.attention_mask, v), keptRows(b64F32(fx.logits), fx.attention_mask, v), { rtol: 2e-4, atol: 2e-5, label: `${label} logits` });
        expectClose([await loss!.item()], [fx.loss], { rtol: 2e-5, atol: 0, label: `${label} loss` });
        loss!.backward();
        const named = new Map(model.namedParameters());
        expect([...named.keys()].sort()).toEqual(Object.keys(fx.grads).sort());
        for (const [key, g] of Object.entries(fx.grads)) {
          const grad = named.get(key)!.grad;
          expect(grad, `${label} grad of ${key}`).not.toBeNull();
          expectClose(await grad!.data(), b64F32(g), { rtol: 2e-3, atol: 1e-5, label: `${label} grad ${key}` });
        }
        for (const t of [inputIds, attentionMask, labels, logits, loss!]) t.dispose();
        model.dispose();
      }
    });
  }

  it('gpt2: the bare GPT2Model checkpoint (keys without transformer.) loads to the same logits', async () => {
    const fx = gpt2 as ModelFixture;
    for (const backend of backends) {
      setBackend(backend);
      const { model } = await fromPretrained(openSource({ ...fixtureFiles(fx), 'model.safetensors': b64Bytes(fx.bareModelSafetensors!) }));
      const inputIds = ids2d(fx.input_ids);
      const attentionMask = ids2d(fx.attention_mask);
      const { logits } = model.forward({ inputIds, attentionMask });
      const v = model.config.vocab_size;
      expectClose(keptRows(await logits.data(), fx.attention_mask, v), keptRows(b64F32(fx.logits), fx.attention_mask, v), { rtol: 2e-4, atol: 2e-5, label: `bare gpt2 ${backend} logits` });
      for (const t of [inputIds, attentionMask, logits]) t.dispose();
      model.dispose();
    }
  });

  it('llama: prefix keys/values (prefix tuning) match PEFT semantics, with gradients', async () => {
    const fx = llama as ModelFixture;
    const pre = fx.prefix!;
    for (const backend of backends) {
      setBackend(backend);
      const { model } = await fromPretrained(openSource(fixtureFiles(fx)));
      model.freeze();
      const prefixKeyValues = pre.keys.map((k, i) => ({
        key: tensor(b64F32(k), pre.shape, { requiresGrad: true }),
        value: tensor(b64F32(pre.values[i]), pre.shape, { requiresGrad: true }),
      }));
      const inputIds = ids2d(fx.input_ids);
      // The mask covers past + new tokens; ones for the prefix are prepended inside.
      const attentionMask = ids2d(fx.attention_mask);
      const labels = ids2d(fx.labels);
      const { logits, loss } = model.forward({ inputIds, attentionMask, labels, prefixKeyValues });
      const v = model.config.vocab_size;
      const label = `prefix ${backend}`;
      expectClose(keptRows(await logits.data(), fx.attention_mask, v), keptRows(b64F32(pre.logits), fx.attention_mask, v), { rtol: 2e-4, atol: 2e-5, label: `${label} logits` });
      expectClose([await loss!.item()], [pre.loss], { rtol: 2e-5, atol: 0, label: `${label} loss` });
      loss!.backward();
      for (let i = 0; i < prefixKeyValues.length; i++) {
        expectClose(await prefixKeyValues[i].key.grad!.data(), b64F32(pre.key_grads[i]), { rtol: 2e-3, atol: 1e-5, label: `${label} key grad ${i}` });
        expectClose(await prefixKeyValues[i].value.grad!.data(), b64F32(pre.value_grads[i]), { rtol: 2e-3, atol: 1e-5, label: `${label} value grad ${i}` });
      }
      for (const kv of prefixKeyValues) {
        kv.key.dispose();
        kv.value.dispose();
      }
      for (const t of [inputIds, attentionMask, labels, logits, loss!]) t.dispose();
      model.dispose();
    }
  });
});

describe('parameter counts (meta backend, shapes only)', () => {
  it('LLaMA-7B has 6,738,415,616 parameters (untied)', () => {
    const model = causalLMFromConfig(
      { model_type: 'llama', hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, intermediate_size: 11008, vocab_size: 32000, tie_word_embeddings: false },
      { backend: 'meta' },
    );
    expect(model.numParameters()).toBe(6_738_415_616);
    // PEFT's "all params" with r=8 LoRA on q_proj and v_proj (REFERENCE.md): 6,742,609,920.
    expect(model.numParameters() + 32 * 2 * 8 * (4096 + 4096)).toBe(6_742_609_920);
    model.dispose();
  });

  it('GPT-2 small has 124,439,808 parameters (lm_head tied to wte, counted once)', () => {
    const model = causalLMFromConfig({ model_type: 'gpt2' }, { backend: 'meta' });
    expect(model.numParameters()).toBe(124_439_808);
    const names = model.namedParameters().map(([n]) => n);
    expect(names).not.toContain('lm_head.weight');
    expect(names).toContain('transformer.h.11.attn.c_attn.weight');
    expect(model.getSubmodule('lm_head')).toBeDefined();
    expect(typeof (model as GPT2LMHeadModel).lm_head.dequantizedWeight).toBe('function');
    expect(model.stateDict().get('lm_head.weight')).toBe(model.stateDict().get('transformer.wte.weight'));
    model.dispose();
  });

  it('HF parameter paths for LLaMA-family models', () => {
    const model = causalLMFromConfig({ model_type: 'qwen2', hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 128, vocab_size: 100, tie_word_embeddings: true }, { backend: 'meta' });
    expect(model.namedParameters().map(([n, p]) => `${n} [${p.shape.join(',')}]`)).toEqual([
      'model.embed_tokens.weight [100,64]',
      'model.layers.0.self_attn.q_proj.weight [64,64]',
      'model.layers.0.self_attn.q_proj.bias [64]',
      'model.layers.0.self_attn.k_proj.weight [32,64]',
      'model.layers.0.self_attn.k_proj.bias [32]',
      'model.layers.0.self_attn.v_proj.weight [32,64]',
      'model.layers.0.self_attn.v_proj.bias [32]',
      'model.layers.0.self_attn.o_proj.weight [64,64]',
      'model.layers.0.mlp.gate_proj.weight [128,64]',
      'model.layers.0.mlp.up_proj.weight [128,64]',
      'model.layers.0.mlp.down_proj.weight [64,128]',
      'model.layers.0.input_layernorm.weight [64]',
      'model.layers.0.post_attention_layernorm.weight [64]',
      'model.norm.weight [64]',
    ]);
    model.dispose();
  });

  it('rejects unknown model types and bad configs with the field named', () => {
    expect(() => causalLMFromConfig({ model_type: 'bert' })).toThrow(/model_type "bert" is not supported/);
    expect(() => causalLMFromConfig({ model_type: 'llama', num_attention_heads: 6, num_key_value_heads: 4 }, { backend: 'meta' })).toThrow(/num_key_value_heads/);
  });
});

describe('checkpoint loading errors', () => {
  it('lists every missing and unexpected key at once', async () => {
    const fx = gpt2 as ModelFixture;
    const cfg = JSON.parse(fx.files['config.json']) as Record<string, unknown>;
    cfg.n_layer = 3;
    await expect(fromPretrained(openSource({ ...fixtureFiles(fx), 'config.json': JSON.stringify(cfg) }), { backend: 'cpu' })).rejects.toThrow(/missing: transformer\.h\.2\.ln_1\.weight[\s\S]*missing: transformer\.h\.2\.mlp\.c_proj\.bias/);
    void tidy;
  });
});
