/**
 * Trains a GPT-2 style byte-level BPE tokenizer on a text and emits it as a Hugging Face
 * `tokenizer.json` (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with
 * Subword Units"; byte-level variant of Radford et al. 2019, GPT-2).
 *
 * Pre-tokenization is GPT-2's regex over the UTF-8 bytes, so every string is encodable
 * (no unknown token) and decoding is exact. Merges are learned greedily: the most frequent
 * adjacent pair (ties broken by the pair's string order, so training is deterministic)
 * becomes a new token, until the vocabulary is full or no pair occurs `minFrequency` times.
 */
import { BYTE_TO_CHAR, GPT2_SPLIT_REGEX, toByteLevel } from './byte-level.js';
import type { TokenizerJSON } from './tokenizer-json.js';

/** Options of {@link trainByteLevelBpe}. */
export interface TrainBpeOptions {
  /** Added special tokens, given the last ids (default `['<|endoftext|>']`, GPT-2's end of text). */
  specialTokens?: string[];
  /** A pair must occur at least this often to be merged (default 2). */
  minFrequency?: number;
}

/**
 * Learns a byte-level BPE vocabulary of `vocabSize` tokens (256 bytes + merges + special
 * tokens) from `text`; returns the tokenizer.json object (load with `Tokenizer.fromJSON`).
 * @example
 * const tok = Tokenizer.fromJSON(trainByteLevelBpe(corpus, 512));
 * tok.decode(tok.encode('Call me Ishmael.')); // 'Call me Ishmael.'
 */
export function trainByteLevelBpe(text: string, vocabSize: number, options: TrainBpeOptions = {}): TokenizerJSON {
  const specials = options.specialTokens ?? ['<|endoftext|>'];
  const minFrequency = options.minFrequency ?? 2;
  const base = 256 + specials.length;
  if (!Number.isInteger(vocabSize) || vocabSize < base) {
    throw new Error(`trainByteLevelBpe: vocabSize ${vocabSize} must be an integer >= ${base} (256 bytes + ${specials.length} special tokens)`);
  }
  // Word types with their counts; each word is a list of symbols.
  const counts = new Map<string, number>();
  for (const m of text.matchAll(GPT2_SPLIT_REGEX)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  const encoder = new TextEncoder();
  const words: string[][] = [];
  const freq: number[] = [];
  for (const [w, c] of counts) {
    words.push(toByteLevel(w, encoder));
    freq.push(c);
  }

  // Pair statistics, kept up to date incrementally: a merge only touches the words that contain the pair.
  // Symbols never contain a space (space is 'Ġ'), so 'a b' is an unambiguous pair key.
  const pairCount = new Map<string, number>();
  const pairWords = new Map<string, Set<number>>();
  const addWord = (i: number, sign: 1 | -1) => {
    const w = words[i];
    for (let j = 0; j + 1 < w.length; j++) {
      const key = `${w[j]} ${w[j + 1]}`;
      pairCount.set(key, (pairCount.get(key) ?? 0) + sign * freq[i]);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (!set) pairWords.set(key, (set = new Set()));
        set.add(i);
      }
    }
  };
  for (let i = 0; i < words.length; i++) addWord(i, 1);

  const vocab: Record<string, number> = {};
  BYTE_TO_CHAR.forEach((c, b) => (vocab[c] = b));
  const merges: string[] = [];
  let nextId = 256;
  while (nextId < vocabSize - specials.length) {
    let best = '';
    let bestCount = 0;
    for (const [key, c] of pairCount) {
      if (c > bestCount || (c === bestCount && c > 0 && key < best)) {
        best = key;
        bestCount = c;
      }
    }
    if (bestCount < minFrequency) break;
    const [a, b] = best.split(' ');
    const merged = a + b;
    merges.push(best);
    if (!(merged in vocab)) vocab[merged] = nextId++;
    for (const i of pairWords.get(best) ?? []) {
      addWord(i, -1);
      const w = words[i];
      const out: string[] = [];
      for (let j = 0; j < w.length; j++) {
        if (j + 1 < w.length && w[j] === a && w[j + 1] === b) {
          out.push(merged);
          j++;
        } else out.push(w[j]);
      }
      words[i] = out;
      addWord(i, 1);
    }
    pairCount.delete(best);
    pairWords.delete(best);
  }
  const addedTokens = specials.map((content, k) => ({
    id: nextId + k,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  for (const t of addedTokens) vocab[t.content] = t.id;
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: { type: 'ByteLevel', ...byteLevel, trim_offsets: false },
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}
