/**
 * QLoRA's 4-bit weight codec (Dettmers et al. 2023, arXiv:2305.14314) as one call:
 * blockwise NF4/FP4 plus optional double quantization of the absmax.
 */
import { type Tensor, reshape } from '@webpeft/tensor';
import { type QuantType, codeFor } from './codebooks.js';
import { codeTensor } from './code-tensors.js';
import { dequantize4bitRaw, doubleQuantize, quantize4bitRaw } from './blockwise.js';
import { QuantState } from './quant-state.js';

/** Options of {@link quantize4bit}. */
export interface Quantize4bitOptions {
  /** 'nf4' (default) or 'fp4'. */
  quantType?: QuantType;
  /** Elements per absmax: 32..4096, a power of two (default 64). */
  blocksize?: number;
  /** Quantize the absmax too (bitsandbytes `compress_statistics`, default true). */
  doubleQuant?: boolean;
  /** torch dtype name recorded in the state (default 'float32'). */
  dtype?: string;
  /** Named in errors (e.g. the parameter path). */
  name?: string;
}

/** A packed 4-bit weight with its state. */
export interface Quantized4bit {
  /** u32 `[ceil(n/8)]` words holding the bitsandbytes byte stream. Tagged 'quant'. */
  packed: Tensor;
  state: QuantState;
}

/**
 * Quantizes `x` (any shape, e.g. a linear weight `[out, in]`) to 4 bits, byte-identical
 * to an independent implementation of the rules of bitsandbytes `quantize_4bit` (with
 * `compress_statistics` when `doubleQuant`).
 * NaN or infinite input is refused with an error naming `name` and the block.
 *
 * @example
 * const { packed, state } = await quantize4bit(weight, { quantType: 'nf4', doubleQuant: true });
 * const w = dequantize4bit(packed, state);   // f32, weight's shape
 */
export async function quantize4bit(x: Tensor, opts: Quantize4bitOptions = {}): Promise<Quantized4bit> {
  const quantType = opts.quantType ?? 'nf4';
  const blocksize = opts.blocksize ?? 64;
  const name = opts.name ?? 'tensor';
  const { packed, absmax } = await quantize4bitRaw(x, quantType, blocksize, name);
  return withQuantState(packed, absmax, [...x.shape], { ...opts, quantType, blocksize, name });
}

/**
 * The state of freshly quantized codes: `absmax` double-quantized (and disposed) when
 * `opts.doubleQuant` (default true), else kept as it is. Takes ownership of both tensors;
 * on failure they are freed.
 */
export async function withQuantState(packed: Tensor, absmax: Tensor, shape: number[], opts: Quantize4bitOptions): Promise<Quantized4bit> {
  const quantType = opts.quantType ?? 'nf4';
  const name = opts.name ?? 'tensor';
  const code = codeTensor(codeFor(quantType), packed.backend.name);
  const base = { quantType, blocksize: opts.blocksize ?? 64, dtype: opts.dtype ?? 'float32', shape, code: code.tensor, codeShared: code.shared };
  if (opts.doubleQuant ?? true) {
    try {
      const nested = await doubleQuantize(absmax, name);
      return { packed, state: new QuantState({ ...base, absmax: null, nested }) };
    } catch (e) {
      packed.dispose();
      throw e;
    } finally {
      absmax.dispose();
    }
  }
  return { packed, state: new QuantState({ ...base, absmax, nested: null }) };
}

/**
 * Dequantizes a packed 4-bit weight: `code[q] * absmax[i / blocksize]` in float32
 * (absmax restored from its double quantization first). Returns f32 of `state.shape`.
 */
export function dequantize4bit(packed: Tensor, state: QuantState): Tensor {
  const absmax = state.absmaxValues();
  const flat = dequantize4bitRaw(packed, absmax, state.code, state.blocksize, state.numel);
  absmax.dispose();
  const out = reshape(flat, state.shape);
  flat.dispose();
  return out;
}
