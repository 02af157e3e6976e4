import { CharTokenizer, GPT2LMHeadModel, type RawTensor, fromPretrained, openSource, serializeSafetensors, tensorToRaw } from '@webpeft/nn';
import { manualSeed, noGrad, tensor } from '@webpeft/tensor';
import { expectClose, initBackends, takeData } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

describe('fromPretrained with a tokenizer', () => {
  it('loads config.json, model.safetensors and tokenizer.json from one source', async () => {
    const text = 'Call me Ishmael. Some years ago, never mind how long precisely.';
    const tok = CharTokenizer.fromText(text);
    const config = { model_type: 'gpt2', vocab_size: tok.vocabSize, n_positions: 32, n_embd: 16, n_layer: 1, n_head: 2 };
    manualSeed(3);
    const original = new GPT2LMHeadModel(config, { backend: 'cpu' }).eval();
    const weights = new Map<string, RawTensor>();
    for (const [name, t] of original.stateDict()) if (name !== 'lm_head.weight') weights.set(name, await tensorToRaw(t));
    const source = openSource({
      'config.json': JSON.stringify(config),
      'model.safetensors': serializeSafetensors(weights, { format: 'pt' }),
      'tokenizer.json': JSON.stringify(tok.toJSON()),
    });
    const { model, tokenizer } = await fromPretrained(source, { backend: 'cpu' });
    expect(tokenizer).not.toBeNull();
    const ids = tokenizer!.encode('Some years ago', { addSpecialTokens: false });
    expect(ids).toEqual(tok.encode('Some years ago'));
    expect(tokenizer!.decode(ids)).toBe('Some years ago');
    const x = tensor(Int32Array.from(ids), [1, ids.length], { dtype: 'i32', backend: 'cpu' });
    const want = await takeData(noGrad(() => original.forward({ inputIds: x }).logits));
    const got = await takeData(noGrad(() => model.forward({ inputIds: x }).logits));
    expectClose(got, want, { rtol: 0, atol: 0, label: 'logits after the round trip' });
    for (const m of [x, original, model]) m.dispose();
  });
});
