/**
 * How many weight rows one vocabulary chunk of the fused linear + cross-entropy takes:
 * its `[N, rows]` logits (and, in backward, the same-sized gradient written over them)
 * and the copy of its `[rows, D]` weight rows stay within a memory budget and within one
 * storage binding.
 */

/**
 * Bytes that the automatic choice lets a chunk's logits, and separately its copied weight
 * rows, take: small next to a model, large enough to keep a GPU busy. (Qwen2.5-0.5B at
 * 256 tokens in f16: the weight rows bound the chunk to 9360 rows of 896, 16 MiB, where
 * the logits alone would allow 32768 rows and a 56 MiB copy.)
 */
export const CHUNK_BUDGET_BYTES = 16 * 1024 * 1024;

/**
 * Weight rows per chunk for `n` rows of hidden states, a vocabulary of `v` and hidden
 * size `d`, elements of `elementBytes`: `requested` when the caller set one (clamped to
 * `v` and to the rows whose logits and weight rows each fit one binding), else the most
 * rows whose logits and whose weight rows each fit `CHUNK_BUDGET_BYTES` and one binding,
 * rounded down to a multiple of 4 (the aligned matmul tiles), at least 1.
 */
export function vocabChunkRows(n: number, v: number, d: number, elementBytes: number, maxBindingBytes: number, requested = 0): number {
  const rowsWithin = (bytes: number) => Math.min(Math.floor(bytes / Math.max(1, n * elementBytes)), Math.floor(bytes / Math.max(1, d * elementBytes)));
  // A requested size is an upper bound: past one binding the chunk could not be bound at all.
  if (requested > 0) return Math.max(1, Math.min(requested, v, rowsWithin(maxBindingBytes)));
  let rows = rowsWithin(Math.min(CHUNK_BUDGET_BYTES, maxBindingBytes));
  if (rows >= 4) rows -= rows % 4;
  return Math.max(1, Math.min(rows, v));
}
