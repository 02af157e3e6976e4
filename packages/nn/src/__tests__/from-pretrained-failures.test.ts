/**
 * `fromPretrained` checks the config and every tensor's shape and dtype against the
 * checkpoint before it allocates the model, so each failure (bad config, missing,
 * extra, mis-shaped or wrongly typed tensor, truncated file, bad tokenizer) ends in a
 * typed error naming the file and leaves no live tensor or buffer, on cpu and webgpu.
 * The checkpoint is transformers' own (`fixtures/models/llama.json`, bf16 weights).
 */
import { type BackendName, manualSeed, memory, randn } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, liveCounts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type RawTensor, ConfigError, LlamaForCausalLM, SafetensorsError, WeightsMismatchError, fromPretrained, loadCausalLMWeights, openSource, parseSafetensors, serializeSafetensors } from '../index.js';
import llama from './fixtures/models/llama.json' with { type: 'json' };
import { type ModelFixture, fixtureFiles } from './fixtures/models/fixture.js';

beforeAll(async () => {
  await initBackends();
});

const fx = llama as ModelFixture;
const good = fixtureFiles(fx);
const weights = good['model.safetensors'] as Uint8Array;

function edited(edit: (t: Map<string, RawTensor>) => void): Uint8Array {
  const { tensors } = parseSafetensors(weights, 'base');
  const copy = new Map([...tensors].map(([k, v]) => [k, { ...v, data: v.data.slice() }]));
  edit(copy);
  return serializeSafetensors(copy, { format: 'pt' });
}

function config(patch: Record<string, unknown>): string {
  return JSON.stringify({ ...(JSON.parse(fx.files['config.json']) as object), ...patch });
}

const Q = 'model.layers.0.self_attn.q_proj.weight';
const FAILURES: { label: string; files: Record<string, Uint8Array | string>; type: abstract new (...a: never[]) => Error; error: RegExp }[] = [
  { label: 'invalid JSON config', files: { 'config.json': '{"model_type": "llama",' }, type: ConfigError, error: /memory\/config\.json: not valid JSON/ },
  { label: 'rope_theta <= 0', files: { 'config.json': config({ rope_parameters: { rope_type: 'default', rope_theta: -1 } }) }, type: ConfigError, error: /memory\/config\.json: llama config: 'rope_parameters\.rope_theta' must be a finite number > 0, got -1/ },
  { label: 'negative rms_norm_eps', files: { 'config.json': config({ rms_norm_eps: -1e-6 }) }, type: ConfigError, error: /memory\/config\.json: llama config: 'rms_norm_eps' must be a finite number >= 0/ },
  { label: 'non-integer size', files: { 'config.json': config({ intermediate_size: 64.5 }) }, type: ConfigError, error: /'intermediate_size' must be a positive integer, got 64\.5/ },
  { label: 'sizes disagree with the checkpoint', files: { 'config.json': config({ intermediate_size: 48 }) }, type: WeightsMismatchError, error: /shape mismatch: model\.layers\.0\.mlp\.gate_proj\.weight: model \[48, 32\], file \[64, 32\]/ },
  { label: 'missing key', files: { 'model.safetensors': edited((t) => t.delete(Q)) }, type: WeightsMismatchError, error: /in memory:[\s\S]*missing: model\.layers\.0\.self_attn\.q_proj\.weight/ },
  { label: 'extra key', files: { 'model.safetensors': edited((t) => t.set('model.layers.9.extra.weight', t.get(Q)!)) }, type: WeightsMismatchError, error: /unexpected: model\.layers\.9\.extra\.weight/ },
  { label: 'integer dtype for a float weight', files: { 'model.safetensors': edited((t) => { const r = t.get(Q)!; t.set(Q, { dtype: 'I16', shape: r.shape, data: r.data }); }) }, type: WeightsMismatchError, error: /dtype: model\.layers\.0\.self_attn\.q_proj\.weight: the model holds a float tensor, the file I16/ },
  { label: 'truncated weights', files: { 'model.safetensors': weights.subarray(0, weights.length - 7) }, type: SafetensorsError, error: /memory\/model\.safetensors: / },
];

async function failOnce(backend: BackendName, f: (typeof FAILURES)[number]): Promise<void> {
  const error = await fromPretrained(openSource({ ...good, ...f.files }), { backend, tokenizer: false }).catch((e: unknown) => e);
  expect(error, `${f.label}: ${String(error)}`).toBeInstanceOf(f.type);
  expect((error as Error).message, f.label).toMatch(f.error);
}

describe('fromPretrained failures allocate nothing and leak nothing', () => {
  for (const f of FAILURES) {
    it(f.label, async () => {
      for (const backend of backendsUnderTest()) {
        const live = liveCounts(backend);
        const peak = memory(backend).peakBytes;
        await failOnce(backend, f);
        expect(liveCounts(backend), backend).toEqual(live);
        // Checked against a shapes-only model: the real one was never allocated.
        expect(memory(backend).peakBytes, backend).toBe(peak);
      }
    });
  }

  it('a bad tokenizer.json fails before the model exists', async () => {
    for (const backend of backendsUnderTest()) {
      const live = liveCounts(backend);
      await expect(fromPretrained(openSource({ ...good, 'tokenizer.json': '{"model": ' }), { backend })).rejects.toThrow();
      expect(liveCounts(backend), backend).toEqual(live);
    }
  });

  it('100 failing loads in a loop leave live tensors and buffers flat', async () => {
    for (const backend of backendsUnderTest()) {
      const live = liveCounts(backend);
      for (let i = 0; i < 100; i++) await failOnce(backend, FAILURES[i % FAILURES.length]);
      expect(liveCounts(backend), backend).toEqual(live);
    }
  });

  it('loadCausalLMWeights into a live model copies nothing when any tensor is wrong', async () => {
    const model = new LlamaForCausalLM(JSON.parse(fx.files['config.json']) as Record<string, unknown>, { backend: 'cpu' });
    const before = await model.model.embed_tokens.weight.data();
    const { tensors } = parseSafetensors(edited((t) => t.delete(Q)), 'cut.safetensors');
    expect(() => loadCausalLMWeights(model, tensors, { file: 'cut.safetensors' })).toThrow(/loadCausalLMWeights: 1 problem\(s\) in cut\.safetensors/);
    expect(await model.model.embed_tokens.weight.data()).toEqual(before);
    model.dispose();
  });
});

describe('fromPretrained and the random number stream', () => {
  it('leaves the RNG as the caller had it: a seed set before loading gives the same draws after it', async () => {
    for (const backend of backendsUnderTest()) {
      manualSeed(1234);
      const expected = randn([16], { backend });
      const want = Array.from((await expected.data()) as Float32Array);
      expected.dispose();
      manualSeed(1234);
      const { model } = await fromPretrained(openSource(good), { backend });
      const after = randn([16], { backend });
      expect(Array.from((await after.data()) as Float32Array)).toEqual(want);
      after.dispose();
      model.dispose();
    }
  });
});
