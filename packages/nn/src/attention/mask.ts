import { type BackendName, type Tensor, cast, equal, full, minimum, mul, pad, reshape, triu } from '@webpeft/tensor';

/** f16's lowest finite value: the masked score of an f16 model (`torch.finfo(torch.float16).min`, as Hugging Face uses). */
export const MASKED_SCORE_F16 = -65504;

/** The additive value of a masked score: f32's lowest finite value, as Hugging Face uses. */
export const MASKED_SCORE = -3.4028234663852886e38;

/**
 * Additive attention bias for `queries` new tokens against `keys` keys (the last
 * `queries` keys are the new tokens, so query `i` sees keys `j <= keys - queries + i`),
 * combined with a padding mask `[B, keys]` (1 keep, 0 pad; any dtype) or a per-query mask
 * `[B, queries, keys]` (1 where query i may see key j; packed samples use it to see only
 * their own tokens, as transformers' 4-D masks).
 * Returns `[B | 1, 1, queries, keys]` with 0 where attention is allowed and
 * {@link MASKED_SCORE} elsewhere, or null when nothing is masked (one query, no padding).
 *
 * A row with every key masked (a left-pad query) gets the same score everywhere, so its
 * softmax is uniform and finite, as in Hugging Face's eager attention.
 *
 * With `dtype` f16 (an f16 model's scores) the bias is f16 and masked scores are
 * {@link MASKED_SCORE_F16}, f16's lowest finite value: f32's would round to -infinity.
 *
 * With `causal` false the causal part is left out (the fused attention applies it in
 * its kernel): the result is the padding bias alone, `[B, 1, 1 | queries, keys]`, or null.
 */
export function attentionBias(queries: number, keys: number, paddingMask: Tensor | null, backend: BackendName, dtype: 'f32' | 'f16' = 'f32', causal = true): Tensor | null {
  const bias = attentionBiasF32(queries, keys, paddingMask, backend, dtype === 'f16' ? MASKED_SCORE_F16 : MASKED_SCORE, causal);
  if (!bias || dtype === 'f32') return bias;
  const half = cast(bias, 'f16');
  bias.dispose();
  return half;
}

function attentionBiasF32(queries: number, keys: number, paddingMask: Tensor | null, backend: BackendName, masked: number, withCausal: boolean): Tensor | null {
  let causal: Tensor | null = null;
  if (queries > 1 && withCausal) {
    const filled = full([queries, keys], masked, { backend });
    // Keys after `keys - queries + i` are the future of query i.
    causal = triu(filled, keys - queries + 1, 0);
    filled.dispose();
  }
  if (!paddingMask) return causal ? reshapeAndDispose(causal, [1, 1, queries, keys]) : null;
  const perQuery = paddingMask.rank === 3 && paddingMask.shape[1] === queries && paddingMask.shape[2] === keys;
  if (!perQuery && (paddingMask.rank !== 2 || paddingMask.shape[1] !== keys)) {
    throw new Error(`attentionBias: attention mask [${paddingMask.shape.join(', ')}] must be [B, ${keys}] (past + new tokens) or [B, ${queries}, ${keys}] (per query)`);
  }
  const m = paddingMask.dtype === 'f32' ? paddingMask : cast(paddingMask, 'f32');
  const isPad = equal(m, 0);
  const isPadF = cast(isPad, 'f32');
  const padBias = mul(isPadF, masked);
  const pad4 = reshape(padBias, [paddingMask.shape[0], 1, perQuery ? queries : 1, keys]);
  for (const t of [isPad, isPadF, padBias]) t.dispose();
  if (m !== paddingMask) m.dispose();
  if (!causal) return pad4;
  // minimum, not add: two masked terms must not overflow to -inf.
  const c4 = reshape(causal, [1, 1, queries, keys]);
  const out = minimum(pad4, c4);
  for (const t of [pad4, c4, causal]) t.dispose();
  return out;
}

function reshapeAndDispose(t: Tensor, shape: number[]): Tensor {
  const out = reshape(t, shape);
  t.dispose();
  return out;
}

/** Prepends `count` ones (kept positions) to a `[B, L]` mask: `[B, count + L]`. */
export function prependKept(mask: Tensor, count: number): Tensor {
  return pad(mask, [
    [0, 0],
    [count, 0],
  ], 1);
}
