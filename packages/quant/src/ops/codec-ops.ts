/**
 * The blockwise codec ops of `@webpeft/quant`, declared in the tensor package's op
 * registry by module augmentation. Each has one kernel per backend
 * (`cpu/codec-kernels.ts`, `webgpu/codec-kernels.ts`); none is differentiable (codes
 * are frozen data). Packed data lives in u32 words whose little-endian bytes are the
 * bitsandbytes byte stream.
 */
import type { QuantType } from '../codebooks.js';

/** Attributes of ops that work per block of `blocksize` elements. */
export interface BlocksizeAttrs {
  blocksize: number;
}

/** Attributes of `Quantize4bit`. */
export interface Quantize4bitAttrs {
  blocksize: number;
  quantType: QuantType;
}

/** Attributes of the dequantization ops: `n` elements in blocks of `blocksize`. */
export interface DequantizeAttrs {
  blocksize: number;
  n: number;
}

/** Attributes of `Dequantize4bit`: those of {@link DequantizeAttrs} and the result's dtype. */
export interface Dequantize4bitAttrs extends DequantizeAttrs {
  /** f32 (default), or f16: the f32 value rounded once to nearest even (the cpu reference's `f32ToF16Bits`), for f16 compute. */
  dtype?: 'f32' | 'f16';
}

declare module '@webpeft/tensor/kernel' {
  interface OpAttrs {
    /** f32 `x [n]` -> f32 `[ceil(n / blocksize)]`: max |x| per block. */
    BlockAbsmax: BlocksizeAttrs;
    /**
     * f32 `x [n]` -> u32 `[1]`: 0 when every element is finite, else `0xffffffff - b`
     * for the smallest block `b` holding a NaN or infinity.
     */
    NonFiniteBlock: BlocksizeAttrs;
    /** f32 `x [n]`, f32 `absmax [nb]` -> u32 `[ceil(n / 8)]`: packed NF4/FP4 codes (`dQuantizeNF4`/`dQuantizeFP4`). */
    Quantize4bit: Quantize4bitAttrs;
    /** f32 `x [n]`, f32 `absmax [nb]`, f32 `code [256]` -> u32 `[ceil(n / 4)]`: 8-bit codes (`dQuantize<0>`). */
    QuantizeBlockwise: BlocksizeAttrs;
    /** u32 `packed`, f32 `absmax [nb]`, f32 `code [16]` -> f32 (or `dtype` f16) `[n]`: `code[q] * absmax[i / blocksize]` in f32, rounded to f16 for f16. */
    Dequantize4bit: Dequantize4bitAttrs;
    /** u32 `codes`, f32 `absmax [nb]`, f32 `code [256]` -> f32 `[n]`: `code[q] * absmax[i / blocksize]`. */
    DequantizeBlockwise: DequantizeAttrs;
    /** f32 `a [n]` -> f32 `[1]`: the fixed-order float32 mean of `fixedOrderMean`. */
    FixedOrderMean: Record<string, never>;
  }
}
