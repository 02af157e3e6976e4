/**
 * Batches of SFT examples as flat i32 arrays ready for `tensor(...)`, following TRL 1.13's
 * `DataCollatorForLanguageModeling`: right padding with the pad id, labels padded with
 * -100, attention mask 1 on tokens.
 *
 * Packed rows (TRL's `bfd` packing turns on `padding_free`): TRL flattens a batch into one
 * row with position ids restarting at every sample and relies on FlashAttention (or
 * transformers' packed-sequence detection) to keep samples from attending to each other;
 * the first token of every sample is not a target. Here each packed row stays a row, its
 * position ids restart per sample, and a per-query attention mask `[B, T, T]` allows a
 * token only the earlier tokens of its own sample: the same attention, loss and gradients
 * as TRL's flattened batch, with B smaller attention problems instead of one long one.
 */
import type { PackedExample } from './packing.js';
import { IGNORE_INDEX, type SftExample } from './sft-tokenize.js';

/** A padded batch: every array is `[batchSize, seqLen]` row-major, except `attentionMask` of packed batches. */
export interface SftBatch {
  inputIds: Int32Array;
  labels: Int32Array;
  /**
   * `[B, T]` padding mask (1 token, 0 pad) for unpacked batches; `[B, T, T]` (query row,
   * key column; 1 where the key is in the query's own sample) for packed ones.
   */
  attentionMask: Int32Array;
  /** `[B, T]` position ids restarting at each packed sample; absent for unpacked batches. */
  positionIds?: Int32Array;
  batchSize: number;
  seqLen: number;
  /** Non-ignored labels (targets) in the batch. */
  targets: number;
}

/** Options of the collators. */
export interface CollateOptions {
  padTokenId: number;
  /** Round the padded length up to a multiple of this (TRL `pad_to_multiple_of`). */
  padToMultipleOf?: number;
}

function paddedLength(lengths: number[], multiple?: number): number {
  const longest = Math.max(1, ...lengths);
  if (multiple === undefined) return longest;
  if (!(Number.isInteger(multiple) && multiple > 0)) throw new Error(`collate: padToMultipleOf must be a positive integer, got ${multiple}`);
  return Math.ceil(longest / multiple) * multiple;
}

function checkPad(padTokenId: number): void {
  if (!Number.isInteger(padTokenId) || padTokenId < 0) throw new Error(`collate: padTokenId must be a non-negative integer, got ${padTokenId}`);
}

/**
 * Pads unpacked examples to the longest one: ids, labels and mask `[B, T]`.
 * @example
 * collateSft([{ inputIds: [1, 2, 3], labels: [-100, 2, 3] }, { inputIds: [4, 5], labels: [4, 5] }], { padTokenId: 0 });
 * // inputIds [1,2,3, 4,5,0], labels [-100,2,3, 4,5,-100], attentionMask [1,1,1, 1,1,0]
 */
export function collateSft(examples: readonly SftExample[], options: CollateOptions): SftBatch {
  checkPad(options.padTokenId);
  if (examples.length === 0) throw new Error('collateSft: no examples');
  const b = examples.length;
  const t = paddedLength(examples.map((e) => e.inputIds.length), options.padToMultipleOf);
  const inputIds = new Int32Array(b * t).fill(options.padTokenId);
  const labels = new Int32Array(b * t).fill(IGNORE_INDEX);
  const attentionMask = new Int32Array(b * t);
  let targets = 0;
  examples.forEach((e, r) => {
    inputIds.set(e.inputIds, r * t);
    labels.set(e.labels, r * t);
    attentionMask.fill(1, r * t, r * t + e.inputIds.length);
    for (const l of e.labels) if (l !== IGNORE_INDEX) targets++;
  });
  return { inputIds, labels, attentionMask, batchSize: b, seqLen: t, targets };
}

/**
 * Pads packed rows to the longest one, with position ids restarting per sample, the first
 * label of each sample set to -100 (as TRL's padding-free collator) and a block-causal
 * per-query mask `[B, T, T]` (the model adds the causal part). For `'bfd'` and
 * `'bfd_split'` rows; `'wrapped'` rows are plain sequences (TRL collates them without
 * padding-free), so they go through {@link collateSft}.
 * @example
 * collatePacked([{ inputIds: [1, 2, 3], labels: [1, 2, 3], seqLengths: [2, 1] }], { padTokenId: 0 });
 * // positionIds [0, 1, 0], labels [-100, 2, -100]
 */
export function collatePacked(rows: readonly PackedExample[], options: CollateOptions): SftBatch {
  checkPad(options.padTokenId);
  if (rows.length === 0) throw new Error('collatePacked: no rows');
  const b = rows.length;
  const t = paddedLength(rows.map((e) => e.inputIds.length), options.padToMultipleOf);
  const inputIds = new Int32Array(b * t).fill(options.padTokenId);
  const labels = new Int32Array(b * t).fill(IGNORE_INDEX);
  const positionIds = new Int32Array(b * t);
  const attentionMask = new Int32Array(b * t * t);
  let targets = 0;
  rows.forEach((row, r) => {
    const total = row.seqLengths.reduce((a, n) => a + n, 0);
    if (total !== row.inputIds.length || row.labels.length !== total) {
      throw new Error(`collatePacked: row ${r} has ${row.inputIds.length} ids, ${row.labels.length} labels and seqLengths summing to ${total}`);
    }
    inputIds.set(row.inputIds, r * t);
    labels.set(row.labels, r * t);
    let start = 0;
    for (const n of row.seqLengths) {
      labels[r * t + start] = IGNORE_INDEX;
      for (let i = 0; i < n; i++) {
        positionIds[r * t + start + i] = i;
        attentionMask.fill(1, (r * t + start + i) * t + start, (r * t + start + i) * t + start + n);
      }
      start += n;
    }
    for (let i = 0; i < total; i++) if (labels[r * t + i] !== IGNORE_INDEX) targets++;
  });
  return { inputIds, labels, attentionMask, positionIds, batchSize: b, seqLen: t, targets };
}
