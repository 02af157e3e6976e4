/**
 * GPT-2's byte-level alphabet: each of the 256 byte values as one printable Unicode
 * character (printable Latin-1 bytes map to themselves, the rest to U+0100 upwards),
 * so BPE can run on bytes while vocabularies stay valid JSON strings. Space becomes
 * `Ġ`, newline `Ċ`. Same table as `bytes_to_unicode()` in GPT-2 and HF tokenizers.
 */

/** `BYTE_TO_CHAR[b]` is the character standing for byte `b`. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let next = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCharCode(printable(b) ? b : 256 + next++));
  return out;
})();

/**
 * GPT-2's pre-tokenization regex (the `use_regex` of HF's ByteLevel pre-tokenizer):
 * contractions, letter runs, digit runs and punctuation runs each with an optional
 * leading space, and whitespace runs.
 */
export const GPT2_SPLIT_REGEX = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** The byte-level characters of `word`'s UTF-8 bytes. */
export function toByteLevel(word: string, encoder = new TextEncoder()): string[] {
  return Array.from(encoder.encode(word), (b) => BYTE_TO_CHAR[b]);
}
