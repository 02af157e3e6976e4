import { type Tensor, arange, cast, concat, cos, matmul, mul, sin, tensor, unsqueeze, add } from '@webpeft/tensor';
import type { ParamOptions } from '../init.js';
import { Module } from '../module.js';

/**
 * `rope_scaling` of a Hugging Face config. Supported types: 'default' (none), 'linear'
 * (positions divided by `factor`) and 'llama3' (Llama 3.1's frequency-dependent scaling).
 */
export interface RopeScaling {
  rope_type?: string;
  /** Older configs name the type `type`. */
  type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

/**
 * RoPE inverse frequencies `1 / theta^(2i / dim)` for `i < dim/2`, rounded to f32 as
 * PyTorch computes them, with optional `rope_scaling` applied (HF `ROPE_INIT_FUNCTIONS`).
 */
export function ropeInverseFrequencies(dim: number, theta: number, scaling?: RopeScaling | null): Float32Array {
  if (dim % 2 !== 0) throw new Error(`RoPE: head dim must be even, got ${dim}`);
  const half = dim / 2;
  const inv = new Float32Array(half);
  // torch: base ** (arange(0, dim, 2).float() / dim), in f32; then 1.0 / that.
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.fround(theta ** Math.fround((2 * i) / dim));
  const type = scaling?.rope_type ?? scaling?.type ?? 'default';
  if (type === 'default') return inv;
  const factor = scaling?.factor;
  if (!(typeof factor === 'number' && factor > 0)) throw new Error(`RoPE: rope_scaling '${type}' needs a positive factor, got ${factor}`);
  if (type === 'linear') return inv.map((f) => f / factor);
  if (type === 'llama3') {
    const low = scaling?.low_freq_factor ?? 1;
    const high = scaling?.high_freq_factor ?? 4;
    const oldLen = scaling?.original_max_position_embeddings ?? 8192;
    const lowWavelen = oldLen / low;
    const highWavelen = oldLen / high;
    return inv.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) return f;
      if (wavelen > lowWavelen) return f / factor;
      const smooth = (oldLen / wavelen - low) / (high - low);
      return (1 - smooth) * (f / factor) + smooth * f;
    });
  }
  throw new Error(`RoPE: rope_scaling type '${type}' is not supported (supported: default, linear, llama3)`);
}

/** Options of {@link RotaryEmbedding}. */
export interface RotaryOptions extends ParamOptions {
  /** `rope_theta` (default 10000). */
  theta?: number;
  /** `rope_scaling` from the config. */
  scaling?: RopeScaling | null;
}

/**
 * Rotary position embedding (Su et al. 2021, "RoFormer") in Hugging Face LLaMA's
 * `rotate_half` convention: the two halves of each head form the rotated pairs.
 * Holds `inv_freq [dim/2]` (non-persistent, as HF) and a constant `[dim, dim]` signed
 * permutation so `rotate_half(x)` is one exact matmul instead of split/negate/concat.
 */
export class RotaryEmbedding extends Module {
  readonly invFreq: Tensor;
  private readonly rotation: Tensor;

  constructor(
    readonly dim: number,
    options: RotaryOptions = {},
  ) {
    super();
    const inv = ropeInverseFrequencies(dim, options.theta ?? 10000, options.scaling);
    this.invFreq = this.registerBuffer('inv_freq', tensor(inv, [dim / 2], { backend: options.backend }), false);
    const half = dim / 2;
    const r = new Float32Array(dim * dim);
    // rotate_half(x)[j] = -x[j + half] for j < half, x[j - half] otherwise; (x @ R)[j] = sum_i x[i] R[i, j].
    for (let j = 0; j < half; j++) r[(j + half) * dim + j] = -1;
    for (let j = half; j < dim; j++) r[(j - half) * dim + j] = 1;
    this.rotation = this.registerBuffer('rotation', tensor(r, [dim, dim], { backend: options.backend }), false);
  }

  /**
   * Cos and sin tables for `positions`: f32 or i32 `[T]` or `[B, T]` -> `[T, dim]` or
   * `[B, T, dim]` (angles `pos * inv_freq`, each repeated for both halves).
   */
  cosSin(positions: Tensor): { cos: Tensor; sin: Tensor } {
    const pos = positions.dtype === 'f32' ? positions : cast(positions, 'f32');
    const col = unsqueeze(pos, -1);
    const freqs = mul(col, this.invFreq);
    const emb = concat([freqs, freqs], -1);
    const out = { cos: cos(emb), sin: sin(emb) };
    for (const t of [col, freqs, emb]) t.dispose();
    if (pos !== positions) pos.dispose();
    return out;
  }

  /** Tables for the consecutive positions `start .. start + length - 1`: `[length, dim]` each. */
  cosSinRange(start: number, length: number): { cos: Tensor; sin: Tensor } {
    const pos = arange(start, start + length, 1, { backend: this.invFreq.backend.name });
    const out = this.cosSin(pos);
    pos.dispose();
    return out;
  }

  /** `rotate_half(x)`: `[..., dim] -> [..., dim]`, `(x1, x2) -> (-x2, x1)`. */
  rotateHalf(x: Tensor): Tensor {
    return matmul(x, this.rotation);
  }

  /**
   * `x * cos + rotate_half(x) * sin`: `x [B, H, T, dim]` with tables broadcastable to it
   * (`[T, dim]`, or `[B, 1, T, dim]`).
   */
  apply(x: Tensor, cosT: Tensor, sinT: Tensor): Tensor {
    // f16 activations: the f32 tables are rounded to f16 first, as Hugging Face does.
    const [c, s, rot] = [cosT, sinT, this.rotation].map((t) => (t.dtype === x.dtype ? t : cast(t, x.dtype)));
    const a = mul(x, c);
    const r = matmul(x, rot);
    const b = mul(r, s);
    const out = add(a, b);
    for (const t of [a, r, b]) t.dispose();
    for (const [t, orig] of [[c, cosT], [s, sinT], [rot, this.rotation]]) if (t !== orig) t.dispose();
    return out;
  }

  forward(x: Tensor, cosT: Tensor, sinT: Tensor): Tensor {
    return this.apply(x, cosT, sinT);
  }
}
