/**
 * `--data FILE`: supervised fine-tuning data for the CLI, through @webpeft/nn's SFT data
 * path (parse, tokenize with TRL's loss masks, pack, collate). The last 10% of the file's
 * records (at least one) are held out for the evaluation loss, as the default corpus keeps
 * its last 10% for it; the rest is shuffled per epoch with the run's seed.
 */
import { readFileSync } from 'node:fs';
import { type PackedExample, type PackingStrategy, type SftBatch, type SftDataset, type SftExample, type Tokenizer, collatePacked, collateSft, packSft, parseSftData, tokenizeSft } from '@webpeft/nn';
import type { TokenBatch } from './batches.js';
import { SeededRandom } from './seeded-random.js';

/** Fraction of the records held out for evaluation (the file's last records). */
export const DATA_EVAL_FRACTION = 0.1;

/** What the CLI options say about the data. */
export interface SftDataOptions {
  seqLen: number;
  batch: number;
  evalBatches: number;
  packing: boolean;
  packingStrategy: PackingStrategy;
  seed: number;
}

/** Training rows, held-out batches and a one-line description for the report. */
export interface SftData {
  sampler: SftSampler;
  evalSet: TokenBatch[];
  summary: string;
  warnings: string[];
}

/** A parsed `--data` file (and `--chat-template`), read before any model is loaded. */
export interface SftFile {
  path: string;
  dataset: SftDataset;
  chatTemplate: string | undefined;
  /** `auto`: TRL's default; `true`: completion_only_loss / assistant_only_loss; `false`: every token. */
  completionOnly: CompletionOnly;
}

/** The `--completion-only` values. */
export type CompletionOnly = 'auto' | 'true' | 'false';

/**
 * Reads and parses `path` (and the chat template file): a malformed line throws naming the
 * file and line, before the run loads a model.
 */
export function readSftFile(path: string, chatTemplatePath: string | null, completionOnly: CompletionOnly): SftFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`--data ${path}: ${(e as Error).message}`);
  }
  let chatTemplate: string | undefined;
  if (chatTemplatePath !== null) {
    try {
      chatTemplate = readFileSync(chatTemplatePath, 'utf8');
    } catch (e) {
      throw new Error(`--chat-template ${chatTemplatePath}: ${(e as Error).message}`);
    }
  }
  const dataset = parseSftData(path, text);
  if (dataset.records.length < 2) throw new Error(`--data ${path}: ${dataset.records.length} record; at least 2 are needed (one is held out for evaluation)`);
  if (completionOnly === 'true' && dataset.format === 'text') {
    throw new Error(`--completion-only true: ${path} holds plain text records, which have no prompt to mask (use {"prompt","completion"} or {"messages"} records)`);
  }
  return { path, dataset, chatTemplate, completionOnly };
}

/** Tokenizes, splits, packs and batches a parsed file for training and evaluation. */
export function prepareSftData(file: SftFile, tokenizer: Tokenizer, o: SftDataOptions): SftData {
  const { path, dataset, chatTemplate, completionOnly } = file;
  const lossOptions = {
    completionOnlyLoss: completionOnly === 'auto' ? undefined : completionOnly === 'true' && dataset.format === 'prompt_completion' ? true : false,
    assistantOnlyLoss: completionOnly === 'true' && dataset.format === 'messages',
  };
  const tokenize = (records: typeof dataset.records, lines: number[]) =>
    tokenizeSft({ ...dataset, records, lines }, tokenizer, { ...lossOptions, chatTemplate, maxLength: o.seqLen, packing: o.packing });
  const heldCount = Math.max(1, Math.floor(dataset.records.length * DATA_EVAL_FRACTION));
  const cut = dataset.records.length - heldCount;
  const train = tokenize(dataset.records.slice(0, cut), dataset.lines.slice(0, cut));
  const held = tokenize(dataset.records.slice(cut), dataset.lines.slice(cut));
  const pad = tokenizer.padTokenId ?? tokenizer.eosTokenId;
  if (pad === undefined) throw new Error(`--data ${path}: the tokenizer has neither a pad nor an eos token to pad batches with`);
  const collate = batcher(o, pad);
  const trainRows = o.packing ? packSft(train.examples, o.seqLen, o.packingStrategy) : train.examples;
  const evalRows = o.packing ? packSft(held.examples, o.seqLen, o.packingStrategy) : held.examples;
  const evalSet: TokenBatch[] = [];
  for (let s = 0; s < evalRows.length && evalSet.length < o.evalBatches; s += o.batch) evalSet.push(toTokenBatch(collate(evalRows.slice(s, s + o.batch))));
  const loss = lossOptions.assistantOnlyLoss ? 'assistant turns only' : dataset.format === 'prompt_completion' && lossOptions.completionOnlyLoss !== false ? 'completion only' : 'every token';
  const packing = o.packing ? `, packed (${o.packingStrategy}) into ${trainRows.length} rows of <= ${o.seqLen} tokens` : `, truncated to ${o.seqLen} tokens`;
  return {
    sampler: new SftSampler(trainRows, o.batch, o.seed, collate),
    evalSet,
    summary: `${path} (${dataset.format}), ${train.examples.length} training samples, ${held.examples.length} held out (last ${DATA_EVAL_FRACTION * 100}%)${packing}, loss on ${loss}`,
    warnings: [...train.warnings, ...held.warnings],
  };
}

function batcher(o: SftDataOptions, padTokenId: number): (rows: SftExample[]) => SftBatch {
  // bfd rows keep sample boundaries (block mask, restarting positions); wrapped rows are plain sequences, as TRL collates them.
  if (o.packing && o.packingStrategy !== 'wrapped') return (rows) => collatePacked(rows.map(packed), { padTokenId });
  return (rows) => collateSft(rows, { padTokenId });
}

function packed(row: SftExample): PackedExample {
  if (!('seqLengths' in row)) throw new Error('--packing: a training row without sample lengths reached the packed collator');
  return row as PackedExample;
}

function toTokenBatch(b: SftBatch): TokenBatch {
  return { inputIds: b.inputIds, labels: b.labels, attentionMask: b.attentionMask, positionIds: b.positionIds, batchSize: b.batchSize, seqLen: b.seqLen };
}

/** Micro-batches of training rows: a seeded shuffle per epoch, `batch` rows at a time (the last short batch of an epoch is kept). */
export class SftSampler {
  private order: number[] = [];
  private pos = 0;
  private readonly rng: SeededRandom;
  /** Completed passes over the training rows. */
  epochs = 0;

  constructor(
    private readonly rows: readonly SftExample[],
    private readonly batch: number,
    seed: number,
    private readonly collate: (rows: SftExample[]) => SftBatch,
  ) {
    this.rng = new SeededRandom(seed + 11);
    this.shuffle();
  }

  /** Micro-batches per pass over the training rows (for `--epochs`). */
  get batchesPerEpoch(): number {
    return Math.ceil(this.rows.length / this.batch);
  }

  /** Where the sampler stands (JSON, saved with trainer checkpoints): this epoch's order, the next row, epochs done, the shuffle generator. */
  save(): { order: number[]; pos: number; epochs: number; rng: number } {
    return { order: [...this.order], pos: this.pos, epochs: this.epochs, rng: this.rng.state };
  }

  /** Throws naming the field unless `state` is a position of this sampler (a permutation of its rows, `pos` inside it); changes nothing. */
  check(state: unknown): void {
    const s = state as { order?: unknown; pos?: unknown; epochs?: unknown; rng?: unknown } | null;
    const n = this.rows.length;
    const order = s?.order;
    if (!Array.isArray(order) || order.length !== n || new Set(order).size !== n || order.some((i) => !Number.isInteger(i) || (i as number) < 0 || (i as number) >= n)) {
      throw new RangeError(`dataPosition.order must be a permutation of the ${n} training rows`);
    }
    if (!Number.isInteger(s?.pos) || (s!.pos as number) < 0 || (s!.pos as number) > n) throw new RangeError(`dataPosition.pos must be an integer in [0, ${n}], got ${JSON.stringify(s?.pos)}`);
    if (!Number.isInteger(s?.epochs) || (s!.epochs as number) < 0) throw new RangeError(`dataPosition.epochs must be a non-negative integer, got ${JSON.stringify(s?.epochs)}`);
    if (!Number.isInteger(s?.rng) || (s!.rng as number) < 0 || (s!.rng as number) > 0xffffffff) throw new RangeError(`dataPosition.rng must be an integer in [0, 2^32), got ${JSON.stringify(s?.rng)}`);
  }

  /** Moves the sampler to a position from {@link save} (checked first). */
  restore(state: unknown): void {
    this.check(state);
    const s = state as { order: number[]; pos: number; epochs: number; rng: number };
    this.order = [...s.order];
    this.pos = s.pos;
    this.epochs = s.epochs;
    this.rng.state = s.rng;
  }

  /** The next micro-batch. */
  next(): TokenBatch {
    if (this.pos >= this.order.length) {
      this.epochs++;
      this.shuffle();
    }
    const picked = this.order.slice(this.pos, this.pos + this.batch).map((i) => this.rows[i]);
    this.pos += picked.length;
    return toTokenBatch(this.collate(picked));
  }

  private shuffle(): void {
    this.order = this.rows.map((_, i) => i);
    for (let i = this.order.length - 1; i > 0; i--) {
      const j = Math.floor(this.rng.next() * (i + 1));
      [this.order[i], this.order[j]] = [this.order[j], this.order[i]];
    }
    this.pos = 0;
  }
}
