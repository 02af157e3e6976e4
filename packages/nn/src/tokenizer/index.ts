/**
 * Tokenizers: Hugging Face `tokenizer.json` through `@huggingface/tokenizers`, a
 * character-level tokenizer and a byte-level BPE trainer that both emit tokenizer.json;
 * batch encoding with padding/truncation and Jinja chat templates.
 * @packageDocumentation
 */
export { Tokenizer, type TokenizerConfig } from './tokenizer.js';
export { CharTokenizer, type CharTokenizerOptions } from './char-tokenizer.js';
export { trainByteLevelBpe, type TrainBpeOptions } from './train-bpe.js';
export { BYTE_TO_CHAR, GPT2_SPLIT_REGEX } from './byte-level.js';
export type { TokenizerJSON } from './tokenizer-json.js';
export { encodeBatch, type BatchEncoder, type BatchEncoding, type EncodeBatchOptions, type PaddingStrategy } from './batch-encode.js';
export {
  ChatTemplateError,
  applyChatTemplate,
  renderWithGenerationSpans,
  resolveChatTemplate,
  type ChatMessage,
  type ChatTemplateOptions,
  type ChatTemplateSource,
} from './chat-template.js';
