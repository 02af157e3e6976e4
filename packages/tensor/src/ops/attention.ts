/**
 * Memory-efficient attention as a fused op (FlashAttention, Dao et al. 2022; its
 * backward as in FlashAttention-2, Dao 2023): `softmax(q k^T * scale + mask) v` whose
 * kernels never hold the `[B, H, T, L]` scores or probabilities. The forward keeps per
 * query row only the output and two statistics (the row's score max `m` and exp-sum
 * `l`); the backward recomputes the probabilities tile by tile from them.
 *
 * The composite definitions below (written with primitives, in f32 for f16 inputs) are
 * the reference; they materialise the scores, as the eager attention does.
 */
import { ShapeError, fmtShape } from '../errors.js';
import { engine } from '../engine.js';
import type { AttentionAttrs } from '../op-names.js';
import { registerComposite } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { full } from './creation.js';
import { add, div, exp, minimum, mul, sub } from './elementwise.js';
import { checkSameFloat } from './float-check.js';
import { cast, concat, reshape, slice, stack, triu } from './layout.js';
import { matmul } from './matmul.js';
import { max, sum } from './reduce.js';
import { detach } from './scope.js';

/**
 * The additive score of a masked key: f32's lowest finite value, as Hugging Face's eager
 * attention uses (the kernels compute scores in f32, f16 inputs included).
 */
export const ATTENTION_MASKED_SCORE = -3.4028234663852886e38;

/** Options of {@link fusedAttention}. */
export interface FusedAttentionOptions {
  /** Score scale (default `1 / sqrt(Dh)`). */
  scale?: number;
  /**
   * Causal mask applied inside the kernel: query `i` sees keys `j <= L - T + i` (the
   * last `T` keys are the queries' own tokens; earlier ones are a past or prefix).
   * Default false.
   */
  causal?: boolean;
  /**
   * Additive bias `[B | 1, 1, T | 1, L]` of `q`'s dtype (a key-padding mask `[B, 1, 1, L]`
   * or a per-query packing mask `[B, 1, T, L]`, 0 or a large negative value), combined
   * with the causal mask by `min` as the eager attention's mask builder does. It gets
   * no gradient. Default none.
   */
  bias?: Tensor | null;
}

/**
 * Memory-efficient scaled dot-product attention (fused, flash-attention style):
 * `softmax(q k^T * scale + mask) v` with grouped-query attention, where query head `h`
 * reads kv head `floor(h / (H / H_kv))` (Hugging Face's `repeat_kv` order).
 * `q [B, H, T, Dh]`, `k`, `v [B, H_kv, L, Dh]` (RoPE already applied) -> `[B, H, T, Dh]`
 * in `q`'s dtype. f16 inputs are computed in f32 (scores, softmax statistics and sums)
 * and the output is rounded once.
 *
 * On webgpu the forward and backward kernels read keys and values in tiles and keep per
 * query row only its output and two statistics, so neither the scores nor the
 * probabilities `[B, H, T, L]` are ever stored; elsewhere the composite definition runs
 * (it materialises them). Attention dropout is not part of it.
 * @example
 * const o = fusedAttention(q, k, v, { causal: true }); // q [1, 4, 7, 32], k, v [1, 2, 7, 32]
 */
export function fusedAttention(q: Tensor, k: Tensor, v: Tensor, opts: FusedAttentionOptions = {}): Tensor {
  const bias = opts.bias ?? null;
  checkSameFloat('fusedAttention', ...(bias ? [q, k, v, bias] : [q, k, v]));
  checkAttentionShapes(q, k, v, bias);
  if (bias?.requiresGrad) throw new Error(`fusedAttention: the bias ${fmtShape(bias.shape)} requires grad, but it gets no gradient here (use the eager attention for a learned bias)`);
  const dh = q.shape[3];
  const attrs: AttentionAttrs = { scale: opts.scale ?? 1 / Math.sqrt(dh), causal: opts.causal ?? false };
  const packed = engine.runOp('FusedAttention', bias ? [q, k, v, bias] : [q, k, v], attrs);
  const out = slice(packed, [0, 0, 0, 0], [-1, -1, -1, dh]);
  packed.dispose();
  if (out.dtype === q.dtype) return out;
  const rounded = cast(out, q.dtype);
  out.dispose();
  return rounded;
}

function checkAttentionShapes(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | null): void {
  const shapes = `q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}`;
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) throw new ShapeError(`fusedAttention: ${shapes} must be [B, H, T, Dh], [B, H_kv, L, Dh], [B, H_kv, L, Dh]`);
  const [b, h, , dh] = q.shape;
  const [kb, hkv, l, kdh] = k.shape;
  if (kb !== b || kdh !== dh || hkv === 0 || h % hkv !== 0 || v.shape.some((d, i) => d !== k.shape[i])) {
    throw new ShapeError(`fusedAttention: ${shapes} must be [B, H, T, Dh], [B, H_kv, L, Dh], [B, H_kv, L, Dh] with H a multiple of H_kv`);
  }
  if (l === 0 || dh === 0) throw new ShapeError(`fusedAttention: ${shapes}: no keys or an empty head dimension (softmax over nothing)`);
  if (!bias) return;
  const [bb, b1, bt, bl] = bias.shape;
  if (bias.rank !== 4 || (bb !== 1 && bb !== b) || b1 !== 1 || (bt !== 1 && bt !== q.shape[2]) || bl !== l) {
    throw new ShapeError(`fusedAttention: bias ${fmtShape(bias.shape)} must be [${b} | 1, 1, ${q.shape[2]} | 1, ${l}] for ${shapes}`);
  }
}

// ---- composite definitions (primitives only) -------------------------------------

/** The dtype the composites compute in: f32 for f16 inputs (as the kernels), else the inputs' own. */
function computeDtype(q: Tensor): 'f32' | 'f64' {
  return q.dtype === 'f64' ? 'f64' : 'f32';
}

function widen(x: Tensor, dtype: 'f32' | 'f64'): Tensor {
  return x.dtype === dtype ? x : cast(x, dtype);
}

/** The masked scores `q k^T * scale + min(bias, causal)` `[B, H, T, L]`, in the compute dtype. */
function maskedScores(q: Tensor, k: Tensor, bias: Tensor | undefined, { scale, causal }: AttentionAttrs): Tensor {
  const dt = computeDtype(q);
  const [b, h, t, dh] = q.shape;
  const [, hkv, l] = k.shape;
  const qg = reshape(widen(q, dt), [b, hkv, (h / hkv) * t, dh]);
  const s = reshape(mul(matmul(qg, widen(k, dt), { transposeB: true }), scale), [b, h, t, l]);
  let mask = bias ? widen(bias, dt) : null;
  if (causal) {
    // Keys after `L - T + i` are the future of query i.
    const c = reshape(triu(full([t, l], ATTENTION_MASKED_SCORE, { dtype: dt }), l - t + 1, 0), [1, 1, t, l]);
    mask = mask ? minimum(mask, c) : c;
  }
  return mask ? add(s, mask) : s;
}

/** Grouped view `[B, H_kv, (H / H_kv) * T, X]` of a per-query-head tensor `[B, H, T, X]`. */
function grouped(x: Tensor, hkv: number): Tensor {
  const [b, h, t, n] = x.shape;
  return reshape(x, [b, hkv, (h / hkv) * t, n]);
}

/** Probabilities `exp(s - m) / l` `[B, H, T, L]` recomputed from the saved row statistics of `out`. */
function recomputedProbs(q: Tensor, k: Tensor, out: Tensor, bias: Tensor | undefined, attrs: AttentionAttrs): Tensor {
  const dh = q.shape[3];
  const m = slice(out, [0, 0, 0, dh], [-1, -1, -1, 1]);
  const l = slice(out, [0, 0, 0, dh + 1], [-1, -1, -1, 1]);
  return div(exp(sub(maskedScores(q, k, bias, attrs), m)), l);
}

/** `dS = P * (dP - D)` `[B, H, T, L]` with `dP = dO v^T` and `D = rowDot = rowsum(dO * O)`. */
function scoreGrad(p: Tensor, dO: Tensor, v: Tensor, rowDot: Tensor): Tensor {
  const [b, h, t, l] = p.shape;
  const dp = reshape(matmul(grouped(dO, v.shape[1]), widen(v, computeDtype(dO)), { transposeB: true }), [b, h, t, l]);
  return mul(p, sub(dp, reshape(rowDot, [b, h, t, 1])));
}

/** Registers the composite definitions of the fused attention ops. */
export function registerAttentionComposites(): void {
  // inputs [q, k, v, bias?] -> [B, H, T, Dh + 2]: output, row max m, row exp-sum l.
  // m and l are statistics for the backward: detached, so they carry no gradient.
  registerComposite('FusedAttention', ([q, k, v, bias], attrs) => {
    const [b, h, t, dh] = q.shape;
    const hkv = k.shape[1];
    const s = maskedScores(q, k, bias, attrs);
    const m = detach(max(s, -1, true));
    const e = exp(sub(s, m));
    const l = sum(e, -1, true);
    const p = div(e, l);
    const o = reshape(matmul(grouped(p, hkv), widen(v, computeDtype(q))), [b, h, t, dh]);
    return concat([o, m, detach(l)], 3);
  });
  // inputs [dy [B, H, T, Dh + 2], q, k, v, out, rowDot [B, H, T], bias?]: dq = scale dS k.
  registerComposite('FusedAttentionGradQ', ([dy, q, k, v, out, rowDot, bias], attrs) => {
    const [b, h, t, dh] = q.shape;
    const dO = slice(dy, [0, 0, 0, 0], [-1, -1, -1, dh]);
    const ds = scoreGrad(recomputedProbs(q, k, out, bias, attrs), dO, v, rowDot);
    const dq = mul(matmul(grouped(ds, k.shape[1]), widen(k, computeDtype(q))), attrs.scale);
    return cast(reshape(dq, [b, h, t, dh]), q.dtype);
  });
  // Same inputs: [dk, dv] stacked [2, B, H_kv, L, Dh]; the group's query heads are summed
  // by the grouped matmuls (their rows are folded into one axis).
  registerComposite('FusedAttentionGradKV', ([dy, q, k, v, out, rowDot, bias], attrs) => {
    const dt = computeDtype(q);
    const hkv = k.shape[1];
    const dh = q.shape[3];
    const dO = slice(dy, [0, 0, 0, 0], [-1, -1, -1, dh]);
    const p = recomputedProbs(q, k, out, bias, attrs);
    const ds = scoreGrad(p, dO, v, rowDot);
    const dv = matmul(grouped(p, hkv), grouped(widen(dO, dt), hkv), { transposeA: true });
    const dk = mul(matmul(grouped(ds, hkv), grouped(widen(q, dt), hkv), { transposeA: true }), attrs.scale);
    return cast(stack([dk, dv], 0), k.dtype);
  });
}

