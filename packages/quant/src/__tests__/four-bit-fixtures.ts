/**
 * Fixtures shared by the 4-bit kernel tests: the `Dequantize4bit` word-kernel cases,
 * the case shape of the `Linear4bit` kernel tests, and a double-quantized NF4 layer on
 * webgpu with its cpu decode (the reference the kernels must reproduce bit for bit).
 */
import { type Tensor, tensor } from '@webpeft/tensor';
import { randomArray } from '@webpeft/test-utils';
import { FP4_CODE, type Linear4bitAttrs, NF4_CODE, type QuantState, type QuantType, dequantize4bit, quantize4bit, weightInputs } from '../index.js';

/**
 * `Dequantize4bit` shapes: n a multiple of 8 and odd n (the partial last word), blocksizes
 * 64, 32 and ones that are not multiples of 8 (a block ends inside a word), NF4 and FP4.
 */
export const DEQUANTIZE_WORD_CASES = [
  { n: 1024, blocksize: 64, table: NF4_CODE, name: 'NF4' },
  { n: 1003, blocksize: 64, table: NF4_CODE, name: 'NF4' },
  { n: 8 * 97 + 5, blocksize: 32, table: FP4_CODE, name: 'FP4' },
  { n: 1000, blocksize: 20, table: NF4_CODE, name: 'NF4' },
  { n: 13, blocksize: 3, table: FP4_CODE, name: 'FP4' },
] as const;

/** One `Linear4bit` kernel case: `x [rows, inF]` through a quantized `W [out, inF]`. */
export interface Linear4bitCase {
  out: number;
  inF: number;
  rows: number;
  blocksize: number;
  nested: boolean;
  quantType: QuantType;
  bias: boolean;
  dtype: 'f32' | 'f16';
}

/** A double-quantized NF4 layer (blocksize 64) on webgpu, its attributes and kernel inputs. */
export interface NestedNf4Layer {
  packed: Tensor;
  state: QuantState;
  /** The cpu backend's decode of the same weight `[out, inF]` (row-major), f32. */
  ref: Float32Array;
  attrs: Linear4bitAttrs;
  /** `Linear4bit`'s weight inputs (`weightInputs`). */
  weight: Tensor[];
}

/**
 * A seeded `W [out, inF]` quantized to double-quantized NF4 on webgpu, with the cpu
 * backend's decode of the same weight as the reference. The caller disposes `packed` and `state`.
 */
export async function nestedNf4Layer(out: number, inF: number, seed: number): Promise<NestedNf4Layer> {
  const data = randomArray(out * inF, seed, -3, 3);
  const w = tensor(data, [out, inF], { backend: 'webgpu' });
  const { packed, state } = await quantize4bit(w, { blocksize: 64, doubleQuant: true, quantType: 'nf4' });
  const wCpu = tensor(data, [out, inF], { backend: 'cpu' });
  const q = await quantize4bit(wCpu, { blocksize: 64, doubleQuant: true, quantType: 'nf4' });
  const wq = dequantize4bit(q.packed, q.state);
  const ref = (await wq.data()) as Float32Array;
  for (const t of [w, wCpu, q.packed, wq]) t.dispose();
  q.state.dispose();
  const attrs: Linear4bitAttrs = { inFeatures: inF, outFeatures: out, blocksize: 64, nested: true, nestedBlocksize: state.nested!.blocksize };
  return { packed, state, ref, attrs, weight: weightInputs({ packed, quantState: state }) };
}
