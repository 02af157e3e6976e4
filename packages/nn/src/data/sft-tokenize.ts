/**
 * Tokenization and loss masks of SFT records, as TRL 1.13's `SFTTrainer._prepare_dataset`:
 * - text: the end-of-sequence token is appended (unless the text ends with it), then
 *   `tokenizer(text)`; every token is a target.
 * - prompt/completion: EOS appended to the completion; ids of `prompt + completion`, and
 *   with `completionOnlyLoss` (default true for this format, as TRL) labels -100 on the
 *   first `len(tokenizer(prompt))` tokens.
 * - messages: the chat template renders the conversation (no EOS appended); with
 *   `assistantOnlyLoss`, labels -100 outside the template's `{% generation %}` blocks.
 * - then, unless packing, truncation to `maxLength` keeping the start, and samples left
 *   with no target dropped.
 */
import { type ChatMessage, renderWithGenerationSpans } from '../tokenizer/chat-template.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { SftDataset, SftRecord } from './sft-records.js';

/** The label of a token that is not a loss target (PyTorch's cross-entropy `ignore_index`). */
export const IGNORE_INDEX = -100;

/** One tokenized sample: ids and labels of the same length (labels are not shifted). */
export interface SftExample {
  inputIds: number[];
  labels: number[];
}

/** Options of {@link tokenizeSft}; names follow TRL's `SFTConfig`. */
export interface TokenizeSftOptions {
  /** TRL `completion_only_loss`: default (undefined) true for prompt/completion data; only that format uses it. */
  completionOnlyLoss?: boolean;
  /** TRL `assistant_only_loss`: train only on `{% generation %}` spans of chat data (default false). */
  assistantOnlyLoss?: boolean;
  /** A chat template replacing the tokenizer's (TRL's `chat_template_path`). */
  chatTemplate?: string;
  /** TRL `max_length`: truncate longer samples (keep the start); null for none. Ignored when `packing`. */
  maxLength?: number | null;
  /** Packing follows: no truncation here (the packer cuts at its sequence length), as TRL. */
  packing?: boolean;
}

/** Output of {@link tokenizeSft}. */
export interface TokenizedSft {
  examples: SftExample[];
  /** Source line of each example. */
  lines: number[];
  /** Things TRL warns about, one line each (the caller shows them; nothing is dropped silently). */
  warnings: string[];
}

/**
 * Tokenizes a parsed dataset into ids and labels, as TRL's SFT dataset preparation.
 * @example
 * const { examples } = tokenizeSft(parseSftData('qa.jsonl', text), tokenizer, { maxLength: 256 });
 * examples[0].labels; // -100 over the prompt, token ids over the completion (and its EOS)
 */
export function tokenizeSft(dataset: SftDataset, tok: Tokenizer, options: TokenizeSftOptions = {}): TokenizedSft {
  const { completionOnlyLoss, assistantOnlyLoss = false, packing = false } = options;
  const maxLength = options.maxLength === undefined ? 1024 : options.maxLength;
  if (maxLength !== null && !(Number.isInteger(maxLength) && maxLength > 0)) {
    throw new Error(`tokenizeSft: maxLength must be a positive integer or null, got ${maxLength}`);
  }
  if (completionOnlyLoss === true && dataset.format !== 'prompt_completion') {
    throw new Error(`tokenizeSft: completionOnlyLoss needs {"prompt","completion"} records; ${dataset.name} holds ${dataset.format} records`);
  }
  if (assistantOnlyLoss && dataset.format !== 'messages') {
    throw new Error(`tokenizeSft: assistantOnlyLoss needs {"messages"} records; ${dataset.name} holds ${dataset.format} records`);
  }
  const eos = tok.eosTokenId === undefined ? undefined : tok.idToToken(tok.eosTokenId);
  if (dataset.format !== 'messages' && eos === undefined) {
    throw new Error(`tokenizeSft: the tokenizer has no eos token, which ${dataset.format} samples end with (TRL appends it)`);
  }
  const examples: SftExample[] = [];
  const lines: number[] = [];
  const warnings: string[] = [];
  let dropped = 0;
  dataset.records.forEach((record, i) => {
    const at = `${dataset.name}:${dataset.lines[i]}`;
    let ex = tokenizeRecord(record, tok, eos!, completionOnlyLoss ?? true, assistantOnlyLoss, options.chatTemplate, at, warnings);
    if (maxLength !== null && !packing) {
      ex = { inputIds: ex.inputIds.slice(0, maxLength), labels: ex.labels.slice(0, maxLength) };
      if (!ex.labels.some((l) => l !== IGNORE_INDEX)) {
        dropped++;
        return;
      }
    }
    examples.push(ex);
    lines.push(dataset.lines[i]);
  });
  if (dropped > 0) warnings.push(`${dataset.name}: ${dropped} sample(s) dropped: no target token left within maxLength ${maxLength}`);
  if (examples.length === 0) throw new Error(`tokenizeSft: ${dataset.name}: no sample has a target token within maxLength ${maxLength}`);
  return { examples, lines, warnings };
}

function tokenizeRecord(
  record: SftRecord,
  tok: Tokenizer,
  eos: string,
  completionOnly: boolean,
  assistantOnly: boolean,
  chatTemplate: string | undefined,
  at: string,
  warnings: string[],
): SftExample {
  if (record.kind === 'text') {
    const ids = tok.encode(record.text.endsWith(eos) ? record.text : record.text + eos);
    return { inputIds: ids, labels: ids.slice() };
  }
  if (record.kind === 'prompt_completion') {
    const completion = record.completion.endsWith(eos) ? record.completion : record.completion + eos;
    const promptIds = tok.encode(record.prompt);
    const ids = tok.encode(record.prompt + completion);
    if (!promptIds.every((id, j) => ids[j] === id)) {
      warnings.push(`${at}: the tokenized prompt is not a prefix of the tokenized prompt + completion (TRL masks its length anyway)`);
    }
    const labels = ids.map((id, j) => (completionOnly && j < promptIds.length ? IGNORE_INDEX : id));
    return { inputIds: ids, labels };
  }
  if (!assistantOnly) {
    const ids = tok.applyChatTemplate(record.messages, { chatTemplate, tokenize: true });
    return { inputIds: ids, labels: ids.slice() };
  }
  return assistantMasked(record.messages, tok, chatTemplate, at);
}

/**
 * Ids and labels of a conversation with targets only inside `{% generation %}` spans
 * (transformers' `return_assistant_tokens_mask`). The text is encoded span by span; the
 * concatenation must equal encoding the whole text, else a span boundary splits a token
 * and the mask would be ambiguous, which is an error rather than a guess.
 */
function assistantMasked(messages: ChatMessage[], tok: Tokenizer, chatTemplate: string | undefined, at: string): SftExample {
  const { text, spans, hasMarkers } = renderWithGenerationSpans(tok, messages, { chatTemplate });
  if (!hasMarkers) {
    throw new Error(
      `${at}: assistantOnlyLoss needs a chat template with {% generation %} ... {% endgeneration %} around assistant output ` +
        '(as TRL and transformers do); this template has none: pass a training template as chatTemplate',
    );
  }
  if (spans.length === 0) throw new Error(`${at}: assistantOnlyLoss: the conversation has no assistant tokens (no {% generation %} block rendered)`);
  const ids: number[] = [];
  const labels: number[] = [];
  let pos = 0;
  const push = (from: number, to: number, target: boolean): void => {
    if (to <= from) return;
    const part = tok.encode(text.slice(from, to), { addSpecialTokens: false });
    for (const id of part) {
      ids.push(id);
      labels.push(target ? id : IGNORE_INDEX);
    }
  };
  for (const [s, e] of spans) {
    push(pos, s, false);
    push(s, e, true);
    pos = e;
  }
  push(pos, text.length, false);
  const whole = tok.encode(text, { addSpecialTokens: false });
  if (whole.length !== ids.length || whole.some((id, j) => ids[j] !== id)) {
    throw new Error(`${at}: assistantOnlyLoss: a {% generation %} boundary falls inside a token of the rendered conversation, so the assistant mask is ambiguous`);
  }
  return { inputIds: ids, labels };
}
