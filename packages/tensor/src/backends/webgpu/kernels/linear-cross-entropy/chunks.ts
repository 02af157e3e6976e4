/**
 * How many weight rows one vocabulary chunk of the fused linear + cross-entropy takes:
 * its `[N, rows]` logits (and, in backward, the same-sized gradient written over them)
 * stay within a memory budget and within one storage binding.
 */

/** Bytes of one chunk of logits that the automatic choice aims at: small next to a model, large enough to keep a GPU busy. */
export const LOGITS_CHUNK_BUDGET_BYTES = 16 * 1024 * 1024;

/**
 * Weight rows per chunk for `n` rows of hidden states, a vocabulary of `v` and hidden
 * size `d`, elements of `elementBytes`: `requested` when the caller set one (clamped to
 * `v` and to the rows whose logits and weight rows each fit one binding), else the most rows whose logits fit `LOGITS_CHUNK_BUDGET_BYTES` and whose logits
 * and weight rows each fit `maxBindingBytes`, rounded down to a multiple of 4 (the
 * aligned matmul tiles), at least 1.
 */
export function vocabChunkRows(n: number, v: number, d: number, elementBytes: number, maxBindingBytes: number, requested = 0): number {
  // A chunk's logits `[n, rows]` and weight rows `[rows, d]` are each one binding.
  const bindingRows = Math.min(Math.floor(maxBindingBytes / Math.max(1, n * elementBytes)), Math.floor(maxBindingBytes / Math.max(1, d * elementBytes)));
  // A requested size is an upper bound: past one binding the chunk could not be bound at all.
  if (requested > 0) return Math.max(1, Math.min(requested, v, bindingRows));
  let rows = Math.min(bindingRows, Math.floor(LOGITS_CHUNK_BUDGET_BYTES / Math.max(1, n * elementBytes)));
  if (rows >= 4) rows -= rows % 4;
  return Math.max(1, Math.min(rows, v));
}
