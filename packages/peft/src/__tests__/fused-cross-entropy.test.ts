/**
 * LoRA with the base model's `fusedCrossEntropy` on: the loss and every adapter gradient
 * equal the unfused path (GPT-2 with its tied head, LLaMA untied), with labels -100 at
 * padding; LoRA on `lm_head` itself is refused with a message naming the option.
 */
import { type CausalLM, GPT2LMHeadModel, LlamaForCausalLM } from '@webpeft/nn';
import { getPeftModel } from '@webpeft/peft';
import { type BackendName, manualSeed, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, disposeAfterTest, expectClose, initBackends, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

/**
 * Absolute floor of a gradient comparison: 1e-5 of the tensor's largest entry. Entries
 * that are sums cancelling to near zero (an embedding row summed over tokens) carry the
 * rounding of their larger terms, so their own relative error means nothing.
 */
function scaleTol(g: Float64Array): number {
  return 1e-5 * g.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
}

const V = 41;
const CASES = {
  gpt2: { build: (backend: BackendName) => new GPT2LMHeadModel({ vocab_size: V, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2 }, { backend }), targets: ['c_attn', 'c_proj'] },
  llama: {
    build: (backend: BackendName) =>
      new LlamaForCausalLM(
        { vocab_size: V, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 16, tie_word_embeddings: false },
        { backend },
      ),
    targets: ['q_proj', 'v_proj', 'down_proj'],
  },
} as const;

/** One LoRA step on a padded batch; the loss and the trainable gradients by name. */
async function step(model: CausalLM, backend: BackendName) {
  const [b, t] = [2, 8];
  const ids = Int32Array.from(randomInts(b * t, V, 3));
  const labels = Int32Array.from(ids, (x, i) => (i >= t && i < t + 2 ? -100 : x));
  const mask = Int32Array.from(ids, (_, i) => (i >= t && i < t + 2 ? 0 : 1));
  const [idsT, labelsT, maskT] = [ids, labels, mask].map((d) => tensor(d, [b, t], { dtype: 'i32', backend }));
  manualSeed(5);
  const loss = tidy(() => model.forward({ inputIds: idsT, labels: labelsT, attentionMask: maskT }).loss!);
  loss.backward();
  const grads = new Map<string, Float64Array>();
  for (const [name, p] of model.namedParameters()) {
    if (!p.requiresGrad) continue;
    grads.set(name, Float64Array.from(await p.grad!.data()));
    p.grad!.dispose();
    p.grad = null;
  }
  const value = Float64Array.from(await loss.data());
  for (const x of [loss, idsT, labelsT, maskT]) x.dispose();
  return { loss: value, grads };
}

describe.each(Object.keys(CASES) as (keyof typeof CASES)[])('LoRA with fusedCrossEntropy on %s', (kind) => {
  it('gives the loss and adapter gradients of the unfused path', async () => {
    for (const backend of backendsUnderTest()) {
      if (backend === 'meta') continue;
      manualSeed(11);
      const base = disposeAfterTest(CASES[kind].build(backend));
      // B starts non-zero so that every adapter tensor gets a gradient.
      const peft = disposeAfterTest(getPeftModel(base, { peftType: 'LORA', r: 4, loraAlpha: 8, targetModules: [...CASES[kind].targets], initLoraWeights: false }));
      const model = peft.model as CausalLM;
      const unfused = await step(model, backend);
      base.fusedCrossEntropy = true;
      const fused = await step(model, backend);
      expectClose(fused.loss, unfused.loss, { rtol: 1e-5, atol: 1e-7, label: `${backend} loss` });
      expect([...fused.grads.keys()]).toEqual([...unfused.grads.keys()]);
      expect(fused.grads.size).toBeGreaterThan(0);
      for (const [name, g] of fused.grads) expectClose(g, unfused.grads.get(name)!, { rtol: 1e-5, atol: scaleTol(unfused.grads.get(name)!), label: `${backend} ${name}` });
    }
  }, 300_000);
});

describe('fusedCrossEntropy with an adapter on lm_head', () => {
  it('refuses the forward, naming the head and the option', () => {
    const base = disposeAfterTest(CASES.llama.build('cpu'));
    const peft = disposeAfterTest(getPeftModel(base, { peftType: 'LORA', r: 2, targetModules: ['lm_head'] }));
    base.fusedCrossEntropy = true;
    const ids = tensor(Int32Array.from([1, 2, 3, 4]), [1, 4], { dtype: 'i32', backend: 'cpu' });
    expect(() => tidy(() => (peft.model as CausalLM).forward({ inputIds: ids, labels: ids }))).toThrow(/fusedCrossEntropy: the fused loss reads the head's weight, and lm_head is a \w+/);
    ids.dispose();
  });
});
