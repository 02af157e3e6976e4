import { describe, expect, it } from 'vitest';
import { ChatTemplateError, Tokenizer, renderWithGenerationSpans } from '../tokenizer/index.js';
import { GOLDEN, defaultTokenizer } from './sft-fixture.js';

describe('applyChatTemplate equals transformers apply_chat_template', () => {
  const tok = defaultTokenizer();
  for (const c of GOLDEN.chat) {
    it(`${c.template}, conversation ${c.conversation}, add_generation_prompt=${c.add_generation_prompt}`, () => {
      // The default model's template is the one its tokenizer_config.json holds; the others are passed in.
      const chatTemplate = c.template === 'chatml-default-model' ? undefined : GOLDEN.templates[c.template];
      const messages = GOLDEN.conversations[c.conversation];
      const options = { chatTemplate, addGenerationPrompt: c.add_generation_prompt };
      expect(tok.applyChatTemplate(messages, options)).toBe(c.text);
      expect(tok.applyChatTemplate(messages, { ...options, tokenize: true })).toEqual(c.ids);
    });
  }

  it('the default model config holds the ChatML template the fixture used', () => {
    expect(tok.config.chat_template).toBe(GOLDEN.templates['chatml-default-model']);
    expect(tok.specialTokens).toMatchObject({ bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', pad_token: '<|endoftext|>' });
  });

  it('named templates in tokenizer_config.json: default unless one is named', () => {
    const named = Tokenizer.fromJSON(tok.toJSON(), {
      chat_template: [
        { name: 'default', template: '{{ messages[0].content }}' },
        { name: 'loud', template: '{{ messages[0].content | upper }}' },
      ],
    });
    const m = [{ role: 'user', content: 'ahoy' }];
    expect(named.applyChatTemplate(m)).toBe('ahoy');
    expect(named.applyChatTemplate(m, { chatTemplate: 'loud' })).toBe('AHOY');
  });

  it('errors name the template and the Jinja error', () => {
    const m = [{ role: 'user', content: 'ahoy' }];
    let err: unknown;
    try {
      tok.applyChatTemplate(m, { chatTemplate: '{% for m in messages %}{{ m.content }' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ChatTemplateError);
    expect((err as Error).message).toMatch(/^chat template \(given as chatTemplate\): /);
    expect(() => tok.applyChatTemplate(m, { chatTemplate: "{{ raise_exception('roles must alternate') }}" })).toThrow(/chat template .*roles must alternate/);
    const bare = Tokenizer.fromJSON(tok.toJSON(), {});
    expect(() => bare.applyChatTemplate(m)).toThrow(/has no chat_template/);
  });

  it('generation spans cover the {% generation %} blocks of a training template', () => {
    const messages = GOLDEN.conversations[1];
    const { text, spans, hasMarkers } = renderWithGenerationSpans(tok, messages, { chatTemplate: GOLDEN.templates['qwen2.5-training'] });
    expect(hasMarkers).toBe(true);
    // The markers change nothing in the text: it is the plain Qwen2.5 template's rendering.
    const plain = GOLDEN.chat.find((c) => c.template === 'qwen2.5' && c.conversation === 1 && !c.add_generation_prompt)!;
    expect(text).toBe(plain.text);
    expect(spans.map(([s, e]) => text.slice(s, e))).toEqual([`\n${messages[1].content}<|im_end|>\n`, `\n${messages[3].content}<|im_end|>\n`]);
  });
});
