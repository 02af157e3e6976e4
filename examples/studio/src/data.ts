/**
 * Training data of the studio, through nn's SFT pipeline (TRL's `SFTTrainer` data path):
 * the text is parsed with `parseSftData` (plain text: one sample per non-blank line;
 * JSON Lines: `{"text"}`, `{"prompt","completion"}` or `{"messages"}` records, a bad line
 * named as `file:line`), tokenized with TRL's loss masks (`tokenizeSft`), packed
 * (`packSft`, best-fit decreasing) or padded, and collated (`collatePacked` /
 * `collateSft`). The last 10% of the samples are held out. The page parses only (to
 * report a bad file at once); the worker does the rest. No DOM, no tensors.
 */
import { type SftBatch, type SftDataset, type SftExample, type Tokenizer, collatePacked, collateSft, packSft, parseSftData, tokenizeSft } from '@webpeft/nn';

/** A file the studio cannot read (a zip, an adapter folder), naming the file and the line. */
export class MalformedFileError extends Error {
  override name = 'MalformedFileError';
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${file}${line > 0 ? `:${line}` : ''}: ${detail}`);
  }
}

/** Fraction of the samples held out for the evaluation loss (the data's last samples, at least one). */
export const EVAL_FRACTION = 0.1;

/** The data options of a run (a subset of the train settings). */
export interface DataOptions {
  /** Rows are at most this many tokens (longer samples are truncated, or cut by the packer). */
  seqLen: number;
  batch: number;
  /** Pack samples into rows of `seqLen` (TRL's `bfd`: samples stay whole, block-diagonal attention). */
  packing: boolean;
  /** `true`: loss on completions (prompt/completion) or assistant turns (messages) only; `false`: every token; `auto`: TRL's default. */
  completionOnly: 'auto' | 'true' | 'false';
  /** Held-out batches evaluated each time. */
  evalBatches: number;
}

/** What a run trains and evaluates on. */
export interface PreparedData {
  /** Training rows (samples, or packed rows of samples). */
  train: SftExample[];
  /** Held-out batches, the same every evaluation. */
  evalSet: SftBatch[];
  /** Collates training rows into a batch. */
  collate: (rows: readonly SftExample[]) => SftBatch;
  /** One line for the log: format, samples, packing, what the loss covers. */
  summary: string;
  /** What the SFT pipeline warns about (dropped samples and the like). */
  warnings: string[];
}

/**
 * Parses the data (the page calls this to report a bad file before anything is sent):
 * throws nn's `SftDataError` naming `name:line`, or when there are fewer than two samples.
 */
export function parseData(name: string, text: string): SftDataset {
  const dataset = parseSftData(name, text);
  if (dataset.records.length < 2) throw new MalformedFileError(name, 0, `${dataset.records.length} sample; at least 2 are needed (the last is held out for the evaluation loss)`);
  return dataset;
}

/**
 * Tokenizes, splits, packs and batches `text` for a run. Errors name the setting or the
 * file's line; nothing is half built (this runs before any model is touched).
 */
export function prepareData(name: string, text: string, tokenizer: Tokenizer, o: DataOptions): PreparedData {
  const dataset = parseData(name, text);
  if (o.completionOnly === 'true' && dataset.format === 'text') {
    throw new RangeError(`completion-only loss: ${name} holds plain text samples, which have no prompt to mask (use {"prompt","completion"} or {"messages"} records, or train on every token)`);
  }
  const lossOptions = {
    completionOnlyLoss: o.completionOnly === 'auto' ? undefined : o.completionOnly === 'true' && dataset.format === 'prompt_completion',
    assistantOnlyLoss: o.completionOnly === 'true' && dataset.format === 'messages',
  };
  const tokenize = (from: number, to: number) =>
    tokenizeSft({ ...dataset, records: dataset.records.slice(from, to), lines: dataset.lines.slice(from, to) }, tokenizer, { ...lossOptions, maxLength: o.seqLen, packing: o.packing });
  const held = Math.max(1, Math.floor(dataset.records.length * EVAL_FRACTION));
  const cut = dataset.records.length - held;
  const train = tokenize(0, cut);
  const heldOut = tokenize(cut, dataset.records.length);
  const padTokenId = tokenizer.padTokenId ?? tokenizer.eosTokenId;
  if (padTokenId === undefined) throw new RangeError(`${name}: the tokenizer has neither a pad nor an eos token to pad batches with`);
  // Packed rows keep their samples apart (block mask, restarting positions), as TRL's padding-free batches.
  const collate = o.packing ? (rows: readonly SftExample[]) => collatePacked(rows as Parameters<typeof collatePacked>[0], { padTokenId }) : (rows: readonly SftExample[]) => collateSft(rows, { padTokenId });
  const trainRows = o.packing ? packSft(train.examples, o.seqLen) : train.examples;
  const evalRows = o.packing ? packSft(heldOut.examples, o.seqLen) : heldOut.examples;
  const evalSet: SftBatch[] = [];
  for (let s = 0; s < evalRows.length && evalSet.length < o.evalBatches; s += o.batch) evalSet.push(collate(evalRows.slice(s, s + o.batch)));
  const loss = lossOptions.assistantOnlyLoss ? 'assistant turns only' : dataset.format === 'prompt_completion' && lossOptions.completionOnlyLoss !== false ? 'completions only' : 'every token';
  const layout = o.packing ? `packed into ${trainRows.length} rows of <= ${o.seqLen} tokens` : `truncated to ${o.seqLen} tokens`;
  return {
    train: trainRows,
    evalSet,
    collate,
    summary: `${name} (${dataset.format}): ${train.examples.length} training samples, ${heldOut.examples.length} held out (last ${EVAL_FRACTION * 100}%), ${layout}, loss on ${loss}`,
    warnings: [...train.warnings, ...heldOut.warnings],
  };
}

/** mulberry32: a small seeded generator, so the same seed picks the same batches in every runtime. */
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
 * Training batches: the rows in a seeded shuffle per pass (Fisher-Yates), `batch` rows at
 * a time; a pass's last short batch is kept.
 */
export class RowSampler {
  private order: number[] = [];
  private pos = 0;

  constructor(
    private readonly rows: readonly SftExample[],
    private readonly batch: number,
    private readonly uniform: () => number,
  ) {
    if (rows.length === 0) throw new RangeError('no training rows: every sample was dropped (see the warnings) or the data is held out');
    this.shuffle();
  }

  /** The next `batch` rows (fewer at the end of a pass). */
  next(): SftExample[] {
    if (this.pos >= this.order.length) this.shuffle();
    const picked = this.order.slice(this.pos, this.pos + this.batch).map((i) => this.rows[i]);
    this.pos += picked.length;
    return picked;
  }

  private shuffle(): void {
    this.order = this.rows.map((_, i) => i);
    for (let i = this.order.length - 1; i > 0; i--) {
      const j = Math.floor(this.uniform() * (i + 1));
      [this.order[i], this.order[j]] = [this.order[j], this.order[i]];
    }
    this.pos = 0;
  }
}
