import { f32ToF16Bits } from '@webpeft/tensor';

/** Largest magnitude that rounds to a finite f16 (65504 plus half an ulp, exclusive). */
const F16_LIMIT = 65520;

/**
 * Rounds float values to f16 bits (nearest even), refusing a finite value that f16
 * cannot hold: a checkpoint weight beyond +-65504 would silently become infinity.
 * Infinities and NaN stay what they are. Throws a RangeError naming `label` (the
 * tensor), the element index and the value. `[n] -> [n]`.
 * @example
 * const bits = toF16Checked(bf16Values, "rawToTensor 'model.embed_tokens.weight'");
 */
export function toF16Checked(values: ArrayLike<number>, label: string): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v) && Math.abs(v) >= F16_LIMIT) {
      throw new RangeError(`${label}: element ${i} is ${v}, beyond f16's range (+-65504); load this tensor as f32 (dtype: 'f32')`);
    }
    out[i] = f32ToF16Bits(v);
  }
  return out;
}
