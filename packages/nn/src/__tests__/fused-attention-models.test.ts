/**
 * `attnImplementation: 'fused'` on GPT-2 and the LLaMA family: logits and every
 * parameter gradient equal the eager attention within 1e-5 relative (and transformers'
 * golden logits as the eager ones do), with a padding mask, with gradient checkpointing,
 * and through a KV cache (generation and a forward over past keys); bad settings and
 * attention dropout in training are refused.
 */
import { type CausalLM, GPT2LMHeadModel, KVCache, LlamaForCausalLM, fromPretrained, generate, openSource } from '@webpeft/nn';
import { type BackendName, manualSeed, noGrad, setBackend, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, disposeAfterTest, expectClose, initBackends, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import gpt2 from './fixtures/models/gpt2.json' with { type: 'json' };
import llama from './fixtures/models/llama.json' with { type: 'json' };
import mistral from './fixtures/models/mistral.json' with { type: 'json' };
import { type ModelFixture, b64F32, fixtureFiles } from './fixtures/models/fixture.js';

beforeAll(async () => {
  await initBackends();
});

/** 1e-5 relative to each tensor's largest magnitude (elementwise relative error is meaningless near 0). */
function closeTo(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(expected[i]));
  expectClose(actual, expected, { rtol: 1e-5, atol: 1e-5 * m, label });
}

interface Step {
  logits: Float32Array;
  grads: Map<string, Float32Array>;
}

/** Forward (with `mask`, labels = ids) and backward; returns logits and named gradients, clearing them. */
async function step(model: CausalLM, ids: number[][], mask: number[][], backend: BackendName): Promise<Step> {
  const shape = [ids.length, ids[0].length];
  const inputIds = tensor(Int32Array.from(ids.flat()), shape, { dtype: 'i32', backend });
  const attentionMask = tensor(Int32Array.from(mask.flat()), shape, { dtype: 'i32', backend });
  const { logits, loss } = tidy(() => model.forward({ inputIds, attentionMask, labels: inputIds }));
  loss!.backward();
  const grads = new Map<string, Float32Array>();
  for (const [name, p] of model.namedParameters()) {
    grads.set(name, Float32Array.from((await p.grad!.data()) as Float32Array));
    p.grad!.dispose();
    p.grad = null;
  }
  const out = { logits: Float32Array.from((await logits.data()) as Float32Array), grads };
  for (const x of [logits, loss!, inputIds, attentionMask]) x.dispose();
  return out;
}

function expectSameStep(fused: Step, eager: Step, label: string): void {
  closeTo(fused.logits, eager.logits, `${label} logits`);
  expect([...fused.grads.keys()]).toEqual([...eager.grads.keys()]);
  for (const [name, g] of fused.grads) closeTo(g, eager.grads.get(name)!, `${label} grad ${name}`);
}

const FIXTURES: [string, ModelFixture][] = [
  ['gpt2', gpt2],
  ['llama', llama],
  ['mistral', mistral],
];

describe('fused attention in the pretrained tiny checkpoints', () => {
  for (const [name, fx] of FIXTURES) {
    it(`${name}: fromPretrained({ attnImplementation: 'fused' }) gives the eager logits and gradients (1e-5) and transformers' logits`, async () => {
      for (const backend of backendsUnderTest()) {
        if (backend === 'meta') continue;
        setBackend(backend);
        const eager = disposeAfterTest((await fromPretrained(openSource(fixtureFiles(fx)))).model);
        const fused = disposeAfterTest((await fromPretrained(openSource(fixtureFiles(fx)), { attnImplementation: 'fused' })).model);
        expect(typeof fused.setAttnImplementation).toBe('function');
        expect((fused as GPT2LMHeadModel | LlamaForCausalLM).attnImplementation).toBe('fused');
        const a = await step(fused, fx.input_ids, fx.attention_mask, backend);
        const b = await step(eager, fx.input_ids, fx.attention_mask, backend);
        expectSameStep(a, b, `${name} ${backend}`);
        // Kept positions against transformers, with the golden test's bound.
        const v = fused.config.vocab_size;
        const golden = b64F32(fx.logits);
        const kept = (x: ArrayLike<number>) => fx.attention_mask.flat().flatMap((m, i) => (m ? Array.from({ length: v }, (_, j) => x[i * v + j]) : []));
        expectClose(kept(a.logits), kept(golden), { rtol: 2e-4, atol: 2e-5, label: `${name} ${backend} fused vs transformers` });
      }
    });
  }
});

const V = 40;
/** Tiny models with no dropout (the fused path refuses attention dropout in training). */
const MODELS = {
  gpt2: (backend: BackendName) => new GPT2LMHeadModel({ vocab_size: V, n_positions: 48, n_embd: 32, n_layer: 2, n_head: 2, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 }, { backend }),
  llama: (backend: BackendName) =>
    new LlamaForCausalLM({ vocab_size: V, hidden_size: 64, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 48 }, { backend }),
} as const;

function build(kind: keyof typeof MODELS, backend: BackendName): GPT2LMHeadModel | LlamaForCausalLM {
  manualSeed(7);
  return disposeAfterTest(MODELS[kind](backend));
}

describe.each(Object.keys(MODELS) as (keyof typeof MODELS)[])('fused attention on a tiny %s', (kind) => {
  const ids = [Array.from(randomInts(21, V, 3)), Array.from(randomInts(21, V, 4))];
  // Left padding by 4 in the second row: its first queries see no key at all.
  const mask = [Array.from({ length: 21 }, () => 1), Array.from({ length: 21 }, (_, i) => (i < 4 ? 0 : 1))];

  it('training step with gradient checkpointing equals eager without it (1e-5)', async () => {
    for (const backend of backendsUnderTest()) {
      if (backend === 'meta') continue;
      const model = build(kind, backend);
      model.train();
      const eager = await step(model, ids, mask, backend);
      model.setAttnImplementation('fused').gradientCheckpointingEnable();
      const fused = await step(model, ids, mask, backend);
      expectSameStep(fused, eager, `${kind} ${backend} checkpointed`);
    }
  });

  it('KV-cache generation and a forward over past keys equal eager', async () => {
    for (const backend of backendsUnderTest()) {
      if (backend === 'meta') continue;
      setBackend(backend);
      const model = build(kind, backend);
      model.eval();
      const prompt = [Array.from(randomInts(5, V, 8)), Array.from(randomInts(5, V, 9))];
      const attentionMask = [
        [1, 1, 1, 1, 1],
        [0, 0, 1, 1, 1],
      ];
      const opts = { maxNewTokens: 5, attentionMask, outputLogits: true, eosTokenId: [] };
      const eager = await generate(model, prompt, { ...opts, useCache: true });
      model.setAttnImplementation('fused');
      const fused = await generate(model, prompt, { ...opts, useCache: true });
      expect(fused.sequences).toEqual(eager.sequences);
      fused.logits!.forEach((l, i) => closeTo(l, eager.logits![i], `${kind} ${backend} generation step ${i}`));
      // Several new queries over a filled cache: the causal offset L - T inside the kernel.
      const logitsWithPast = async (impl: 'eager' | 'fused') => {
        model.setAttnImplementation(impl);
        const cache = new KVCache();
        const first = tensor(Int32Array.from(randomInts(9, V, 10)), [1, 9], { dtype: 'i32', backend });
        const next = tensor(Int32Array.from(randomInts(6, V, 11)), [1, 6], { dtype: 'i32', backend });
        const out = noGrad(() => {
          model.forward({ inputIds: first, pastKeyValues: cache }).logits.dispose();
          return model.forward({ inputIds: next, pastKeyValues: cache }).logits;
        });
        const values = Float32Array.from((await out.data()) as Float32Array);
        for (const x of [out, first, next]) x.dispose();
        cache.dispose();
        return values;
      };
      closeTo(await logitsWithPast('fused'), await logitsWithPast('eager'), `${kind} ${backend} forward over a cache`);
    }
  });
});

describe('fused attention settings', () => {
  it('refuses an unknown implementation and attention dropout in training, naming them', async () => {
    const backend = backendsUnderTest().includes('webgpu') ? 'webgpu' : 'cpu';
    const model = disposeAfterTest(new GPT2LMHeadModel({ vocab_size: V, n_positions: 16, n_embd: 16, n_layer: 1, n_head: 2, attn_pdrop: 0.1 }, { backend }));
    expect(() => model.setAttnImplementation('flash' as 'fused')).toThrow(/GPT2LMHeadModel\.setAttnImplementation: attnImplementation "flash" is not one of 'eager', 'fused'/);
    expect(model.attnImplementation).toBe('eager');
    await expect(fromPretrained(openSource(fixtureFiles(gpt2)), { attnImplementation: 'sdpa' as 'fused' })).rejects.toThrow(/fromPretrained: attnImplementation "sdpa"/);
    model.setAttnImplementation('fused').train();
    const ids = tensor(Int32Array.from(randomInts(6, V, 12)), [1, 6], { dtype: 'i32', backend });
    expect(() => tidy(() => model.forward({ inputIds: ids }))).toThrow(/attnImplementation 'fused' does not apply attention dropout \(p = 0\.1\) in training/);
    // In eval mode dropout is off and the fused path runs.
    model.eval();
    tidy(() => model.forward({ inputIds: ids })).logits.dispose();
    ids.dispose();
  });
});
