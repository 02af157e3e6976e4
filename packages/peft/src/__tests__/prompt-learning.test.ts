import { type CausalLM, type CausalLMOutput, type RawConfig, causalLMFromConfig, parseSafetensors } from '@webpeft/nn';
import { type BackendName, manualSeed, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type PromptableModel, getPeftModel, loadPromptLearningModel, memoryFiles } from '../index.js';
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

beforeAll(async () => {
  await initBackends();
});

const GPT2 = { model_type: 'gpt2', n_embd: 16, n_layer: 2, n_head: 2, vocab_size: 32, n_positions: 32, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 };
/** The test owns a forward's logits and loss. */
function ownOutput(out: CausalLMOutput): CausalLMOutput {
  own(out.logits);
  if (out.loss) own(out.loss);
  return out;
}

const LLAMA = { model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 32, max_position_embeddings: 32 };

function lm(config: RawConfig, backend: BackendName): CausalLM & PromptableModel {
  manualSeed(11);
  return own(causalLMFromConfig(config, { backend }) as CausalLM & PromptableModel);
}

describe('prompt tuning', () => {
  it('prepends the learned rows to the input embeddings (same logits as passing them by hand), labels -100', async () => {
    for (const backend of backendsUnderTest()) {
      const model = lm(GPT2, backend);
      const peft = own(getPeftModel(model, { peftType: 'PROMPT_TUNING', numVirtualTokens: 3, promptTuningInit: 'SAMPLE_VOCAB' }));
      expect(peft.getNbTrainableParameters().trainable).toBe(3 * 16);
      const ids = own(tensor(randomInts(2 * 5, 32, 1), [2, 5], { dtype: 'i32', backend }));
      const out = ownOutput(peft.forward({ inputIds: ids, labels: ids }));
      expect(out.logits.shape).toEqual([2, 8, 32]);
      // By hand: [prompt rows; word embeddings] and labels with 3 ignored positions in front.
      const table = peft.encoder().embedding.weight;
      const words = own(model.getInputEmbeddings().forward(ids));
      const rows = await table.data();
      const w = await words.data();
      const manual = new Float32Array(2 * 8 * 16);
      for (let b = 0; b < 2; b++) {
        manual.set(rows, b * 8 * 16);
        manual.set(w.subarray(b * 5 * 16, (b + 1) * 5 * 16), b * 8 * 16 + 3 * 16);
      }
      const labels = new Int32Array(2 * 8).fill(-100);
      const idv = await ids.data();
      for (let b = 0; b < 2; b++) for (let t = 0; t < 5; t++) labels[b * 8 + 3 + t] = idv[b * 5 + t];
      const ref = ownOutput(model.forward({ inputsEmbeds: own(tensor(manual, [2, 8, 16], { backend })), labels: own(tensor(labels, [2, 8], { dtype: 'i32', backend })) }));
      expectClose(await out.logits.data(), await ref.logits.data(), { rtol: 1e-5, atol: 1e-5, label: `${backend} logits` });
      expectClose([await out.loss!.item()], [await ref.loss!.item()], { rtol: 1e-5, atol: 1e-6, label: `${backend} loss` });
      // SAMPLE_VOCAB rows are rows of the vocabulary.
      const vocab = await model.getInputEmbeddings().weight.data();
      for (let p = 0; p < 3; p++) {
        const row = Array.from(rows.subarray(p * 16, (p + 1) * 16));
        const found = Array.from({ length: 32 }, (_, v) => v).some((v) => row.every((x, i) => x === vocab[v * 16 + i]));
        expect(found, `row ${p}`).toBe(true);
      }
      out.loss!.backward();
      expect(table.grad).not.toBeNull();
      expect(model.getInputEmbeddings().weight.grad).toBeNull();
      model.dispose();
    }
  });

  it('TEXT init copies the embeddings of the repeated token ids; saves and loads as PEFT (prompt_embeddings)', async () => {
    const model = lm(GPT2, 'cpu');
    const tokenizer = { encode: (text: string) => Array.from(text, (c) => c.charCodeAt(0) % 32) };
    const peft = own(getPeftModel(model, { peftType: 'PROMPT_TUNING', numVirtualTokens: 5, promptTuningInit: 'TEXT', promptTuningInitText: 'ab', tokenizer }));
    const rows = await peft.encoder().embedding.weight.data();
    const vocab = await model.getInputEmbeddings().weight.data();
    const ids = [97 % 32, 98 % 32, 97 % 32, 98 % 32, 97 % 32];
    expect(Array.from(rows)).toEqual(ids.flatMap((id) => Array.from(vocab.subarray(id * 16, (id + 1) * 16))));
    const dir = memoryFiles();
    await peft.saveAdapter(dir);
    const cfg = JSON.parse(new TextDecoder().decode(dir.files.get('adapter_config.json'))) as Record<string, unknown>;
    expect(cfg).toMatchObject({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 5, token_dim: 16, num_layers: 2, num_attention_heads: 2, num_transformer_submodules: 1, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'ab' });
    expect(cfg.tokenizer).toBeUndefined();
    const st = parseSafetensors(dir.files.get('adapter_model.safetensors')!);
    expect([...st.tensors.keys()]).toEqual(['prompt_embeddings']);
    expect(st.tensors.get('prompt_embeddings')!.shape).toEqual([5, 16]);
    const loaded = own(await loadPromptLearningModel(lm(GPT2, 'cpu'), dir));
    expect(Array.from(await loaded.encoder().embedding.weight.data())).toEqual(Array.from(rows));
    expect(loaded.getNbTrainableParameters().trainable).toBe(0);
  });
});

describe('prefix tuning', () => {
  for (const [name, config] of [['gpt2', GPT2], ['llama (grouped-query)', LLAMA]] as const) {
    it(`${name}: per-layer keys/values from the encoder; projection; saved prefixes reproduce the logits`, async () => {
      for (const backend of backendsUnderTest()) {
        const model = lm(config, backend);
        const peft = own(getPeftModel(model, { peftType: 'PREFIX_TUNING', numVirtualTokens: 4, prefixProjection: true, encoderHiddenSize: 8 }));
        const c = peft.peftConfig.get('default') as { tokenDim: number; numAttentionHeads: number };
        const kvDim = name === 'gpt2' ? 16 : 2 * 4; // kv heads * head dim
        expect(c.tokenDim).toBe(kvDim);
        const out = kvDim * 2 * 2; // layers * 2 * tokenDim
        expect(peft.getNbTrainableParameters().trainable).toBe(4 * kvDim + kvDim * 8 + 8 + 8 * out + out);
        const ids = own(tensor(randomInts(2 * 5, 32, 2), [2, 5], { dtype: 'i32', backend }));
        const res = ownOutput(peft.forward({ inputIds: ids, labels: ids }));
        expect(res.logits.shape).toEqual([2, 5, 32]);
        const noPrefix = ownOutput(model.forward({ inputIds: ids }));
        const a = await res.logits.data();
        const b = await noPrefix.logits.data();
        expect(Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])))).toBeGreaterThan(1e-4);
        res.loss!.backward();
        expect(peft.trainableParameters().every((p) => p.grad !== null)).toBe(true);

        const dir = memoryFiles();
        await peft.saveAdapter(dir);
        const st = parseSafetensors(dir.files.get('adapter_model.safetensors')!);
        expect(st.tensors.get('prompt_embeddings')!.shape).toEqual([4, out]);
        const loaded = own(await loadPromptLearningModel(lm(config, backend), dir));
        const again = ownOutput(loaded.forward({ inputIds: ids }));
        expectClose(await again.logits.data(), a, { rtol: 1e-4, atol: 1e-5, label: `${name} ${backend} reloaded prefixes` });
        await expect(loadPromptLearningModel(lm(config, backend), dir, { isTrainable: true })).rejects.toThrow(/prefix_projection/);
        model.dispose();
      }
    });
  }
});

