/**
 * `fusedCrossEntropy` on the causal-LM head: with labels, the loss comes from the final
 * hidden states and the head's weight through `linearCrossEntropy` (no `[B, T, V]`
 * logits). GPT-2 (head tied to `wte`) and LLaMA (untied and tied): the loss and every
 * parameter gradient equal the unfused path, with padding, and with a packed row
 * (block-diagonal per-query mask, restarting positions, labels -100 between samples).
 */
import { type CausalLM, GPT2LMHeadModel, LlamaForCausalLM } from '@webpeft/nn';
import { type BackendName, type Tensor, manualSeed, tensor, tidy } from '@webpeft/tensor';
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

const V = 53;
const MODELS = {
  'gpt2 (tied head)': (backend: BackendName) => new GPT2LMHeadModel({ vocab_size: V, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 4 }, { backend }),
  'llama (untied head)': (backend: BackendName) =>
    new LlamaForCausalLM(
      { vocab_size: V, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32, tie_word_embeddings: false },
      { backend },
    ),
  'llama (tied head)': (backend: BackendName) =>
    new LlamaForCausalLM(
      { vocab_size: V, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32, tie_word_embeddings: true },
      { backend },
    ),
} as const;

type Batch = 'padded' | 'packed';

/** The inputs of one step: ids, labels and a padding mask, or a packed row of two samples. */
function inputs(kind: Batch, backend: BackendName): Record<string, Tensor> {
  const [b, t] = kind === 'padded' ? [2, 12] : [1, 14];
  const ids = Int32Array.from(randomInts(b * t, V, kind === 'padded' ? 5 : 6));
  const labels = Int32Array.from(ids);
  const i32 = (data: Int32Array, shape: number[]) => tensor(data, shape, { dtype: 'i32', backend });
  if (kind === 'padded') {
    // Row 2 left-padded by 3 (mask 0, label -100 there).
    const mask = Int32Array.from({ length: b * t }, (_, i) => (i >= t && i < t + 3 ? 0 : 1));
    for (let i = t; i < t + 3; i++) labels[i] = -100;
    return { inputIds: i32(ids, [b, t]), labels: i32(labels, [b, t]), attentionMask: i32(mask, [b, t]) };
  }
  // Samples of 6 and 8 tokens in one row: each attends to itself only and restarts positions.
  const split = 6;
  const mask = Int32Array.from({ length: t * t }, (_, k) => {
    const [q, key] = [Math.floor(k / t), k % t];
    return q < split === key < split ? 1 : 0;
  });
  const positions = Int32Array.from({ length: t }, (_, i) => (i < split ? i : i - split));
  labels[0] = -100;
  labels[split] = -100;
  return { inputIds: i32(ids, [b, t]), labels: i32(labels, [b, t]), attentionMask: i32(mask, [b, t, t]), positionIds: i32(positions, [b, t]) };
}

/** One forward + backward; the loss and every named gradient. */
async function step(model: CausalLM, kind: Batch, backend: BackendName): Promise<{ loss: Float64Array; grads: Map<string, Float64Array> }> {
  const input = inputs(kind, backend);
  // GPT-2's dropout is on in training: both paths draw the same masks.
  manualSeed(9);
  const loss = tidy(() => model.forward(input).loss!);
  loss.backward();
  const grads = new Map<string, Float64Array>();
  for (const [name, p] of model.namedParameters()) {
    grads.set(name, Float64Array.from(await p.grad!.data()));
    p.grad!.dispose();
    p.grad = null;
  }
  const out = { loss: Float64Array.from(await loss.data()), grads };
  for (const x of [loss, ...Object.values(input)]) x.dispose();
  return out;
}

describe.each(Object.keys(MODELS) as (keyof typeof MODELS)[])('fusedCrossEntropy on %s', (name) => {
  for (const kind of ['padded', 'packed'] as const) {
    it(`${kind} batch: loss and every parameter gradient equal the unfused path`, async () => {
      for (const backend of backendsUnderTest()) {
        if (backend === 'meta') continue;
        manualSeed(42);
        const model = disposeAfterTest(MODELS[name](backend));
        const unfused = await step(model, kind, backend);
        model.fusedCrossEntropy = true;
        const fused = await step(model, kind, backend);
        expectClose(fused.loss, unfused.loss, { rtol: 1e-5, atol: 1e-7, label: `${backend} loss` });
        expect([...fused.grads.keys()]).toEqual([...unfused.grads.keys()]);
        for (const [param, g] of fused.grads) expectClose(g, unfused.grads.get(param)!, { rtol: 1e-5, atol: scaleTol(unfused.grads.get(param)!), label: `${backend} ${param}` });
      }
    }, 300_000);
  }

  it('returns no logits with labels (reading them throws), and logits without labels', () => {
    const backend = backendsUnderTest()[0];
    manualSeed(42);
    const model = disposeAfterTest(MODELS[name](backend));
    model.fusedCrossEntropy = true;
    const input = inputs('padded', backend);
    const out = tidy(() => model.forward(input));
    expect(Object.keys(out)).toEqual(['loss']);
    expect(() => out.logits).toThrow(/not computed, the model has fusedCrossEntropy on/);
    const plain = tidy(() => model.forward({ inputIds: input.inputIds }));
    expect(plain.logits.shape).toEqual([2, 12, V]);
    for (const x of [out.loss!, plain.logits, ...Object.values(input)]) x.dispose();
  });
});
