/**
 * A character-level tokenizer: one id per Unicode code point of a fixed alphabet, plus
 * special tokens. Small models trained on one text (the examples' embedded model) need
 * nothing more, and it exports as a standard `tokenizer.json` so the same model files
 * load through {@link Tokenizer} like any Hugging Face model.
 */
import type { TokenizerJSON } from './tokenizer-json.js';

/** Options of {@link CharTokenizer}. */
export interface CharTokenizerOptions {
  /** Special tokens, given ids 0.. in order (default `['<|endoftext|>']`, the end of text). */
  specialTokens?: string[];
  /** Token for characters outside the alphabet (default `'<unk>'`), id after the special tokens. */
  unkToken?: string;
}

/**
 * Character-level tokenizer. Ids: special tokens first, then the unknown token, then the
 * alphabet in code point order.
 * @example
 * const tok = CharTokenizer.fromText(corpus);
 * tok.encode('Ishmael'); // one id per character
 * Tokenizer.fromJSON(tok.toJSON()).encode('Ishmael'); // the same ids through @huggingface/tokenizers
 */
export class CharTokenizer {
  readonly vocabSize: number;
  /** Id of the first special token (`<|endoftext|>` by default). */
  readonly eosTokenId: number | undefined;
  readonly unkTokenId: number;
  private readonly ids = new Map<string, number>();
  private readonly tokens: string[];
  private readonly specials: string[];

  constructor(
    alphabet: Iterable<string>,
    private readonly options: CharTokenizerOptions = {},
  ) {
    this.specials = options.specialTokens ?? ['<|endoftext|>'];
    const unk = options.unkToken ?? '<unk>';
    const chars = [...new Set(alphabet)].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
    for (const c of chars) {
      if ([...c].length !== 1) throw new Error(`CharTokenizer: alphabet entry ${JSON.stringify(c)} is not a single character`);
    }
    this.tokens = [...this.specials, unk, ...chars];
    this.tokens.forEach((t, i) => {
      if (this.ids.has(t)) throw new Error(`CharTokenizer: token ${JSON.stringify(t)} appears twice`);
      this.ids.set(t, i);
    });
    this.vocabSize = this.tokens.length;
    this.unkTokenId = this.specials.length;
    this.eosTokenId = this.specials.length > 0 ? 0 : undefined;
  }

  /** A tokenizer whose alphabet is every character of `text`. */
  static fromText(text: string, options: CharTokenizerOptions = {}): CharTokenizer {
    return new CharTokenizer(new Set(text), options);
  }

  /** One id per character (unknown characters -> the unknown token). Special tokens in the text are not parsed. */
  encode(text: string): number[] {
    return Array.from(text, (c) => this.ids.get(c) ?? this.unkTokenId);
  }

  /** Text of `ids`; special tokens are kept unless `skipSpecialTokens`. */
  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    let out = '';
    for (const id of ids) {
      const t = this.tokens[id];
      if (t === undefined) throw new RangeError(`CharTokenizer.decode: id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
      if (options.skipSpecialTokens && id <= this.unkTokenId) continue;
      out += t;
    }
    return out;
  }

  /**
   * The equivalent Hugging Face `tokenizer.json`: a BPE model without merges (so each
   * character is a token), no pre-tokenizer, and a `Fuse` decoder that concatenates.
   */
  toJSON(): TokenizerJSON {
    const vocab: Record<string, number> = {};
    this.tokens.forEach((t, i) => (vocab[t] = i));
    const unk = this.tokens[this.unkTokenId];
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: this.tokens.slice(0, this.unkTokenId + 1).map((content, id) => ({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: { type: 'Fuse' },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: unk,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: [],
      },
    };
  }
}
