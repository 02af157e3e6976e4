import { type CausalLM, type CausalLMOutput, fromPretrained, generate, openSource } from '@webpeft/nn';
import { type BackendName, type Tensor, tensor } from '@webpeft/tensor';
import { backendsUnderTest, base64Bytes, expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type PeftModel, LoraEmbedding, LoraLinear, getPeftModel, loadPeftModel, memoryFiles } from '../index.js';
import bases from './fixtures/p_tuning_golden.json' with { type: 'json' };
import golden from './fixtures/mixed_batch_golden.json' with { type: 'json' };
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

// Reference values: tools/golden/mixed_batch_golden.py, PEFT 0.21's forward and generate with
// per-sample adapter_names (two LoRA adapters and '__base__') on the tiny transformers GPT-2
// and LLaMA of p_tuning_golden.json (on LLaMA also with per-adapter lm_head copies, modules_to_save),
// in eval mode, with the loss gradient of every LoRA tensor.
const TOL = { rtol: 1e-4, atol: 1e-4 };
type Family = 'gpt2' | 'llama' | 'llamaSaved';
/** The base checkpoint of each case (`llamaSaved`: LLaMA adapters that also save their own lm_head copy). */
const BASE_OF = { gpt2: 'gpt2', llama: 'llama', llamaSaved: 'llama' } as const;
interface Fixture {
  files: Record<'a' | 'b', { 'adapter_config.json': string; 'adapter_model.safetensors': string }>;
  logits: number[];
  logitsShape: number[];
  generate: { sequences: number[][]; scores: number[][] };
  loss: number;
  grads: Record<string, number[]>;
}
const names = golden.adapterNames;

beforeAll(async () => {
  await initBackends();
});

async function base(family: Family, backend: BackendName): Promise<CausalLM> {
  const ck = bases[BASE_OF[family]].checkpoint;
  return own((await fromPretrained(openSource({ 'config.json': ck['config.json'], 'model.safetensors': base64Bytes(ck['model.safetensors']) }), { backend })).model);
}

/** The base with PEFT's saved adapters `a` (active) and `b`. */
async function loaded(family: Family, backend: BackendName): Promise<{ model: CausalLM; peft: PeftModel }> {
  const fx = golden[family] as Fixture;
  const files = (n: 'a' | 'b') => memoryFiles({ 'adapter_config.json': fx.files[n]['adapter_config.json'], 'adapter_model.safetensors': base64Bytes(fx.files[n]['adapter_model.safetensors']) });
  const model = await base(family, backend);
  const peft = await loadPeftModel(model, files('a'), { adapterName: 'a' });
  await peft.loadAdapter(files('b'), 'b');
  peft.eval();
  return { model, peft };
}

function ids(rows: number[][], backend: BackendName): Tensor {
  return own(tensor(Int32Array.from(rows.flat()), [rows.length, rows[0].length], { dtype: 'i32', backend }));
}

for (const family of ['gpt2', 'llama', 'llamaSaved'] as const) {
  describe(`mixed-adapter batches on a transformers ${family} match PEFT's adapter_names`, () => {
    const fx = golden[family] as Fixture;

    it("forward logits, rows of adapter a, b and '__base__'", async () => {
      for (const backend of backendsUnderTest()) {
        const { peft } = await loaded(family, backend);
        const out = peft.forward({ inputIds: ids(golden.ids, backend), adapterNames: names });
        expect(out.logits.shape).toEqual(fx.logitsShape);
        expectClose(await out.logits.data(), fx.logits, { ...TOL, label: `${family} ${backend} logits` });
        out.logits.dispose();
        // The scope is over: the active adapter alone runs again.
        const plain = peft.forward({ inputIds: ids(golden.ids, backend) });
        const onlyA = await plain.logits.data();
        plain.logits.dispose();
        const v = fx.logitsShape[1] * fx.logitsShape[2];
        expectClose(onlyA.subarray(0, v), fx.logits.slice(0, v), { ...TOL, label: `${family} ${backend} row 0 (adapter a) after the mixed batch` });
      }
    });

    it('greedy generate with per-row adapters gives PEFT\'s tokens and step logits', async () => {
      for (const backend of backendsUnderTest()) {
        const { model, peft } = await loaded(family, backend);
        const prompt = golden.ids.map((r) => r.slice(0, golden.promptLength));
        const opts = { maxNewTokens: golden.maxNewTokens, padTokenId: golden.padTokenId, eosTokenId: [], outputLogits: true };
        const out = await peft.withAdapterNames(names, () => generate(model, prompt, opts));
        expect(out.sequences, `${family} ${backend}`).toEqual(fx.generate.sequences);
        out.logits!.forEach((l, step) => expectClose(l, fx.generate.scores[step], { ...TOL, label: `${family} ${backend} step ${step}` }));
        const uncached = await peft.withAdapterNames(names, () => generate(model, prompt, { ...opts, useCache: false }));
        expect(uncached.sequences, `${family} ${backend} without cache`).toEqual(fx.generate.sequences);
      }
    });

    it('loss and the gradient of every LoRA tensor of both adapters (eval mode)', async () => {
      for (const backend of backendsUnderTest()) {
        const { model, peft } = await loaded(family, backend);
        const layers = peft.base_model.tunerLayers();
        for (const [, layer] of layers) for (const n of layer.adapterNames()) for (const t of layer.adapterParameters(n)) t.requiresGrad = true;
        const out: CausalLMOutput = peft.forward({ inputIds: ids(golden.ids, backend), labels: ids(golden.labels, backend), adapterNames: names });
        expectClose([await out.loss!.item()], [fx.loss], { ...TOL, label: `${family} ${backend} loss` });
        out.loss!.backward();
        out.loss!.dispose();
        out.logits.dispose();
        let checked = 0;
        for (const [key, want] of Object.entries(fx.grads)) {
          const m = /^(.*)\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)\.(a|b)(\.weight)?$/.exec(key);
          expect(m, key).not.toBeNull();
          const [, path, slot, adapter] = m!;
          const layer = model.getSubmodule(path) as LoraLinear | LoraEmbedding;
          const w = layer instanceof LoraLinear ? layer.weights(adapter) : layer.weights(adapter);
          const t = slot.endsWith('A') ? w.A : w.B;
          expectClose(await t.grad!.data(), want, { ...TOL, label: `${family} ${backend} grad ${key}` });
          checked++;
        }
        expect(checked).toBe(Object.keys(fx.grads).length);
      }
    });
  });
}

describe("mixed-adapter batches refuse what PEFT refuses, with PEFT's reasons", () => {
  it('unknown names, wrong lengths, training mode, merged adapters, snake case', async () => {
    const { peft } = await loaded('llama', 'cpu');
    const x = ids(golden.ids, 'cpu');
    expect(() => peft.forward({ inputIds: x, adapterNames: ['a', 'c', 'zz', '__base__'] })).toThrow(/trying to infer with non-existing adapter\(s\): c, zz/);
    expect(() => peft.forward({ inputIds: x, adapterNames: ['a', 'b'] })).toThrow(/length of adapterNames should be the same as the number of inputs, but got 2 and 4/);
    expect(() => peft.forward({ inputIds: x, adapter_names: names } as never)).toThrow(/'adapter_names' is PEFT's Python name; pass adapterNames/);
    peft.train();
    expect(() => peft.forward({ inputIds: x, adapterNames: names })).toThrow(/cannot pass adapterNames when the model is in training mode/);
    peft.eval();
    await peft.merge(['a']);
    expect(() => peft.forward({ inputIds: x, adapterNames: names })).toThrow(/cannot pass adapterNames when there are merged adapters.*please call unmerge\(\) first/);
    await peft.unmerge();
    // Nothing was left set by the refused calls: a plain forward runs the active adapter.
    const out = peft.forward({ inputIds: x });
    out.logits.dispose();
  });

  it('DoRA adapters and methods other than LoRA are refused by name', async () => {
    const model = await base('llama', 'cpu');
    const peft = getPeftModel(model, { peftType: 'LORA', r: 2, targetModules: ['q_proj'], useDora: true });
    peft.eval();
    const x = ids([[3, 1, 4]], 'cpu');
    expect(() => peft.forward({ inputIds: x, adapterNames: ['default'] })).toThrow(/cannot pass adapterNames when DoRA is enabled/);
    // '__base__' rows only: DoRA is not used, as in PEFT.
    peft.forward({ inputIds: x, adapterNames: ['__base__'] }).logits.dispose();
    const ia3 = getPeftModel(await base('llama', 'cpu'), { peftType: 'IA3', targetModules: ['k_proj', 'down_proj'], feedforwardModules: ['down_proj'] });
    ia3.eval();
    expect(() => ia3.forward({ inputIds: x, adapterNames: ['default'] })).toThrow(/works with LoRA adapters only.*this model's adapters are IA3/);
    const prompt = own(getPeftModel(await base('llama', 'cpu'), { peftType: 'PROMPT_TUNING', numVirtualTokens: 2 }));
    expect(() => prompt.forward({ inputIds: x, adapterNames: ['default'] } as never)).toThrow(/adapterNames \(mixed-adapter batches\) is not supported for PROMPT_TUNING: PEFT 0\.21 mixes adapters per sample in LoRA layers only/);
  });
});
