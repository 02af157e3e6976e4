/**
 * Bytes a 4-bit weight takes, from the codec's layout (REFERENCE.md): 4 bits per
 * element, one f32 absmax per block, or with double quantization one u8 per block
 * plus one f32 per 256 blocks and the offset. Used to estimate QLoRA memory of models
 * built on the meta backend, without quantizing anything.
 */
export interface QuantizedBytes {
  /** Packed 4-bit codes (odd counts padded to a whole byte). */
  packed: number;
  /** Quantization constants (absmax, or nested qabsmax + absmax2 + offset). */
  constants: number;
}

/** Bytes of a weight of `numel` elements quantized with `blockSize` and optional double quantization. */
export function quantizedBytes(numel: number, options: { blockSize?: number; doubleQuant?: boolean } = {}): QuantizedBytes {
  const blockSize = options.blockSize ?? 64;
  const blocks = Math.ceil(numel / blockSize);
  const packed = Math.ceil(numel / 2);
  if (!(options.doubleQuant ?? true)) return { packed, constants: blocks * 4 };
  // u8 code per block, f32 absmax per 256 blocks, one f32 offset.
  return { packed, constants: blocks + Math.ceil(blocks / 256) * 4 + 4 };
}
