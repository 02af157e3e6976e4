import { type CausalLM, SequenceLengthError, fromPretrained, generate, openSource } from '@webpeft/nn';
import { type BackendName, noGrad, tensor } from '@webpeft/tensor';
import { backendsUnderTest, base64Bytes, expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { type PromptLearningModel, type PromptableModel, loadPromptLearningModel, memoryFiles } from '../index.js';
import bases from './fixtures/p_tuning_golden.json' with { type: 'json' };
import golden from './fixtures/prompt_generate_golden.json' with { type: 'json' };
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

// Reference values: tools/golden/prompt_generate_golden.py, which runs PEFT 0.21's
// PeftModelForCausalLM.generate (greedy, KV cache) with prompt tuning, P-tuning (MLP) and
// prefix tuning adapters on the tiny transformers GPT-2 and LLaMA of p_tuning_golden.json.
const TOL = { rtol: 2e-4, atol: 2e-5 };
const METHODS = ['promptTuning', 'pTuningMlp', 'prefixTuning'] as const;
const PROMPTS = ['unpadded', 'padded'] as const;

interface Run {
  sequences: number[][];
  scores: number[][];
}
interface Case {
  files: { 'adapter_config.json': string; 'adapter_model.safetensors': string };
  unpadded: Run;
  padded: Run;
}
type Family = { eosTokenId: number | null } & Record<(typeof METHODS)[number], Case>;
const prompts = golden.prompts as Record<(typeof PROMPTS)[number], { ids: number[][]; mask: number[][] | null }>;

beforeAll(async () => {
  await initBackends();
});

async function loadBase(family: 'gpt2' | 'llama', backend: BackendName): Promise<CausalLM & PromptableModel> {
  const ck = bases[family].checkpoint;
  return own((await fromPretrained(openSource({ 'config.json': ck['config.json'], 'model.safetensors': base64Bytes(ck['model.safetensors']) }), { backend })).model as CausalLM & PromptableModel);
}

async function loadAdapter(family: 'gpt2' | 'llama', method: (typeof METHODS)[number], backend: BackendName): Promise<PromptLearningModel> {
  const fx = (golden[family] as Family)[method];
  const files = memoryFiles({ 'adapter_config.json': fx.files['adapter_config.json'], 'adapter_model.safetensors': base64Bytes(fx.files['adapter_model.safetensors']) });
  return own(await loadPromptLearningModel(await loadBase(family, backend), files));
}

function optionsOf(family: 'gpt2' | 'llama', kind: (typeof PROMPTS)[number]) {
  const eos = (golden[family] as Family).eosTokenId;
  const mask = prompts[kind].mask;
  return { maxNewTokens: golden.maxNewTokens, padTokenId: golden.padTokenId, eosTokenId: eos === null ? [] : eos, ...(mask ? { attentionMask: mask } : {}) };
}

for (const family of ['gpt2', 'llama'] as const) {
  describe(`generate() with prompt-learning adapters on a transformers ${family} matches PEFT's generate`, () => {
    for (const method of METHODS) {
      it(`${method}: greedy tokens and every step's logits, unpadded and left-padded batches, with and without the cache`, async () => {
        const fx = (golden[family] as Family)[method];
        for (const backend of backendsUnderTest()) {
          const peft = await loadAdapter(family, method, backend);
          for (const kind of PROMPTS) {
            const label = `${family} ${method} ${kind} ${backend}`;
            const out = await generate(peft, prompts[kind].ids, { ...optionsOf(family, kind), outputLogits: true });
            expect(out.sequences, label).toEqual(fx[kind].sequences);
            expect(out.logits!.length, label).toBe(fx[kind].scores.length);
            out.logits!.forEach((l, step) => expectClose(l, fx[kind].scores[step], { ...TOL, label: `${label} step ${step}` }));
            const uncached = await generate(peft, prompts[kind].ids, { ...optionsOf(family, kind), useCache: false });
            expect(uncached.sequences, `${label} without cache`).toEqual(fx[kind].sequences);
          }
        }
      });
    }
  });
}

describe('generate() with prompt-learning models', () => {
  it('runs the encoder once per call with the cache (the prefill), and once per step without it', async () => {
    for (const method of METHODS) {
      const peft = await loadAdapter('llama', method, 'cpu');
      const spy = vi.spyOn(peft.encoder(), 'forward');
      await generate(peft, prompts.padded.ids, { ...optionsOf('llama', 'padded'), eosTokenId: [] });
      expect(spy, method).toHaveBeenCalledTimes(1);
      spy.mockClear();
      await generate(peft, prompts.padded.ids, { ...optionsOf('llama', 'padded'), eosTokenId: [], useCache: false });
      expect(spy, method).toHaveBeenCalledTimes(golden.maxNewTokens);
      spy.mockRestore();
    }
  });

  it('samples reproducibly from a seed; top-k 1 is greedy', async () => {
    for (const backend of backendsUnderTest()) {
      for (const method of METHODS) {
        const peft = await loadAdapter('llama', method, backend);
        const base = { ...optionsOf('llama', 'padded'), eosTokenId: [] as number[], doSample: true, temperature: 1.5 };
        const a = await generate(peft, prompts.padded.ids, { ...base, seed: 3 });
        const b = await generate(peft, prompts.padded.ids, { ...base, seed: 3 });
        expect(b.sequences).toEqual(a.sequences);
        const seeds = await Promise.all([4, 5, 6, 7].map(async (seed) => JSON.stringify((await generate(peft, prompts.padded.ids, { ...base, seed })).sequences)));
        expect(new Set([JSON.stringify(a.sequences), ...seeds]).size, `${method} ${backend}: seeds give different samples`).toBeGreaterThan(1);
        const topOne = await generate(peft, prompts.padded.ids, { ...optionsOf('llama', 'padded'), doSample: true, topK: 1, seed: 9 });
        expect(topOne.sequences, `${method} ${backend}`).toEqual((golden.llama as Family)[method].padded.sequences);
      }
    }
  });

  it('restores training mode after overlapping calls, and runs every call in eval mode', async () => {
    const peft = await loadAdapter('llama', 'prefixTuning', 'cpu');
    peft.train();
    const modes: boolean[] = [];
    const forward = peft.forward.bind(peft);
    const spy = vi.spyOn(peft, 'forward').mockImplementation((input) => {
      modes.push(peft.training || peft.modules().some((m) => m.training));
      return forward(input);
    });
    const opts = { ...optionsOf('llama', 'unpadded'), eosTokenId: [] };
    // Both calls are in flight at once: each awaits its readbacks while the other runs. The
    // first to start ends first, which must not return the model to training mode early.
    const [b, a] = await Promise.all([generate(peft, prompts.unpadded.ids, { ...opts, maxNewTokens: 3 }), generate(peft, prompts.unpadded.ids, opts)]);
    expect(a.sequences[0].length).toBe(prompts.unpadded.ids[0].length + golden.maxNewTokens);
    expect(b.sequences[0].length).toBe(prompts.unpadded.ids[0].length + 3);
    expect(modes.length).toBe(golden.maxNewTokens + 3);
    expect(modes.every((m) => !m)).toBe(true);
    expect(peft.modules().every((m) => m.training)).toBe(true);
    // A model in eval mode stays there, also when a call fails.
    peft.eval();
    spy.mockImplementation(() => {
      throw new Error('forward failed');
    });
    await expect(Promise.all([generate(peft, prompts.unpadded.ids, opts), generate(peft, prompts.unpadded.ids, opts)])).rejects.toThrow('forward failed');
    expect(peft.modules().some((m) => m.training)).toBe(false);
    peft.train();
    await expect(generate(peft, prompts.unpadded.ids, opts)).rejects.toThrow('forward failed');
    expect(peft.modules().every((m) => m.training)).toBe(true);
    spy.mockRestore();
  });

  it('counts the virtual tokens towards the position limit before any work', async () => {
    // The tiny LLaMA has 32 positions: 4 prefix + 4 prompt + 25 new - 1 = 32 fits, 26 does not.
    const prefix = await loadAdapter('llama', 'prefixTuning', 'cpu');
    await expect(generate(prefix, prompts.unpadded.ids, { maxNewTokens: 26, eosTokenId: [] })).rejects.toThrow(SequenceLengthError);
    await expect(generate(prefix, prompts.unpadded.ids, { maxNewTokens: 26, eosTokenId: [] })).rejects.toThrow(/prefix 4 \+ prompt 4 \+ maxNewTokens 26/);
    expect((await generate(prefix, prompts.unpadded.ids, { maxNewTokens: 25, eosTokenId: [] })).sequences[0].length).toBe(29);
    // Prompt tuning ignores padding in positions (as PEFT), so the padded prompt counts whole.
    const prompt = await loadAdapter('llama', 'promptTuning', 'cpu');
    await expect(generate(prompt, prompts.padded.ids, { maxNewTokens: 27, eosTokenId: [], attentionMask: prompts.padded.mask! })).rejects.toThrow(/prefix 3 \+ prompt 4 \+ maxNewTokens 27/);
  });

  it('refuses a per-query (packed) mask, and position ids where the method prepends embeddings', async () => {
    const prompt = await loadAdapter('llama', 'promptTuning', 'cpu');
    const ids = own(tensor(Int32Array.from([5, 6, 7]), [1, 3], { dtype: 'i32', backend: 'cpu' }));
    const perQuery = own(tensor(Float32Array.from({ length: 9 }, (_, i) => (i % 4 === 0 ? 1 : 0)), [1, 3, 3], { backend: 'cpu' }));
    expect(() => noGrad(() => prompt.forward({ inputIds: ids, attentionMask: perQuery }))).toThrow(/PROMPT_TUNING takes a padding mask \[B, T\]; a per-query attentionMask \[1, 3, 3\]/);
    const positions = own(tensor(Int32Array.from([0, 1, 2]), [1, 3], { dtype: 'i32', backend: 'cpu' }));
    expect(() => noGrad(() => prompt.forward({ inputIds: ids, positionIds: positions }))).toThrow(/PROMPT_TUNING prepends 3 virtual tokens and does not take positionIds/);
    // Prefix tuning takes them, shifted past the prefix (PEFT's rule): the default positions.
    const prefix = await loadAdapter('llama', 'prefixTuning', 'cpu');
    const shifted = own(noGrad(() => prefix.forward({ inputIds: ids, positionIds: positions })).logits);
    const plain = own(noGrad(() => prefix.forward({ inputIds: ids })).logits);
    expectClose(await shifted.data(), await plain.data(), { rtol: 0, atol: 0, label: 'prefix positions' });
  });
});
