import { SeededRandom } from './seeded-random.js';

/** One language-modelling batch: token ids and next-token labels, both `[batch, seqLen]`. */
export interface TokenBatch {
  inputIds: Int32Array;
  labels: Int32Array;
  /** `[batch, seqLen]` padding mask, or `[batch, seqLen, seqLen]` per-query mask of packed rows (--data). */
  attentionMask?: Int32Array;
  /** `[batch, seqLen]` position ids restarting per packed sample (--data --packing). */
  positionIds?: Int32Array;
  batchSize: number;
  seqLen: number;
}

/**
 * Random windows of `seqLen` tokens from `tokens`. Labels equal the inputs (the model
 * shifts them, as Hugging Face causal-LM models do).
 */
export function randomBatch(tokens: Int32Array, batchSize: number, seqLen: number, rng: SeededRandom): TokenBatch {
  if (tokens.length <= seqLen) throw new Error(`corpus has ${tokens.length} tokens, fewer than one window of ${seqLen + 1}`);
  const inputIds = new Int32Array(batchSize * seqLen);
  for (let b = 0; b < batchSize; b++) {
    const start = Math.floor(rng.next() * (tokens.length - seqLen));
    inputIds.set(tokens.subarray(start, start + seqLen), b * seqLen);
  }
  return { inputIds, labels: inputIds.slice(), batchSize, seqLen };
}

/** Consecutive non-overlapping windows (for a deterministic evaluation loss). */
export function evalBatches(tokens: Int32Array, batchSize: number, seqLen: number, maxBatches: number): TokenBatch[] {
  const out: TokenBatch[] = [];
  const windows = Math.floor(tokens.length / seqLen);
  for (let w = 0; w + batchSize <= windows && out.length < maxBatches; w += batchSize) {
    const inputIds = tokens.slice(w * seqLen, (w + batchSize) * seqLen);
    out.push({ inputIds, labels: inputIds.slice(), batchSize, seqLen });
  }
  return out;
}
