/**
 * Supervised fine-tuning records from a file's text: plain text, or JSON Lines in one of
 * the dataset formats TRL's `SFTTrainer` takes (`{"text"}`, `{"prompt","completion"}`,
 * `{"messages":[{role,content}]}`). Parsing only: no file system access, so the same code
 * reads a file in Node and a `File` in a browser.
 */
import type { ChatMessage } from '../tokenizer/chat-template.js';

/** One SFT sample. */
export type SftRecord =
  | { kind: 'text'; text: string }
  | { kind: 'prompt_completion'; prompt: string; completion: string }
  | { kind: 'messages'; messages: ChatMessage[] };

/** The format of a whole file: every record of a file has the same kind. */
export type SftFormat = SftRecord['kind'];

/** Records of one file, with the source line of each (1-based). */
export interface SftDataset {
  /** Where the records came from (a file name), used in every error message. */
  name: string;
  format: SftFormat;
  records: SftRecord[];
  /** 1-based line number of each record in the file. */
  lines: number[];
}

/** A malformed data file, naming the file and the 1-based line. */
export class SftDataError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
    this.name = 'SftDataError';
  }
}

/** Options of {@link parseSftData}. */
export interface ParseSftOptions {
  /**
   * `'auto'` (default): JSON Lines when the name ends in `.jsonl`/`.json` or the first
   * non-blank line starts with `{`, else plain text.
   */
  format?: 'auto' | 'jsonl' | 'text';
}

/**
 * Parses a data file's text into SFT records. Plain text gives one `text` record per
 * non-blank line (as the Hugging Face `text` dataset loader, minus blank lines, which would
 * only train on an end-of-sequence token). JSON Lines: one object per non-blank line; the
 * first record fixes the format and every later line must match it.
 * @example
 * parseSftData('chat.jsonl', '{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]}\n');
 * // { format: 'messages', records: [{ kind: 'messages', messages: [...] }], lines: [1], name: 'chat.jsonl' }
 */
export function parseSftData(name: string, text: string, options: ParseSftOptions = {}): SftDataset {
  const format = options.format ?? 'auto';
  if (format !== 'auto' && format !== 'jsonl' && format !== 'text') {
    throw new Error(`parseSftData: format must be 'auto', 'jsonl' or 'text', got ${JSON.stringify(format)}`);
  }
  const rows = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const firstLine = rows.find((r) => r.trim() !== '') ?? '';
  const jsonl = format === 'jsonl' || (format === 'auto' && (/\.jsonl?$/i.test(name) || firstLine.trimStart().startsWith('{')));
  const records: SftRecord[] = [];
  const lines: number[] = [];
  let fileFormat: SftFormat | null = jsonl ? null : 'text';
  rows.forEach((row, i) => {
    if (row.trim() === '') return;
    const record = jsonl ? parseJsonLine(name, i + 1, row) : { kind: 'text' as const, text: row };
    if (fileFormat === null) fileFormat = record.kind;
    else if (record.kind !== fileFormat) {
      throw new SftDataError(name, i + 1, `a ${describe(record.kind)} record in a file whose first record is ${describe(fileFormat)}; one file holds one format`);
    }
    records.push(record);
    lines.push(i + 1);
  });
  if (records.length === 0 || fileFormat === null) throw new SftDataError(name, 1, 'no records (the file is empty or blank)');
  return { name, format: fileFormat, records, lines };
}

function describe(kind: SftFormat): string {
  return kind === 'text' ? '{"text"}' : kind === 'prompt_completion' ? '{"prompt","completion"}' : '{"messages"}';
}

function parseJsonLine(file: string, line: number, row: string): SftRecord {
  let value: unknown;
  try {
    value = JSON.parse(row);
  } catch (e) {
    throw new SftDataError(file, line, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SftDataError(file, line, `expected a JSON object, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`);
  }
  const o = value as Record<string, unknown>;
  const str = (key: string): string => {
    if (typeof o[key] !== 'string') throw new SftDataError(file, line, `"${key}" must be a string, got ${typeOf(o[key])}`);
    return o[key];
  };
  if ('messages' in o) return { kind: 'messages', messages: parseMessages(file, line, o.messages) };
  if ('prompt' in o || 'completion' in o) {
    if (!('prompt' in o) || !('completion' in o)) throw new SftDataError(file, line, `a prompt/completion record needs both "prompt" and "completion"`);
    return { kind: 'prompt_completion', prompt: str('prompt'), completion: str('completion') };
  }
  if ('text' in o) return { kind: 'text', text: str('text') };
  const keys = Object.keys(o).join(', ') || 'none';
  throw new SftDataError(file, line, `expected a "text", "prompt"+"completion" or "messages" field (keys: ${keys})`);
}

function parseMessages(file: string, line: number, value: unknown): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) throw new SftDataError(file, line, `"messages" must be a non-empty array, got ${typeOf(value)}`);
  return value.map((m: unknown, j) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new SftDataError(file, line, `messages[${j}] must be an object with "role" and "content"`);
    const msg = m as Record<string, unknown>;
    if (typeof msg.role !== 'string' || msg.role === '') throw new SftDataError(file, line, `messages[${j}].role must be a non-empty string, got ${typeOf(msg.role)}`);
    if (typeof msg.content !== 'string') throw new SftDataError(file, line, `messages[${j}].content must be a string, got ${typeOf(msg.content)}`);
    return msg as ChatMessage;
  });
}

function typeOf(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  return Array.isArray(v) ? 'an array' : typeof v;
}
