/**
 * Models refuse what they can check on the host (prompt ids vs `vocab_size`, positions
 * vs the position table) with errors naming the model, the limit and the value; token
 * ids in device tensors are caught by the device-side gather check at the next readback.
 */
import { type CausalLM, GPT2LMHeadModel, KVCache, LlamaForCausalLM, SequenceLengthError, generate } from '@webpeft/nn';
import { type BackendName, IndexError, manualSeed, setBackend, tensor } from '@webpeft/tensor';
import { backendsUnderTest, disposeAfterTest, initBackends, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

const VOCAB = 24;
const POSITIONS = 8;

beforeAll(async () => {
  await initBackends();
});

function gpt2(backend: BackendName): GPT2LMHeadModel {
  manualSeed(3);
  return disposeAfterTest(new GPT2LMHeadModel({ vocab_size: VOCAB, n_positions: POSITIONS, n_embd: 16, n_layer: 1, n_head: 2 }, { backend }));
}

function llama(backend: BackendName): LlamaForCausalLM {
  manualSeed(4);
  return disposeAfterTest(
    new LlamaForCausalLM(
      { vocab_size: VOCAB, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: POSITIONS },
      { backend },
    ),
  );
}

function ids(rows: number[][], backend: BackendName) {
  return disposeAfterTest(tensor(Int32Array.from(rows.flat()), [rows.length, rows[0].length], { dtype: 'i32', backend }));
}

/** Random valid token rows `[b, t]`. */
function tokens(b: number, t: number, seed: number): number[][] {
  const flat = Array.from(randomInts(b * t, VOCAB, seed));
  return Array.from({ length: b }, (_, i) => flat.slice(i * t, (i + 1) * t));
}

describe('position limits, checked from shapes', () => {
  for (const [name, make, field] of [
    ['gpt2', gpt2, 'n_positions'],
    ['llama', llama, 'max_position_embeddings'],
  ] as const) {
    it(`${name}: T > ${field} and T + past > ${field} throw SequenceLengthError`, () => {
      for (const backend of backendsUnderTest()) {
        const model: CausalLM = make(backend);
        expect(() => model.forward({ inputIds: ids(tokens(1, POSITIONS + 1, 5), backend) })).toThrow(
          new SequenceLengthError(`${name}: 9 positions (prefix 0 + past 0 + 9 new) exceed the config's ${field} 8`),
        );
        const cache = new KVCache();
        const first = model.forward({ inputIds: ids(tokens(2, 6, 6), backend), pastKeyValues: cache, useCache: true });
        first.logits.dispose();
        expect(() => model.forward({ inputIds: ids(tokens(2, 3, 7), backend), pastKeyValues: cache, useCache: true })).toThrow(
          new SequenceLengthError(`${name}: 9 positions (prefix 0 + past 6 + 3 new) exceed the config's ${field} 8`),
        );
        // Exactly at the limit is allowed.
        const last = model.forward({ inputIds: ids(tokens(2, 2, 8), backend), pastKeyValues: cache, useCache: true });
        expect(last.logits.shape).toEqual([2, 2, VOCAB]);
        last.logits.dispose();
        cache.dispose();
      }
    });

    it(`${name}: generate() refuses a prompt id outside vocab_size and a run past ${field} before any step`, async () => {
      for (const backend of backendsUnderTest()) {
        setBackend(backend);
        const model = make(backend);
        const prompt = tokens(2, 3, 9);
        for (const bad of [VOCAB, -1, 2.5]) {
          const withBad = prompt.map((r) => [...r]);
          withBad[1][2] = bad;
          const e = await generate(model, withBad, { maxNewTokens: 2 }).catch((x: unknown) => x);
          expect(e).toBeInstanceOf(IndexError);
          expect((e as Error).message).toBe(`${name}: prompt: index ${bad} at position 5 is out of range for ${VOCAB} token ids (vocab_size) (input [2,3])`);
        }
        await expect(generate(model, prompt, { maxNewTokens: 7, eosTokenId: [] })).rejects.toThrow(
          new SequenceLengthError(`${name}: 9 positions (prompt 3 + maxNewTokens 7 - 1) exceed the config's ${field} 8`),
        );
        // 3 + 6 - 1 = 8 positions fit: the run completes with every token in the vocabulary.
        const { sequences } = await generate(model, prompt, { maxNewTokens: 6, eosTokenId: [] });
        expect(sequences.map((r) => r.length)).toEqual([9, 9]);
        expect(sequences.flat().every((t) => Number.isInteger(t) && t >= 0 && t < VOCAB)).toBe(true);
      }
    });
  }
});

describe('token ids and positions in device tensors', () => {
  it('webgpu: a token id >= vocab_size throws IndexError at the logits readback, never finite logits', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    for (const make of [gpt2, llama]) {
      const model = make('webgpu');
      const rows = tokens(1, 4, 10);
      rows[0][1] = VOCAB + 3;
      const { logits } = model.forward({ inputIds: ids(rows, 'webgpu') });
      const e = await logits.data().catch((x: unknown) => x);
      logits.dispose();
      expect(e).toBeInstanceOf(IndexError);
      expect((e as Error).message).toBe(`gather: index ${VOCAB + 3} at position 1 is out of range for ${VOCAB} rows (input [${VOCAB},16])`);
    }
  });

  it('webgpu: gpt2 positionIds past n_positions throw IndexError at the readback', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const model = gpt2('webgpu');
    const { logits } = model.forward({ inputIds: ids(tokens(1, 3, 11), 'webgpu'), positionIds: ids([[0, 1, POSITIONS]], 'webgpu') });
    const e = await logits.data().catch((x: unknown) => x);
    logits.dispose();
    expect(e).toBeInstanceOf(IndexError);
    expect((e as Error).message).toBe(`gather: index ${POSITIONS} at position 2 is out of range for ${POSITIONS} rows (input [${POSITIONS},16])`);
  });
});
