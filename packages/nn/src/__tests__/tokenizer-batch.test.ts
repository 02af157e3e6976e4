import { describe, expect, it } from 'vitest';
import { type EncodeBatchOptions, encodeBatch } from '../tokenizer/index.js';
import { GOLDEN, defaultTokenizer } from './sft-fixture.js';

/** transformers' keyword arguments -> ours. */
function ours(o: Record<string, unknown>): EncodeBatchOptions {
  return {
    padding: o.padding as EncodeBatchOptions['padding'],
    truncation: o.truncation as boolean | undefined,
    maxLength: o.max_length as number | undefined,
    padToMultipleOf: o.pad_to_multiple_of as number | undefined,
    paddingSide: o.padding_side as 'left' | 'right' | undefined,
    truncationSide: o.truncation_side as 'left' | 'right' | undefined,
    addSpecialTokens: o.add_special_tokens as boolean | undefined,
  };
}

describe('Tokenizer.encodeBatch equals transformers tokenizer(batch, ...)', () => {
  const tokenizers = { default: defaultTokenizer(), template: defaultTokenizer({ postProcessor: GOLDEN.templatePostProcessor }) };
  for (const c of GOLDEN.encode) {
    it(`${c.tokenizer} tokenizer, ${JSON.stringify(c.options)}`, () => {
      const out = tokenizers[c.tokenizer].encodeBatch(GOLDEN.texts, ours(c.options));
      expect(out.inputIds).toEqual(c.input_ids);
      expect(out.attentionMask).toEqual(c.attention_mask);
      expect(out.lengths).toEqual(c.attention_mask.map((m) => m.reduce((a, b) => a + b, 0)));
    });
  }

  it('the template variant really adds its special tokens (the truncation cases test something)', () => {
    const ids = tokenizers.template.encode('Whale!');
    expect(ids[0]).toBe(1);
    expect(ids[ids.length - 1]).toBe(2);
  });

  it('refuses to pad without a pad token, as transformers', () => {
    expect(GOLDEN.noPadError).toMatch(/pad/);
    const tok = defaultTokenizer({ dropPad: true });
    // The default model names <|endoftext|> as pad only through its config; without it there is none.
    expect(tok.padTokenId).toBeUndefined();
    expect(() => tok.encodeBatch(GOLDEN.texts, { padding: 'longest' })).toThrow(/no pad token/);
    expect(tok.encodeBatch(['a b', 'a'], { padding: false }).inputIds).toHaveLength(2);
  });

  it('rejects bad options with the option named', () => {
    const tok = defaultTokenizer();
    expect(() => tok.encodeBatch(['a'], { maxLength: 0, truncation: true })).toThrow(/maxLength must be a positive integer/);
    expect(() => tok.encodeBatch(['a'], { padToMultipleOf: 2.5, padding: true })).toThrow(/padToMultipleOf/);
    expect(() => tok.encodeBatch(['a'], { paddingSide: 'up' as 'left' })).toThrow(/paddingSide/);
    expect(() => tok.encodeBatch(['a'], { padding: 'max' as 'longest' })).toThrow(/padding must be/);
    expect(() => tok.encodeBatch([3 as unknown as string])).toThrow(/texts\[0\]/);
    const tmpl = defaultTokenizer({ postProcessor: GOLDEN.templatePostProcessor });
    expect(() => tmpl.encodeBatch(['a b c'], { truncation: true, maxLength: 2 })).toThrow(/no room/);
  });

  it('reads model_max_length from tokenizer_config.json for truncation without maxLength', () => {
    const tok = defaultTokenizer();
    expect(tok.modelMaxLength).toBe(256);
    const long = 'whale '.repeat(400);
    expect(encodeBatch(tok, [long], { truncation: true }).lengths).toEqual([256]);
  });
});
