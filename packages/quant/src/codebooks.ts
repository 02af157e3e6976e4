/**
 * Code tables of the bitsandbytes data types: NF4 and FP4 (QLoRA, Dettmers et al.
 * 2023, arXiv:2305.14314) and the 8-bit dynamic map (Dettmers 2015, "8-Bit
 * Approximations for Parallelism in Deep Learning", arXiv:1511.04561).
 */

/** A 4-bit data type. */
export type QuantType = 'nf4' | 'fp4';

/**
 * The NF4 table by code (bitsandbytes `get_4bit_type('nf4')`): normal quantiles, 7
 * negative, an exact zero and 8 positive, divided by the largest.
 */
export const NF4_CODE: Float32Array = new Float32Array([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** FP4 (E2M1, bitsandbytes' bias) by code, bit 3 the sign: the raw values divided by 12 in float32. */
export const FP4_CODE: Float32Array = new Float32Array(
  [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3].map((v) => v / 12),
);

/**
 * Decision-tree pivots of bitsandbytes' CUDA `dQuantizeNF4`, ascending, as the float32
 * literals it compiles. The code of a scaled value `s` is the number of pivots with
 * `s > pivot` (strict: an exact midpoint goes to the lower code; NaN gets code 0).
 */
export const NF4_PIVOTS: Float32Array = new Float32Array([
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544, -0.23460740596055984,
  -0.13791173323988914, -0.045525018125772476, 0.03979014977812767, 0.1202552504837513, 0.2035212516784668,
  0.2920137718319893, 0.3893125355243683, 0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
]);

/**
 * Pivots of `dQuantizeFP4` on `|s|`, ascending. The number of pivots passed (strict
 * `>`) indexes {@link FP4_RANK_TO_CODE}; the sign bit is `s < 0`.
 */
export const FP4_PIVOTS: Float32Array = new Float32Array([0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333]);

/** FP4 magnitude rank (0 = zero ... 7 = largest) to its 3-bit code. */
export const FP4_RANK_TO_CODE: Uint8Array = new Uint8Array([0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011]);

/** The code table of a 4-bit data type (a shared constant: do not modify). */
export function codeFor(quantType: QuantType): Float32Array {
  if (quantType === 'nf4') return NF4_CODE;
  if (quantType === 'fp4') return FP4_CODE;
  throw new Error(`quant: unknown quantType '${String(quantType)}' (expected 'nf4' or 'fp4')`);
}

/**
 * The 8-bit dynamic (dynamic-exponent) map of bitsandbytes `create_dynamic_map`: for
 * each exponent `10^(i - (maxExponentBits - 1))`, `i < maxExponentBits`, the midpoints
 * of an even split of [0.1, 1] into `2^(i + totalBits - 1 - maxExponentBits)` parts
 * (twice as many when unsigned), mirrored when signed; plus 0 and 1, zero-padded to
 * `2^totalBits` entries and sorted.
 *
 * Signed (default): 256 values, `map[127] = 0`, max 1, min -0.99296875. Arithmetic is
 * float32 as in torch, except that the split points are computed in float64 and
 * rounded once: torch's float32 `linspace` rounds its last bit differently per version
 * and cpu vector width, so no portable map can equal every torch build (ours is within
 * 2 ulp of torch 1.13's). Quantization states loaded from a checkpoint carry their own
 * map, so dequantizing them is exact regardless.
 *
 * @example
 * const dyn = createDynamicMap();            // signed, for first moments and absmax
 * const udyn = createDynamicMap(false);      // unsigned, for second moments
 */
export function createDynamicMap(signed = true, maxExponentBits = 7, totalBits = 8): Float32Array {
  const f = Math.fround;
  const nonSignBits = totalBits - 1;
  const additional = 2 ** (nonSignBits - maxExponentBits) - 1;
  const data: number[] = [];
  const push = (items: number, scale: number) => {
    const b = Array.from({ length: items }, (_, i) => f(0.1 + (0.9 * i) / (items - 1)));
    const s = f(scale);
    for (let j = 0; j + 1 < items; j++) {
      const mean = f(f(b[j] + b[j + 1]) / 2);
      data.push(f(s * mean));
      if (signed) data.push(-f(s * mean));
    }
  };
  for (let i = 0; i < maxExponentBits; i++) {
    const items = signed ? 2 ** (i + nonSignBits - maxExponentBits) + 1 : 2 ** (i + nonSignBits - maxExponentBits + 1) + 1;
    push(items, 10 ** (-(maxExponentBits - 1) + i));
  }
  if (additional > 0) push(additional + 1, 10 ** (-(maxExponentBits - 1) + maxExponentBits - 1));
  data.push(0, 1);
  if (data.length > 2 ** totalBits) {
    throw new RangeError(`createDynamicMap: ${data.length} values do not fit ${totalBits} bits (maxExponentBits ${maxExponentBits}, signed ${signed})`);
  }
  while (data.length < 2 ** totalBits) data.push(0);
  return new Float32Array(data).sort();
}
