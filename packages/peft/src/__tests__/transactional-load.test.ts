/**
 * Failed adapter loads change nothing: every failure mode (bad shape, missing key,
 * extra key, bad dtype, truncated file, bad config, a huge rank) leaves the caller's
 * model with the same module tree, parameters, trainability and live tensors, allocates
 * nothing, and a retry with good files then succeeds. The adapter files are PEFT's own
 * (`fixtures/adapter_config_fuzz.json`, LoRA r=2 on q_proj/v_proj and prompt tuning on a
 * tiny LLaMA).
 */
import { type Module, type RawTensor, ConfigError, LlamaForCausalLM, SafetensorsError, WeightsMismatchError, parseSafetensors, serializeSafetensors } from '@webpeft/nn';
import { type BackendName, memory } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, liveCounts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type LoraConfig, getPeftModel, loadPeftModel, loadPromptLearningModel, memoryFiles } from '../index.js';
import corpus from './fixtures/adapter_config_fuzz.json' with { type: 'json' };
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

beforeAll(async () => {
  await initBackends();
});

const lora = corpus.bases.lora;
const prompt = corpus.bases.prompt;

function bytesOf(b64: string): Uint8Array {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function tinyLlama(backend: BackendName): LlamaForCausalLM {
  return new LlamaForCausalLM({ model_type: 'llama', ...corpus.llama }, { backend });
}

/** Module tree, parameter names/shapes/trainability: what a failed load must leave as it was. */
function shapeOf(model: Module): string[] {
  return [
    ...model.namedModules().map(([p, m]) => `${p}:${m.constructor.name}`),
    ...model.namedParameters().map(([n, t]) => `${n}:[${t.shape.join(',')}]:${t.requiresGrad}`),
  ];
}

/** The LoRA weight file with `edit` applied to its tensors. */
function editedWeights(edit: (t: Map<string, RawTensor>) => void): Uint8Array {
  const { tensors } = parseSafetensors(bytesOf(lora['adapter_model.safetensors']), 'base');
  const copy = new Map([...tensors].map(([k, v]) => [k, { ...v, data: v.data.slice() }]));
  edit(copy);
  return serializeSafetensors(copy, { format: 'pt' });
}

function loraConfig(patch: Record<string, unknown>): string {
  return JSON.stringify({ ...(JSON.parse(lora['adapter_config.json']) as object), ...patch });
}

const Q0 = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';

/** Each failure mode: its files and the error it must end in. */
const FAILURES: { label: string; files: () => Record<string, Uint8Array | string>; error: RegExp; type: abstract new (...a: never[]) => Error }[] = [
  { label: 'bad shape (r disagrees with the file)', files: () => ({ 'adapter_config.json': loraConfig({ r: 3 }) }), type: WeightsMismatchError, error: /shape mismatch: .*q_proj\.lora_A\.weight: model \[3, 16\], file \[2, 16\]/ },
  { label: 'missing key', files: () => ({ 'adapter_model.safetensors': editedWeights((t) => t.delete(Q0)) }), type: WeightsMismatchError, error: /missing: .*layers\.0\.self_attn\.q_proj\.lora_A\.weight/ },
  {
    label: 'extra key',
    files: () => ({ 'adapter_model.safetensors': editedWeights((t) => t.set('base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight', t.get(Q0)!)) }),
    type: WeightsMismatchError,
    error: /unexpected: .*k_proj\.lora_A\.weight/,
  },
  {
    label: 'bad dtype (I32 where the adapter holds floats)',
    files: () => ({ 'adapter_model.safetensors': editedWeights((t) => t.set(Q0, { ...t.get(Q0)!, dtype: 'I32' })) }),
    type: WeightsMismatchError,
    error: /dtype: .*q_proj\.lora_A\.weight: the model holds a float tensor, the file I32/,
  },
  {
    label: 'truncated file',
    files: () => {
      const b = bytesOf(lora['adapter_model.safetensors']);
      return { 'adapter_model.safetensors': b.subarray(0, b.length - 5) };
    },
    type: SafetensorsError,
    error: /memory\/adapter_model\.safetensors: .*(out of range|cover only)/,
  },
  { label: 'bad config (lora_alpha null)', files: () => ({ 'adapter_config.json': loraConfig({ lora_alpha: null }) }), type: ConfigError, error: /memory\/adapter_config\.json: LORA adapter config: 'lora_alpha' must be a finite number, got null/ },
  { label: 'invalid JSON', files: () => ({ 'adapter_config.json': '{"r": 2,' }), type: ConfigError, error: /memory\/adapter_config\.json: not valid JSON/ },
  { label: 'target_modules: 123', files: () => ({ 'adapter_config.json': loraConfig({ target_modules: 123 }) }), type: ConfigError, error: /'target_modules' must be a module name regex .* got 123/ },
  { label: 'use_rslora: "false"', files: () => ({ 'adapter_config.json': loraConfig({ use_rslora: 'false' }) }), type: ConfigError, error: /'use_rslora' must be true or false, got "false"/ },
  { label: 'huge rank (r = 1e7) and a small file', files: () => ({ 'adapter_config.json': loraConfig({ r: 1e7 }) }), type: WeightsMismatchError, error: /model \[10000000, 16\], file \[2, 16\]/ },
];

function files(patch: Record<string, Uint8Array | string>) {
  return memoryFiles({ 'adapter_config.json': lora['adapter_config.json'], 'adapter_model.safetensors': bytesOf(lora['adapter_model.safetensors']), ...patch });
}

describe('loadPeftModel is transactional', () => {
  for (const f of FAILURES) {
    it(`${f.label}: a typed error, the model as before, nothing allocated; a retry succeeds`, async () => {
      for (const backend of backendsUnderTest()) {
        const model = own(tinyLlama(backend));
        const before = shapeOf(model);
        const live = liveCounts(backend);
        const peak = memory(backend).peakBytes;
        const error = await loadPeftModel(model, files(f.files())).catch((e: unknown) => e);
        expect(error, `${backend}: ${String(error)}`).toBeInstanceOf(f.type);
        expect((error as Error).message).toMatch(f.error);
        expect(shapeOf(model), backend).toEqual(before);
        expect(liveCounts(backend), backend).toEqual(live);
        // Nothing was allocated on the way (a 10^7-row lora_A would be 640 MB).
        expect(memory(backend).peakBytes, backend).toBe(peak);
        const peft = await loadPeftModel(model, files({}));
        expect(peft.getNbTrainableParameters().trainable).toBe(0);
        expect(peft.adapterStateDict().size).toBe(8);
      }
    });
  }

  it('a failed loadAdapter leaves a PeftModel with its adapters, layers and tensors as before', async () => {
    for (const backend of backendsUnderTest()) {
      const peft = own(await loadPeftModel(tinyLlama(backend), files({}), { isTrainable: true }));
      const before = shapeOf(peft);
      const live = liveCounts(backend);
      for (const f of FAILURES) {
        await expect(peft.loadAdapter(files(f.files()), 'second'), f.label).rejects.toThrow(f.error);
        expect(shapeOf(peft), f.label).toEqual(before);
        expect([...peft.peftConfig.keys()]).toEqual(['default']);
        expect(liveCounts(backend), f.label).toEqual(live);
      }
      await peft.loadAdapter(files({}), 'second');
      expect([...peft.peftConfig.keys()]).toEqual(['default', 'second']);
    }
  });

  it('100 failing loads in a loop leave live tensors and buffers flat', async () => {
    for (const backend of backendsUnderTest()) {
      const model = own(tinyLlama(backend));
      const live = liveCounts(backend);
      for (let i = 0; i < 100; i++) {
        const f = FAILURES[i % FAILURES.length];
        await expect(loadPeftModel(model, files(f.files()))).rejects.toThrow(f.error);
      }
      expect(liveCounts(backend), backend).toEqual(live);
    }
  });
});

describe('loadPromptLearningModel is transactional', () => {
  it('an encoder that disagrees with the file fails before it is allocated and leaves the model trainable as before', async () => {
    for (const backend of backendsUnderTest()) {
      const model = own(tinyLlama(backend));
      const before = shapeOf(model);
      const live = liveCounts(backend);
      const bad = memoryFiles({ 'adapter_config.json': JSON.stringify({ ...(JSON.parse(prompt['adapter_config.json']) as object), num_virtual_tokens: 5 }), 'adapter_model.safetensors': bytesOf(prompt['adapter_model.safetensors']) });
      for (let i = 0; i < 20; i++) {
        await expect(loadPromptLearningModel(model, bad)).rejects.toThrow(/shape mismatch: prompt_embeddings: model \[5, 16\], file \[3, 16\]/);
      }
      expect(shapeOf(model), 'requiresGrad restored after the wrapper froze the model').toEqual(before);
      expect(liveCounts(backend)).toEqual(live);
      const ok = await loadPromptLearningModel(model, memoryFiles({ 'adapter_config.json': prompt['adapter_config.json'], 'adapter_model.safetensors': bytesOf(prompt['adapter_model.safetensors']) }));
      expect(ok.encoder().embedding.weight.shape).toEqual([3, 16]);
      // The base model is owned above; the encoder is the wrapper's own.
      ok.encoder().dispose();
    }
  });
});

describe('JS configs', () => {
  it('a snake_case key is an error naming the camelCase field; the model is unchanged', () => {
    const model = own(tinyLlama('cpu'));
    const before = shapeOf(model);
    const bad = { peftType: 'LORA', r: 4, lora_alpha: 16, targetModules: ['q_proj'] } as LoraConfig;
    const error = (() => {
      try {
        getPeftModel(model, bad);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('loraAlpha');
    expect((error as Error).message).toMatch(/'lora_alpha' is adapter_config\.json naming; the JS config field is 'loraAlpha'/);
    expect(shapeOf(model)).toEqual(before);
  });

  it('wrong types name the field: targetModules 123, useRslora "false", loraAlpha null', () => {
    const model = own(tinyLlama('cpu'));
    const cases: [Record<string, unknown>, string][] = [
      [{ targetModules: 123 }, 'targetModules'],
      [{ useRslora: 'false' }, 'useRslora'],
      [{ loraAlpha: Number.NaN }, 'loraAlpha'],
      [{ r: 2.5 }, 'r'],
      [{ rankPattern: { q_proj: '4' } }, 'rankPattern'],
    ];
    for (const [patch, field] of cases) {
      let error: unknown;
      try {
        getPeftModel(model, { peftType: 'LORA', targetModules: ['q_proj'], ...patch } as LoraConfig);
      } catch (e) {
        error = e;
      }
      expect(error, field).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).field, field).toBe(field);
    }
  });
});
