/**
 * Blockwise codecs on host arrays, following the rules of bitsandbytes' CUDA kernels
 * (`kQuantizeBlockwise` with `dQuantizeNF4`, `dQuantizeFP4` and `dQuantize<0>` in
 * csrc/kernels.cu) and byte-identical to an independent implementation of those rules
 * (tools/golden/quant_reference.py; bitsandbytes itself was not run). These loops are the cpu backend and the readable statement of the
 * algorithm that the WGSL kernels repeat.
 */
import { FP4_PIVOTS, FP4_RANK_TO_CODE, NF4_PIVOTS, type QuantType } from './codebooks.js';

const f = Math.fround;

/** Scale factor of a block as the CUDA kernel computes it: the float32 reciprocal of absmax. */
export function blockScale(absmax: number): number {
  return f(1 / absmax);
}

/**
 * 4-bit code of a scaled value `s = x * (1/absmax)`: strict `>` against the pivots, so
 * exact midpoints go to the lower code (FP4: the smaller magnitude, sign kept) and NaN
 * (an all-zero block scales by `0 * inf`) gets code 0, as on CUDA.
 */
export function code4bit(s: number, quantType: QuantType): number {
  if (quantType === 'nf4') {
    let q = 0;
    for (let i = 0; i < 15; i++) if (s > NF4_PIVOTS[i]) q++;
    return q;
  }
  const sign = s < 0 ? 8 : 0;
  const a = Math.abs(s);
  let rank = 0;
  for (let i = 0; i < 7; i++) if (a > FP4_PIVOTS[i]) rank++;
  return sign | FP4_RANK_TO_CODE[rank];
}

/** The smallest block of `blocksize` elements holding a NaN or infinity, or -1 (bitsandbytes would quantize garbage). */
export function firstNonFiniteBlock(x: Float32Array, blocksize: number): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return Math.floor(i / blocksize);
  return -1;
}

/** Per-block max |x| (float32; a partial last block uses only its own elements). */
export function blockAbsmax(x: Float32Array, blocksize: number): Float32Array {
  const nb = Math.ceil(x.length / blocksize);
  const absmax = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    let m = 0;
    const end = Math.min(x.length, (b + 1) * blocksize);
    for (let i = b * blocksize; i < end; i++) m = Math.max(m, Math.abs(x[i]));
    absmax[b] = m;
  }
  return absmax;
}

/**
 * 4-bit blockwise quantization of finite `x` (row-major flat): packed bytes
 * (`byte = q[2i] << 4 | q[2i+1]`, an odd count padded with the code of 0.0) and the
 * per-block absmax.
 */
export function quantize4bitHost(x: Float32Array, blocksize: number, quantType: QuantType): { bytes: Uint8Array; absmax: Float32Array } {
  const absmax = blockAbsmax(x, blocksize);
  const bytes = new Uint8Array(Math.ceil(x.length / 2));
  pack4bitHost(x, absmax, blocksize, quantType, bytes);
  return { bytes, absmax };
}

/** Writes the packed 4-bit codes of `x` scaled per block by `absmax` into `bytes` (`ceil(n / 2)`, zeroed). */
export function pack4bitHost(x: Float32Array, absmax: Float32Array, blocksize: number, quantType: QuantType, bytes: Uint8Array): void {
  const n = x.length;
  for (let i = 0; i < n + (n & 1); i++) {
    const b = Math.floor(Math.min(i, n - 1) / blocksize);
    // An all-zero block has scale 1/0 = inf and 0 * inf = NaN: code 0, as on CUDA.
    const s = f((i < n ? x[i] : 0) * blockScale(absmax[b]));
    const q = code4bit(s, quantType);
    bytes[i >> 1] |= i & 1 ? q : q << 4;
  }
}

/** Inverse of {@link quantize4bitHost}: `code[q] * absmax[i / blocksize]` in float32, `n` values. */
export function dequantize4bitHost(bytes: Uint8Array, absmax: Float32Array, code: Float32Array, blocksize: number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const byte = bytes[i >> 1];
    const q = i & 1 ? byte & 15 : byte >> 4;
    out[i] = f(code[q] * absmax[Math.floor(i / blocksize)]);
  }
  return out;
}

/**
 * 8-bit code of a scaled value: the binary search of CUDA `dQuantize<0>` over a sorted
 * 256-entry `code`, with its midpoint rules (on the upward branch a tie keeps the lower
 * code, on the downward branch the upper one; NaN gets code 0).
 */
export function code8bit(code: Float32Array, x: number): number {
  let pivot = 127;
  let upperPivot = 255;
  let lowerPivot = 0;
  let lower = -1;
  let upper = 1;
  let val = code[pivot];
  for (let i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lowerPivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upperPivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = code[pivot];
  }
  if (upperPivot === 255) upper = code[upperPivot];
  if (lowerPivot === 0) lower = code[lowerPivot];
  if (x > val) return x > f(f(upper + val) * 0.5) ? upperPivot : pivot;
  return x < f(f(lower + val) * 0.5) ? lowerPivot : pivot;
}

/** 8-bit blockwise quantization (bitsandbytes `quantize_blockwise`) of finite `x`. */
export function quantizeBlockwiseHost(x: Float32Array, code: Float32Array, blocksize: number): { codes: Uint8Array; absmax: Float32Array } {
  const absmax = blockAbsmax(x, blocksize);
  const codes = new Uint8Array(x.length);
  codes8bitHost(x, absmax, code, blocksize, codes);
  return { codes, absmax };
}

/** Writes the 8-bit codes of `x` scaled per block by `absmax` into `codes` (`n` bytes). */
export function codes8bitHost(x: Float32Array, absmax: Float32Array, code: Float32Array, blocksize: number, codes: Uint8Array): void {
  for (let i = 0; i < x.length; i++) codes[i] = code8bit(code, f(x[i] * blockScale(absmax[Math.floor(i / blocksize)])));
}

/** `code[q] * absmax[i / blocksize]` in float32. */
export function dequantizeBlockwiseHost(codes: Uint8Array, absmax: Float32Array, code: Float32Array, blocksize: number): Float32Array {
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = f(code[codes[i]] * absmax[Math.floor(i / blocksize)]);
  return out;
}

/** Lanes of the fixed-order mean (one workgroup of this many threads on WebGPU). */
export const MEAN_LANES = 256;

/**
 * The float32 mean used as the double-quantization offset, in a fixed summation order
 * that every backend repeats exactly: lane `t` adds elements `t, t + 256, ...` in
 * sequence, the lanes are combined pairwise (`p[t] += p[t + s]`, s = 128 ... 1), and
 * the sum is divided by the count once. (A float32 mean has no single answer; torch's
 * CUDA reduction order is its own, so the offset may differ from bitsandbytes' by an
 * ulp; the offset is stored in the state, which keeps dequantization exact.)
 */
export function fixedOrderMean(a: Float32Array): number {
  const lanes = new Float32Array(MEAN_LANES);
  for (let i = 0; i < a.length; i++) lanes[i % MEAN_LANES] = f(lanes[i % MEAN_LANES] + a[i]);
  for (let s = MEAN_LANES / 2; s >= 1; s >>= 1) for (let t = 0; t < s; t++) lanes[t] = f(lanes[t] + lanes[t + s]);
  return f(lanes[0] / a.length);
}
