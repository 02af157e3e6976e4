import { type Tensor, add, dropout, fusedAttention, matmul, mul, reshape, softmax } from '@webpeft/tensor';

/**
 * How attention is computed (transformers' `attn_implementation`): `'eager'` forms the
 * scores `[B, H, T, L]` with matmuls and a softmax (the reference); `'fused'` runs
 * `fusedAttention`, whose webgpu kernels never store scores or probabilities.
 */
export type AttnImplementation = 'eager' | 'fused';

/** The attention implementations a model can be set to. */
export const ATTN_IMPLEMENTATIONS: readonly AttnImplementation[] = ['eager', 'fused'];

/** Throws unless `impl` names an attention implementation; `where` names the caller. */
export function checkAttnImplementation(impl: unknown, where: string): asserts impl is AttnImplementation {
  if (!ATTN_IMPLEMENTATIONS.includes(impl as AttnImplementation)) {
    throw new Error(`${where}: attnImplementation ${JSON.stringify(impl)} is not one of ${ATTN_IMPLEMENTATIONS.map((x) => `'${x}'`).join(', ')}`);
  }
}

/** Options of {@link scaledDotProductAttention}. */
export interface AttentionOptions {
  /** Additive bias broadcastable to `[B, H, T, L]` (causal and padding mask), or null. */
  bias?: Tensor | null;
  /** Score scale (default `1 / sqrt(Dh)`). */
  scale?: number;
  /** Dropout on the attention probabilities (`attn_pdrop`), applied when `training`. */
  dropoutP?: number;
  training?: boolean;
  /** `'eager'` (default) or `'fused'` (see {@link AttnImplementation}). */
  implementation?: AttnImplementation;
  /**
   * The causal mask is not in `bias` and is applied by the fused kernel (query `i` sees
   * keys `j <= L - T + i`); only with `implementation: 'fused'`.
   */
  causal?: boolean;
}

/**
 * `softmax(q k^T * scale + bias) v` with grouped-query attention (Ainslie et al. 2023):
 * `q [B, H, T, Dh]`, `k`, `v [B, H_kv, L, Dh]` with `H` a multiple of `H_kv`; query head
 * `h` reads kv head `floor(h / (H / H_kv))` (Hugging Face's `repeat_kv` order).
 * Returns `[B, H, T, Dh]`.
 *
 * The kv heads are never copied: the `H / H_kv` query heads of a group are folded
 * into the row axis (`[B, H_kv, (H / H_kv) * T, Dh]`, a free reshape) and share one
 * batched matmul against their kv head.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const [b, h, t, dh] = q.shape;
  const [kb, hkv, l, kdh] = k.shape;
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4 || kb !== b || kdh !== dh || h % hkv !== 0 || v.shape[2] !== l || v.shape[1] !== hkv || v.shape[0] !== b) {
    throw new Error(`scaledDotProductAttention: q [${q.shape.join(', ')}], k [${k.shape.join(', ')}], v [${v.shape.join(', ')}] must be [B, H, T, Dh], [B, H_kv, L, Dh] with H % H_kv == 0`);
  }
  const implementation = options.implementation ?? 'eager';
  if (implementation === 'fused') return fused(q, k, v, options);
  if (options.causal) throw new Error('scaledDotProductAttention: causal (a mask applied in the kernel) needs implementation \'fused\'; the eager path reads the causal mask from bias');
  const group = h / hkv;
  const qg = reshape(q, [b, hkv, group * t, dh]);
  const raw = matmul(qg, k, { transposeB: true });
  qg.dispose();
  const scaled = mul(raw, options.scale ?? 1 / Math.sqrt(dh));
  raw.dispose();
  const scores4 = reshape(scaled, [b, h, t, l]);
  scaled.dispose();
  let scores = scores4;
  if (options.bias) {
    scores = add(scores4, options.bias);
    scores4.dispose();
  }
  const probs = softmax(scores);
  scores.dispose();
  const dropped = dropout(probs, options.dropoutP ?? 0, options.training ?? false);
  probs.dispose();
  const pg = reshape(dropped, [b, hkv, group * t, l]);
  dropped.dispose();
  const out = matmul(pg, v);
  pg.dispose();
  const result = reshape(out, [b, h, t, dh]);
  out.dispose();
  return result;
}

/**
 * The fused path. Attention dropout is not part of the fused kernels, so a training pass
 * with a dropout probability is refused rather than silently run without it.
 */
function fused(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor {
  const p = options.dropoutP ?? 0;
  if (p > 0 && options.training) {
    throw new Error(`scaledDotProductAttention: attnImplementation 'fused' does not apply attention dropout (p = ${p}) in training; set the config's attention dropout (attn_pdrop / attention_dropout) to 0, call eval(), or use 'eager'`);
  }
  return fusedAttention(q, k, v, { bias: options.bias ?? null, scale: options.scale, causal: options.causal ?? false });
}
