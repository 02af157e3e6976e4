import type { Tensor } from '@webpeft/tensor';
import type { Module } from './module.js';

/**
 * The contract every linear layer meets, whatever its storage: a plain `Linear`
 * (`[out, in]`), GPT-2's `Conv1D` (`[in, out]`), or a quantized `Linear4bit` from
 * `@webpeft/quant`. Tuners wrap any `LinearLike`, which is what makes QLoRA a
 * composition: `peft` never needs to know how the base weight is stored.
 */
export interface LinearLike extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Bias `[out]`, or null. */
  readonly bias: Tensor | null;
  /** `[..., in] -> [..., out]`. */
  forward(x: Tensor): Tensor;
  /** A new f32 tensor with the weight in `[out, in]` layout (dequantized if stored otherwise). */
  dequantizedWeight(): Tensor;
  /**
   * Replaces the weight's values from a `[out, in]` tensor. Quantized layers re-quantize,
   * which is asynchronous (a NaN check reads back), so callers always `await` it.
   */
  loadWeight(weight: Tensor): void | Promise<void>;
}

/** True when `m` implements {@link LinearLike}. */
export function isLinearLike(m: Module): m is LinearLike {
  const c = m as unknown as Record<string, unknown>;
  return typeof c.inFeatures === 'number' && typeof c.outFeatures === 'number' && typeof c.dequantizedWeight === 'function' && typeof c.loadWeight === 'function';
}
