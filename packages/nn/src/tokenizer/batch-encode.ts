/**
 * Batch encoding with padding and truncation, following transformers'
 * `PreTrainedTokenizerBase.__call__` on a list of texts (fast tokenizers): truncation
 * counts the special tokens the post-processor adds and keeps them, padding goes to the
 * longest sequence or to `maxLength`, rounded up to `padToMultipleOf`.
 */

/** How {@link encodeBatch} pads: `'longest'` (transformers' `True`), `'max_length'`, or not at all. */
export type PaddingStrategy = 'longest' | 'max_length' | false;

/** Options of {@link encodeBatch}; names follow transformers' `tokenizer(...)` arguments. */
export interface EncodeBatchOptions {
  /** Default false (no padding), as transformers. */
  padding?: PaddingStrategy | true;
  /** Cut sequences longer than `maxLength` (default false). */
  truncation?: boolean;
  /** Length for truncation and `'max_length'` padding; default the tokenizer's `modelMaxLength`. */
  maxLength?: number;
  /** Round the padded length up to a multiple of this. */
  padToMultipleOf?: number;
  /** Default the tokenizer's `paddingSide` (`padding_side` in tokenizer_config.json, else right). */
  paddingSide?: 'left' | 'right';
  /** Default the tokenizer's `truncationSide`. */
  truncationSide?: 'left' | 'right';
  /** Add the post-processor's special tokens (e.g. BOS); default true. */
  addSpecialTokens?: boolean;
  /** Return attention masks (default true). */
  returnAttentionMask?: boolean;
}

/** Output of {@link encodeBatch}: one row per text. */
export interface BatchEncoding {
  /** Token ids `[N][L_i]` (every `L_i` equal when padded). */
  inputIds: number[][];
  /** 1 for a token, 0 for padding, `[N][L_i]`; absent when `returnAttentionMask` is false. */
  attentionMask?: number[][];
  /** Tokens before padding (after truncation), `[N]`. */
  lengths: number[];
}

/** What {@link encodeBatch} needs of a tokenizer. */
export interface BatchEncoder {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  padTokenId?: number;
  readonly modelMaxLength: number;
  readonly paddingSide: 'left' | 'right';
  readonly truncationSide: 'left' | 'right';
}

/**
 * Encodes `texts` `[N]` into ids `[N][L]`, attention masks `[N][L]` and lengths `[N]`.
 * Throws when padding is asked for and the tokenizer has no pad token, as transformers does.
 * @example
 * encodeBatch(tok, ['a b', 'a'], { padding: 'longest' }).attentionMask; // [[1, 1], [1, 0]]
 */
export function encodeBatch(tok: BatchEncoder, texts: readonly string[], options: EncodeBatchOptions = {}): BatchEncoding {
  const padding: PaddingStrategy = options.padding === true ? 'longest' : (options.padding ?? false);
  if (padding !== false && padding !== 'longest' && padding !== 'max_length') {
    throw new Error(`encodeBatch: padding must be 'longest', 'max_length', true or false, got ${JSON.stringify(options.padding)}`);
  }
  const truncation = options.truncation ?? false;
  const maxLength = options.maxLength ?? tok.modelMaxLength;
  if (options.maxLength !== undefined && !(Number.isInteger(options.maxLength) && options.maxLength > 0)) {
    throw new Error(`encodeBatch: maxLength must be a positive integer, got ${options.maxLength}`);
  }
  if ((truncation || padding === 'max_length') && !Number.isFinite(maxLength)) {
    const what = truncation ? 'truncation' : "padding: 'max_length'";
    throw new Error(`encodeBatch: ${what} needs maxLength (the tokenizer config sets no model_max_length)`);
  }
  const multiple = options.padToMultipleOf;
  if (multiple !== undefined && !(Number.isInteger(multiple) && multiple > 0)) {
    throw new Error(`encodeBatch: padToMultipleOf must be a positive integer, got ${multiple}`);
  }
  const paddingSide = options.paddingSide ?? tok.paddingSide;
  const truncationSide = options.truncationSide ?? tok.truncationSide;
  for (const [name, v] of [['paddingSide', paddingSide], ['truncationSide', truncationSide]] as const) {
    if (v !== 'left' && v !== 'right') throw new Error(`encodeBatch: ${name} must be 'left' or 'right', got ${JSON.stringify(v)}`);
  }
  if (padding !== false && tok.padTokenId === undefined) {
    // transformers refuses here too rather than picking a token for the caller.
    throw new Error(
      'encodeBatch: padding was asked for but the tokenizer has no pad token; set pad_token in tokenizer_config.json ' +
        '(e.g. to the eos token) or pass padding: false',
    );
  }
  const addSpecial = options.addSpecialTokens ?? true;
  const rows = texts.map((text, i) => {
    if (typeof text !== 'string') throw new Error(`encodeBatch: texts[${i}] is ${typeof text}, not a string`);
    const ids = tok.encode(text, { addSpecialTokens: addSpecial });
    if (!truncation || ids.length <= maxLength) return ids;
    return truncate(tok, text, ids, addSpecial, maxLength, truncationSide);
  });
  const lengths = rows.map((r) => r.length);
  let target = -1;
  if (padding === 'longest') target = Math.max(0, ...lengths);
  else if (padding === 'max_length') target = maxLength;
  if (target >= 0 && multiple !== undefined) target = Math.ceil(target / multiple) * multiple;
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  for (const ids of rows) {
    const pad = Math.max(0, target - ids.length);
    const fill = new Array<number>(pad).fill(tok.padTokenId ?? 0);
    const zeros = new Array<number>(pad).fill(0);
    const ones = new Array<number>(ids.length).fill(1);
    inputIds.push(paddingSide === 'right' ? [...ids, ...fill] : [...fill, ...ids]);
    attentionMask.push(paddingSide === 'right' ? [...ones, ...zeros] : [...zeros, ...ones]);
  }
  const out: BatchEncoding = { inputIds, lengths };
  if (options.returnAttentionMask ?? true) out.attentionMask = attentionMask;
  return out;
}

/**
 * Cuts the text's own tokens so that they and the post-processor's special tokens fit in
 * `maxLength`, keeping the special tokens where they were (as the Rust tokenizers do).
 */
function truncate(tok: BatchEncoder, text: string, ids: number[], addSpecial: boolean, maxLength: number, side: 'left' | 'right'): number[] {
  const raw = addSpecial ? tok.encode(text, { addSpecialTokens: false }) : ids;
  const added = ids.length - raw.length;
  let start = -1;
  for (let s = 0; s <= added && start < 0; s++) if (raw.every((id, j) => ids[s + j] === id)) start = s;
  if (start < 0) {
    throw new Error('encodeBatch: cannot truncate: the special tokens the post-processor adds do not surround the text tokens');
  }
  if (added >= maxLength) {
    throw new Error(`encodeBatch: maxLength ${maxLength} leaves no room for text after the ${added} special tokens the tokenizer adds`);
  }
  const keep = maxLength - added;
  const cut = side === 'right' ? raw.slice(0, keep) : raw.slice(raw.length - keep);
  return [...ids.slice(0, start), ...cut, ...ids.slice(start + raw.length)];
}
