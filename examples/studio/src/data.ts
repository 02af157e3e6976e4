/**
 * Training data of the studio: text pasted or dropped as `.txt`, or `.jsonl` records
 * (`{"text"}`, `{"prompt","completion"}` or `{"messages":[{"role","content"}]}`),
 * turned into one training text; and the token windows a run trains and evaluates on.
 * Runs on the page (parsing) and in the worker (windows); no DOM, no tensors.
 */

/** A data file the studio cannot read, naming the file and the line. */
export class MalformedFileError extends Error {
  override name = 'MalformedFileError';
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${file}${line > 0 ? `, line ${line}` : ''}: ${detail}`);
  }
}

/**
 * The training text of a dropped or picked file: a `.txt` as is; a `.jsonl` file's
 * records, one text each, separated by blank lines. Anything else, an empty file, bad
 * JSON or a record without a known text field throws {@link MalformedFileError}.
 */
export function textFromFile(name: string, content: string): string {
  const lower = name.toLowerCase();
  if (lower.endsWith('.txt')) {
    if (content.trim().length === 0) throw new MalformedFileError(name, 0, 'the file is empty');
    return content;
  }
  if (lower.endsWith('.jsonl')) return textFromJsonl(name, content);
  throw new MalformedFileError(name, 0, 'expected a .txt or .jsonl file');
}

/** The texts of a JSON Lines file, joined by blank lines. */
export function textFromJsonl(name: string, content: string): string {
  const texts: string[] = [];
  const lines = content.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(lines[i]);
    } catch (e) {
      throw new MalformedFileError(name, i + 1, `not JSON (${(e as Error).message})`);
    }
    texts.push(recordText(name, i + 1, record));
  }
  if (texts.length === 0) throw new MalformedFileError(name, 0, 'no records');
  return texts.join('\n\n');
}

function recordText(file: string, line: number, r: unknown): string {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new MalformedFileError(file, line, 'a record must be a JSON object');
  const o = r as Record<string, unknown>;
  if (typeof o.text === 'string') return o.text;
  if (typeof o.prompt === 'string' && typeof o.completion === 'string') return o.prompt + o.completion;
  if (Array.isArray(o.messages)) {
    return o.messages
      .map((m, j) => {
        const msg = m as { role?: unknown; content?: unknown };
        if (typeof msg?.role !== 'string' || typeof msg.content !== 'string') throw new MalformedFileError(file, line, `messages[${j}] needs string "role" and "content"`);
        return `${msg.role}: ${msg.content}`;
      })
      .join('\n');
  }
  throw new MalformedFileError(file, line, `no "text", "prompt"+"completion" or "messages" field (keys: ${Object.keys(o).join(', ') || 'none'})`);
}

/** Token windows `[batch, seqLen]` flattened row-major; labels equal the inputs (the model shifts them). */
export interface Window {
  inputIds: Int32Array;
  batch: number;
  seqLen: number;
}

/** mulberry32: a small seeded generator, so the same seed picks the same windows. */
export function seededUniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Splits token ids into a training part and a held-out tail (`evalFraction` of the
 * tokens, at least one window), and says why when the text is too short for a window.
 */
export function splitTokens(ids: Int32Array, seqLen: number, evalFraction = 0.1): { train: Int32Array; held: Int32Array } {
  const heldLen = Math.max(seqLen, Math.floor(ids.length * evalFraction));
  if (ids.length - heldLen <= seqLen) {
    throw new RangeError(`the training text has ${ids.length} tokens: need more than ${seqLen + heldLen} (one window of ${seqLen + 1} to train on, ${heldLen} held out); paste more text or lower the sequence length`);
  }
  return { train: ids.subarray(0, ids.length - heldLen), held: ids.subarray(ids.length - heldLen) };
}

/** `batch` windows of `seqLen` tokens starting at uniformly drawn offsets. */
export function randomWindows(ids: Int32Array, batch: number, seqLen: number, uniform: () => number): Window {
  const inputIds = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    const start = Math.floor(uniform() * (ids.length - seqLen));
    inputIds.set(ids.subarray(start, start + seqLen), b * seqLen);
  }
  return { inputIds, batch, seqLen };
}

/** Consecutive windows covering `ids` (at most `maxWindows` batches), for a deterministic held-out loss. */
export function evalWindows(ids: Int32Array, batch: number, seqLen: number, maxBatches: number): Window[] {
  const out: Window[] = [];
  const rows = Math.floor(ids.length / seqLen);
  const perBatch = Math.max(1, Math.min(batch, rows));
  for (let r = 0; r + perBatch <= rows && out.length < maxBatches; r += perBatch) {
    out.push({ inputIds: ids.slice(r * seqLen, (r + perBatch) * seqLen), batch: perBatch, seqLen });
  }
  return out;
}
