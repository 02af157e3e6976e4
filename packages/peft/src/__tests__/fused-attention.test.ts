/**
 * Adapters over a model with `attnImplementation: 'fused'`: LoRA and prefix tuning (the
 * prefix keys/values path: keys `P + T`, the causal offset inside the kernel) give the
 * eager model's loss and adapter gradients within 1e-5 relative, with a padding mask.
 */
import { type CausalLM, GPT2LMHeadModel, LlamaForCausalLM } from '@webpeft/nn';
import { type PeftConfig, getPeftModel } from '@webpeft/peft';
import { type BackendName, manualSeed, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, disposeAfterTest, expectClose, initBackends, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

const V = 32;
const MODELS = {
  gpt2: (backend: BackendName) => new GPT2LMHeadModel({ vocab_size: V, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 }, { backend }),
  llama: (backend: BackendName) =>
    new LlamaForCausalLM({ vocab_size: V, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32 }, { backend }),
} as const;

const CONFIGS: Record<string, (kind: keyof typeof MODELS) => PeftConfig> = {
  lora: (kind) => ({ peftType: 'LORA', r: 4, loraAlpha: 8, targetModules: kind === 'gpt2' ? ['c_attn'] : ['q_proj', 'v_proj'], initLoraWeights: false }),
  prefix: () => ({ peftType: 'PREFIX_TUNING', numVirtualTokens: 3 }),
};

/** Loss and trainable gradients of one training step with a left-padded row. */
async function step(kind: keyof typeof MODELS, method: string, backend: BackendName, impl: 'eager' | 'fused') {
  manualSeed(3);
  const base = disposeAfterTest(MODELS[kind](backend)).setAttnImplementation(impl) as CausalLM;
  const peft = disposeAfterTest(getPeftModel(base, CONFIGS[method](kind)));
  peft.train();
  const [b, t] = [2, 11];
  const ids = tensor(Int32Array.from(randomInts(b * t, V, 5)), [b, t], { dtype: 'i32', backend });
  const mask = tensor(Int32Array.from({ length: b * t }, (_, i) => (i >= t && i < t + 2 ? 0 : 1)), [b, t], { dtype: 'i32', backend });
  const loss = tidy(() => peft.forward({ inputIds: ids, attentionMask: mask, labels: ids }).loss!);
  loss.backward();
  const grads = new Map<string, Float32Array>();
  for (const [name, p] of peft.namedParameters()) {
    if (!p.requiresGrad) continue;
    grads.set(name, Float32Array.from((await p.grad!.data()) as Float32Array));
  }
  const value = await loss.item();
  for (const x of [loss, ids, mask]) x.dispose();
  return { value, grads };
}

describe.each(Object.keys(MODELS) as (keyof typeof MODELS)[])('adapters over fused attention on %s', (kind) => {
  for (const method of Object.keys(CONFIGS)) {
    it(`${method}: loss and adapter gradients equal eager (1e-5)`, async () => {
      for (const backend of backendsUnderTest()) {
        if (backend === 'meta') continue;
        const eager = await step(kind, method, backend, 'eager');
        const fused = await step(kind, method, backend, 'fused');
        expectClose([fused.value], [eager.value], { rtol: 1e-5, atol: 0, label: `${kind} ${method} ${backend} loss` });
        expect([...fused.grads.keys()]).toEqual([...eager.grads.keys()]);
        expect(fused.grads.size).toBeGreaterThan(0);
        for (const [name, g] of fused.grads) {
          const e = eager.grads.get(name)!;
          const m = e.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
          expectClose(g, e, { rtol: 1e-5, atol: 1e-5 * m, label: `${kind} ${method} ${backend} ${name}` });
        }
      }
    });
  }
});
