/**
 * Tokenizers from Hugging Face `tokenizer.json` files, through the maintained
 * `@huggingface/tokenizers` library (pure JS, same code in Node and browsers).
 */
import { Tokenizer as HfTokenizerExport } from '@huggingface/tokenizers';
import type { ModelSource } from '../io/source.js';
import type { TokenizerJSON } from './tokenizer-json.js';

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
