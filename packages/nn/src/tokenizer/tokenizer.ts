/**
 * Tokenizers from Hugging Face `tokenizer.json` files, through the maintained
 * `@huggingface/tokenizers` library (pure JS, same code in Node and browsers).
 */
import { Tokenizer as HfTokenizerExport } from '@huggingface/tokenizers';
import type { ModelSource } from '../io/source.js';
import type { TokenizerJSON } from './tokenizer-json.js';
import { type BatchEncoding, type EncodeBatchOptions, encodeBatch } from './batch-encode.js';
import { type ChatMessage, type ChatTemplateOptions, applyChatTemplate } from './chat-template.js';

/**
 * The part of the library's `Tokenizer` used here, as its own declarations state it. Its
 * published `types/index.d.ts` re-exports `./core/Tokenizer` without a file extension,
 * which NodeNext resolution cannot follow, so the import arrives untyped; this keeps
 * every call below checked.
 */
interface HfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
  tokenize(text: string): string[];
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
}
const HfTokenizer = HfTokenizerExport as new (json: TokenizerJSON, config: Record<string, unknown>) => HfTokenizer;

/** `tokenizer_config.json` fields this wrapper reads. */
export interface TokenizerConfig {
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  pad_token?: string | { content: string } | null;
  unk_token?: string | { content: string } | null;
  clean_up_tokenization_spaces?: boolean;
  /** Longest input the model takes; transformers' default for truncation and `max_length` padding. */
  model_max_length?: number;
  padding_side?: 'left' | 'right';
  truncation_side?: 'left' | 'right';
  /** Jinja chat template: one string, or named templates (`default`, `tool_use`, ...). */
  chat_template?: string | { name: string; template: string }[] | null;
  [key: string]: unknown;
}

/** Conventional names of special tokens, used when no tokenizer_config.json names them. */
const GUESSES = {
  eos: ['<|endoftext|>', '</s>', '<eos>', '<|end_of_text|>', '<|eot_id|>', '[SEP]'],
  bos: ['<s>', '<bos>', '<|begin_of_text|>', '<|startoftext|>', '[CLS]'],
  pad: ['<pad>', '<|pad|>', '[PAD]'],
} as const;

/**
 * A text <-> token id mapping loaded from a `tokenizer.json` (BPE incl. byte-level,
 * WordPiece, Unigram/SentencePiece, with their normalizers, pre-tokenizers,
 * post-processors and decoders).
 * @example
 * const tok = await Tokenizer.fromSource(openSource('./SmolLM-135M'));
 * const ids = tok.encode('Hello world');   // number[]
 * tok.decode(ids);                          // 'Hello world'
 */
export class Tokenizer {
  /** Number of ids: one past the largest id of the vocabulary and the added tokens (the embedding size needed). */
  readonly vocabSize: number;
  /** End-of-sequence id (from tokenizer_config.json, else a conventional special token). */
  eosTokenId?: number;
  /** Beginning-of-sequence id. */
  bosTokenId?: number;
  /** Padding id. */
  padTokenId?: number;
  /** Longest input the model takes (`model_max_length`); Infinity when the config names none. */
  readonly modelMaxLength: number;
  /** Side padding goes to by default (`padding_side`, else right, as transformers). */
  readonly paddingSide: 'left' | 'right';
  /** Side truncation cuts by default (`truncation_side`, else right). */
  readonly truncationSide: 'left' | 'right';
  /**
   * Special-token strings as transformers' `special_tokens_map` holds them (`bos_token`,
   * `eos_token`, `pad_token`, `unk_token`, ...), the names a chat template reads.
   */
  readonly specialTokens: Readonly<Record<string, string>>;
  /** The `tokenizer_config.json` this tokenizer was loaded with (empty when none). */
  readonly config: Readonly<TokenizerConfig>;
  private readonly hf: HfTokenizer;

  private constructor(
    private readonly json: TokenizerJSON,
    config: TokenizerConfig,
  ) {
    try {
      // Rust's tokenizer.json never cleans up spaces on decode; default to that so decode(encode(x)) == x.
      this.hf = new HfTokenizer(json, { clean_up_tokenization_spaces: false, ...config });
    } catch (e) {
      throw new Error(`Tokenizer: cannot load tokenizer.json (${(e as Error).message})`);
    }
    let max = -1;
    for (const id of this.hf.get_vocab(true).values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    this.eosTokenId = this.specialId(config.eos_token, GUESSES.eos);
    this.bosTokenId = this.specialId(config.bos_token, GUESSES.bos);
    this.padTokenId = this.specialId(config.pad_token, GUESSES.pad);
    this.config = config;
    this.modelMaxLength = typeof config.model_max_length === 'number' && config.model_max_length > 0 && config.model_max_length < 1e15 ? config.model_max_length : Infinity;
    this.paddingSide = config.padding_side === 'left' ? 'left' : 'right';
    this.truncationSide = config.truncation_side === 'left' ? 'left' : 'right';
    const specials: Record<string, string> = {};
    for (const [name, id] of [['bos_token', this.bosTokenId], ['eos_token', this.eosTokenId], ['pad_token', this.padTokenId]] as const) {
      const text = id === undefined ? undefined : this.hf.id_to_token(id);
      if (text !== undefined) specials[name] = text;
    }
    for (const name of ['unk_token', 'sep_token', 'cls_token', 'mask_token']) {
      const v = config[name] as TokenizerConfig['unk_token'];
      if (v !== undefined && v !== null) specials[name] = typeof v === 'string' ? v : v.content;
    }
    this.specialTokens = specials;
  }

  /**
   * A tokenizer from a `tokenizer.json` document (text or parsed) and optionally the
   * model's `tokenizer_config.json` (special-token names, decode cleanup).
   */
  static fromJSON(json: string | object, config: TokenizerConfig = {}): Tokenizer {
    let doc: unknown = json;
    if (typeof json === 'string') {
      try {
        doc = JSON.parse(json);
      } catch (e) {
        throw new Error(`Tokenizer.fromJSON: not valid JSON (${(e as Error).message})`);
      }
    }
    const d = doc as Partial<TokenizerJSON> | null;
    if (typeof d !== 'object' || d === null || typeof d.model !== 'object' || d.model === null) {
      throw new Error('Tokenizer.fromJSON: not a tokenizer.json document (no "model" object)');
    }
    // The library requires these keys to be present; hand-written documents may omit them.
    const full: TokenizerJSON = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      added_tokens: [],
      ...(d as TokenizerJSON),
    };
    return new Tokenizer(full, config);
  }

  /** Loads `tokenizer.json` (required) and `tokenizer_config.json` (optional) from a model source. */
  static async fromSource(source: ModelSource): Promise<Tokenizer> {
    const json = await source.readText('tokenizer.json');
    let config: TokenizerConfig = {};
    if (await source.has('tokenizer_config.json')) {
      try {
        config = JSON.parse(await source.readText('tokenizer_config.json')) as TokenizerConfig;
      } catch (e) {
        throw new Error(`${source.name}/tokenizer_config.json: not valid JSON (${(e as Error).message})`);
      }
    }
    try {
      return Tokenizer.fromJSON(json, config);
    } catch (e) {
      throw new Error(`${source.name}/tokenizer.json: ${(e as Error).message}`);
    }
  }

  /**
   * Token ids of `text`. Special tokens the tokenizer's post-processor adds (e.g. LLaMA's
   * BOS) are included unless `addSpecialTokens` is false, as in HF `tokenizer(text)`.
   */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /**
   * Encodes a batch with padding and truncation, as transformers'
   * `tokenizer(texts, padding=..., truncation=..., max_length=...)`: ids `[N][len_i]`,
   * attention masks of the same shape (1 token, 0 pad) and the unpadded lengths.
   * @example
   * const { inputIds, attentionMask } = tok.encodeBatch(['Hi', 'Hello there'], { padding: 'longest' });
   */
  encodeBatch(texts: readonly string[], options: EncodeBatchOptions = {}): BatchEncoding {
    return encodeBatch(this, texts, options);
  }

  /**
   * Renders `messages` with the tokenizer's chat template (or `options.chatTemplate`), as
   * transformers' `apply_chat_template`; token ids when `tokenize` is true.
   * @example
   * tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
   * // '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n'
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions & { tokenize: true }): number[];
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions & { tokenize?: false }): string;
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string | number[] {
    const text = applyChatTemplate(this, messages, options);
    // transformers tokenizes a rendered template without adding special tokens: the template writes them.
    return options.tokenize ? this.encode(text, { addSpecialTokens: false }) : text;
  }

  /** Text of `ids`; special tokens are kept unless `skipSpecialTokens`. */
  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return this.hf.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /** Token strings of `text` (before id lookup), for inspection. */
  tokenize(text: string): string[] {
    return this.hf.tokenize(text);
  }

  /** Id of a token string, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** Token string of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** The tokenizer.json document this tokenizer was loaded from (to save it next to a model). */
  toJSON(): TokenizerJSON {
    return this.json;
  }

  private specialId(configured: TokenizerConfig['eos_token'], guesses: readonly string[]): number | undefined {
    if (configured !== undefined && configured !== null) {
      const content = typeof configured === 'string' ? configured : configured.content;
      return this.hf.token_to_id(content);
    }
    const specials = new Set((this.json.added_tokens ?? []).filter((t) => t.special).map((t) => t.content));
    const hit = guesses.find((g) => specials.has(g));
    return hit === undefined ? undefined : this.hf.token_to_id(hit);
  }
}
