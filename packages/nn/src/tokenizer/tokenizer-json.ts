/** The Hugging Face `tokenizer.json` document, as far as this package reads or writes it. */
export interface TokenizerJSON {
  version?: string;
  truncation?: unknown;
  padding?: unknown;
  added_tokens?: { id: number; content: string; special?: boolean; single_word?: boolean; lstrip?: boolean; rstrip?: boolean; normalized?: boolean }[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  post_processor?: unknown;
  decoder?: unknown;
  model: { type?: string; vocab?: unknown; merges?: unknown; [key: string]: unknown };
  [key: string]: unknown;
}
