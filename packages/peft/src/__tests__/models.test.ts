import { causalLMFromConfig } from '@webpeft/nn';
import { type Tensor, assign, manualSeed, mul, noGrad, sub, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type PeftModel, type ResolvedLoraConfig, getPeftModel, loadPeftModel, memoryFiles } from '../index.js';
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

// LoRA on the nn package's real models (GPT-2 and LLaMA families), default targets by model_type.
beforeAll(async () => {
  await initBackends();
});

const TINY = {
  gpt2: { model_type: 'gpt2', n_embd: 16, n_layer: 2, n_head: 2, vocab_size: 32, n_positions: 16, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 },
  llama: { model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 32, max_position_embeddings: 16 },
};

function step(peft: PeftModel, ids: Tensor): void {
  const out = peft.forward({ inputIds: ids, labels: ids }) as { logits: Tensor; loss: Tensor };
  out.loss.backward();
  noGrad(() =>
    tidy(() => {
      for (const p of peft.trainableParameters()) {
        assign(p, sub(p, mul(p.grad!, 0.1)));
        p.grad!.dispose();
        p.grad = null;
      }
    }),
  );
  out.loss.dispose();
  out.logits.dispose();
}

describe('LoRA on nn models', () => {
  for (const [type, config] of Object.entries(TINY)) {
    it(`${type}: default targets, training lowers the loss, save/load reproduces the logits`, async () => {
      for (const backend of backendsUnderTest()) {
        manualSeed(7);
        const model = own(causalLMFromConfig(config, { backend }));
        const peft = getPeftModel(model, { peftType: 'LORA', r: 4, loraAlpha: 8 });
        const expected = type === 'gpt2' ? ['c_attn'] : ['q_proj', 'v_proj'];
        expect((peft.peftConfig.get('default') as ResolvedLoraConfig).targetModules).toEqual(expected);
        const layers = peft.base_model.tunerLayers().map(([p]) => p);
        expect(layers.length).toBe(expected.length * 2);
        const ids = own(tensor(randomInts(2 * 8, 32, 3), [2, 8], { dtype: 'i32', backend }));
        const lossAt = async () => {
          const out = peft.forward({ inputIds: ids, labels: ids }) as { logits: Tensor; loss: Tensor };
          const v = await out.loss.item();
          out.loss.dispose();
          out.logits.dispose();
          return v;
        };
        const first = await lossAt();
        for (let i = 0; i < 4; i++) step(peft, ids);
        expect(await lossAt()).toBeLessThan(first);

        const dir = memoryFiles();
        await peft.saveAdapter(dir);
        const want = await own((peft.forward({ inputIds: ids }) as { logits: Tensor }).logits).data();
        manualSeed(7);
        const fresh = own(causalLMFromConfig(config, { backend }));
        const loaded = await loadPeftModel(fresh, dir);
        const got = await own((loaded.forward({ inputIds: ids }) as { logits: Tensor }).logits).data();
        expectClose(got, want, { rtol: 1e-5, atol: 1e-5, label: `${type} ${backend} reloaded` });
        model.dispose();
        fresh.dispose();
      }
    });
  }
});
