import { type MatrixView, type Tensor, add, dropout, mul, softmax, stridedMatmul } from '@webpeft/tensor';

/** Options of {@link packedQkvAttention}: those of eager attention with no cache. */
export interface PackedQkvAttentionOptions {
  /** Additive bias broadcastable to `[B, H, T, T]` (causal and padding mask), or null. */
  bias: Tensor | null;
  /** Score scale. */
  scale: number;
  /** Dropout on the attention probabilities, applied when `training`. */
  dropoutP: number;
  training: boolean;
}

/**
 * Eager self-attention read straight from a fused projection: `qkv [B, T, 3 * H * Dh]`
 * (q, k and v side by side, each `H` heads of `Dh`) -> `[B, T, H * Dh]` with the heads
 * merged. The same values as splitting and permuting the heads out, running
 * `scaledDotProductAttention` and merging back, but both products read the heads
 * through strided views (`stridedMatmul`) and the second writes the merged layout, so
 * no head is copied, forward or backward (GPT-2's `c_attn`).
 */
export function packedQkvAttention(qkv: Tensor, nHead: number, options: PackedQkvAttentionOptions): Tensor {
  const [b, t, width] = qkv.shape;
  if (qkv.rank !== 3 || width % (3 * nHead) !== 0) {
    throw new Error(`packedQkvAttention: qkv [${qkv.shape.join(', ')}] must be [B, T, 3 * H * Dh] with H = ${nHead}`);
  }
  const d = width / 3;
  const dh = d / nHead;
  // Head h of q (which 0), k (1) or v (2): rows are tokens (stride 3d), columns the head's dh.
  const headView = (which: number): MatrixView => ({ offset: which * d, batchStrides: [t * width, dh], rowStride: width, colStride: 1 });
  const k = headView(1);
  const scores = stridedMatmul(qkv, qkv, {
    batchShape: [b, nHead],
    m: t,
    k: dh,
    n: t,
    a: headView(0),
    b: { ...k, rowStride: k.colStride, colStride: k.rowStride },
    outShape: [b, nHead, t, t],
    out: { offset: 0, batchStrides: [nHead * t * t, t * t], rowStride: t, colStride: 1 },
  });
  const scaled = mul(scores, options.scale);
  scores.dispose();
  const biased = options.bias ? add(scaled, options.bias) : scaled;
  if (biased !== scaled) scaled.dispose();
  const probs = softmax(biased);
  biased.dispose();
  const dropped = dropout(probs, options.dropoutP, options.training);
  probs.dispose();
  const out = stridedMatmul(dropped, qkv, {
    batchShape: [b, nHead],
    m: t,
    k: t,
    n: dh,
    a: { offset: 0, batchStrides: [nHead * t * t, t * t], rowStride: t, colStride: 1 },
    b: headView(2),
    outShape: [b, t, d],
    out: { offset: 0, batchStrides: [t * d, dh], rowStride: d, colStride: 1 },
  });
  dropped.dispose();
  return out;
}
