/**
 * Tensor-level blockwise codecs: 4-bit NF4/FP4 (bitsandbytes `quantize_4bit`), 8-bit
 * dynamic (`quantize_blockwise`) and the double quantization of absmax
 * (`compress_statistics=True`), written with the codec ops of `ops/codec-ops.ts`, whose
 * kernels on every backend give bytes identical to an independent implementation of
 * bitsandbytes' rules (tools/golden/quant_reference.py; see `cpu-codecs.ts`).
 */
import { DTypeError, type Tensor, add, cast, sub, withMemoryTag } from '@webpeft/tensor';
import { runOp } from '@webpeft/tensor/kernel';
import { type QuantType } from './codebooks.js';
import { codeTensor, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED } from './code-tensors.js';
import { registerCodecOps } from './ops/register-codecs.js';

/** Blocksizes bitsandbytes accepts for 4-bit quantization. */
export const BLOCKSIZES_4BIT: readonly number[] = [32, 64, 128, 256, 512, 1024, 2048, 4096];

/** Blocksize of the second-level (absmax) quantization. */
export const NESTED_BLOCKSIZE = 256;

/** Checks a 4-bit blocksize, naming the caller. */
export function checkBlocksize4bit(op: string, blocksize: number): void {
  if (!BLOCKSIZES_4BIT.includes(blocksize)) throw new RangeError(`${op}: blocksize ${blocksize} is not one of ${BLOCKSIZES_4BIT.join(', ')}`);
}

/** An f32 view of `x` (f16/f64 are converted; integer dtypes are refused). */
function asF32(op: string, x: Tensor): Tensor {
  if (x.dtype === 'f32') return x;
  if (x.dtype === 'f16' || x.dtype === 'f64') return cast(x, 'f32');
  throw new DTypeError(`${op}: expected a float tensor, got ${x.dtype} [${x.shape.join(', ')}]`);
}

async function checkStatus(status: Tensor, blocksize: number, what: string, firstBlock = 0): Promise<void> {
  const v = ((await status.data()) as Uint32Array)[0];
  status.dispose();
  if (v !== 0) {
    const b = firstBlock + 0xffffffff - v;
    throw new RangeError(`${what}: block ${b} (elements ${b * blocksize}..${(b + 1) * blocksize - 1}) holds a NaN or infinity; only finite values can be quantized`);
  }
}

/** Result of {@link quantize4bitRaw}: packed codes and per-block absmax, both tagged 'quant'. */
export interface Packed4bit {
  /** u32 `[ceil(n / 8)]`: the bitsandbytes byte stream, little-endian in each word. */
  packed: Tensor;
  /** f32 `[ceil(n / blocksize)]`. */
  absmax: Tensor;
}

/**
 * 4-bit blockwise quantization of `x` (any shape, flattened row-major), byte-identical
 * to an independent implementation of bitsandbytes' rules. Rejects NaN and infinities with an error naming `name` and the block
 * (async because the webgpu check reads one word back). `firstBlock` numbers the blocks
 * in that error when `x` is a piece of a larger tensor starting at block `firstBlock`.
 *
 * `x [...]` -> `packed u32 [ceil(n/8)]`, `absmax f32 [ceil(n/blocksize)]`.
 */
export async function quantize4bitRaw(x: Tensor, quantType: QuantType, blocksize: number, name = 'tensor', firstBlock = 0): Promise<Packed4bit> {
  const op = `quantize4bit(${name})`;
  checkBlocksize4bit(op, blocksize);
  if (quantType !== 'nf4' && quantType !== 'fp4') throw new RangeError(`${op}: quantType must be 'nf4' or 'fp4', got '${String(quantType)}'`);
  if (x.size === 0) throw new RangeError(`${op}: cannot quantize an empty tensor`);
  registerCodecOps();
  const xf = asF32(op, x);
  try {
    const { absmax, status } = withMemoryTag('quant', () => blockStatistics(xf, blocksize));
    const packed = withMemoryTag('quant', () => runOp('Quantize4bit', [xf, absmax], { blocksize, quantType }));
    try {
      await checkStatus(status, blocksize, op, firstBlock);
    } catch (e) {
      packed.dispose();
      absmax.dispose();
      throw e;
    }
    return { packed, absmax };
  } finally {
    if (xf !== x) xf.dispose();
  }
}

/** Per-block absmax of f32 `x` and the status word of its non-finite check (not read yet). */
function blockStatistics(x: Tensor, blocksize: number): { absmax: Tensor; status: Tensor } {
  return { absmax: runOp('BlockAbsmax', [x], { blocksize }), status: runOp('NonFiniteBlock', [x], { blocksize }) };
}

/**
 * Dequantizes `n` packed 4-bit codes: `code[q] * absmax[i / blocksize]` in float32
 * (`dtype` f16: then rounded once to f16, nearest even).
 * `packed u32`, `absmax f32 [nBlocks]`, `code f32 [16]` -> `[n]` in `dtype`.
 */
export function dequantize4bitRaw(packed: Tensor, absmax: Tensor, code: Tensor, blocksize: number, n: number, dtype: 'f32' | 'f16' = 'f32'): Tensor {
  registerCodecOps();
  if (dtype !== 'f32' && dtype !== 'f16') throw new DTypeError(`dequantize4bit: dtype must be 'f32' or 'f16', got ${String(dtype)}`);
  return runOp('Dequantize4bit', [packed, absmax, code], dtype === 'f16' ? { blocksize, n, dtype } : { blocksize, n });
}

/** Result of {@link quantizeBlockwise}: 8-bit codes and per-block absmax, tagged 'quant'. */
export interface Blockwise8bit {
  /** u32 `[ceil(n / 4)]`: one byte per element, little-endian in each word. */
  codes: Tensor;
  /** f32 `[ceil(n / blocksize)]`. */
  absmax: Tensor;
  /** Number of quantized elements. */
  n: number;
  blocksize: number;
}

/** Options of {@link quantizeBlockwise}. */
export interface QuantizeBlockwiseOptions {
  /** The 256-entry sorted code (default: the signed dynamic map, or the unsigned one with `signed: false`). */
  code?: Float32Array;
  signed?: boolean;
  /** Elements per absmax (default 4096, as bitsandbytes). */
  blocksize?: number;
  /** Named in errors. */
  name?: string;
}

/**
 * 8-bit blockwise quantization (bitsandbytes `quantize_blockwise`): per block absmax,
 * scale by its float32 reciprocal, code = CUDA `dQuantize`'s search of the map.
 * Rejects non-finite input.
 *
 * `x [...]` -> `codes u32 [ceil(n/4)]`, `absmax f32 [ceil(n/blocksize)]`.
 * @example
 * const q = await quantizeBlockwise(state, { signed: true, blocksize: 256 });
 */
export async function quantizeBlockwise(x: Tensor, opts: QuantizeBlockwiseOptions = {}): Promise<Blockwise8bit> {
  const blocksize = opts.blocksize ?? 4096;
  const op = `quantizeBlockwise(${opts.name ?? 'tensor'})`;
  if (!Number.isInteger(blocksize) || blocksize < 1) throw new RangeError(`${op}: blocksize must be a positive integer, got ${blocksize}`);
  const table = opts.code ?? (opts.signed === false ? DYNAMIC_UNSIGNED : DYNAMIC_SIGNED);
  if (table.length !== 256) throw new RangeError(`${op}: the code must have 256 entries, got ${table.length}`);
  if (x.size === 0) throw new RangeError(`${op}: cannot quantize an empty tensor`);
  registerCodecOps();
  const xf = asF32(op, x);
  const n = xf.size;
  try {
    const code = codeTensor(table, xf.backend.name);
    const { absmax, status } = withMemoryTag('quant', () => blockStatistics(xf, blocksize));
    const codes = withMemoryTag('quant', () => runOp('QuantizeBlockwise', [xf, absmax, code.tensor], { blocksize }));
    if (!code.shared) code.tensor.dispose();
    try {
      await checkStatus(status, blocksize, op);
    } catch (e) {
      codes.dispose();
      absmax.dispose();
      throw e;
    }
    return { codes, absmax, n, blocksize };
  } finally {
    if (xf !== x) xf.dispose();
  }
}

/**
 * `code[q] * absmax[i / blocksize]` in float32 for `n` 8-bit codes.
 * `codes u32`, `absmax f32`, `code f32 [256]` -> `f32 [n]`.
 */
export function dequantizeBlockwise(codes: Tensor, absmax: Tensor, code: Tensor, blocksize: number, n: number): Tensor {
  registerCodecOps();
  return runOp('DequantizeBlockwise', [codes, absmax, code], { blocksize, n });
}

/** Second-level quantization of absmax (`compress_statistics=True`). */
export interface NestedAbsmax {
  /** u32 `[ceil(n/4)]`: 8-bit codes of `absmax - offset` (bitsandbytes' uint8 `absmax`). */
  qabsmax: Tensor;
  /** f32 `[ceil(n/256)]`: absmax of the second level (`nested_absmax`). */
  absmax2: Tensor;
  /** f32 `[1]`: the mean that was subtracted (`nested_offset`). */
  offset: Tensor;
  /** f32 `[256]`: the code of the second level (`nested_quant_map`). */
  code: Tensor;
  /** Whether `code` is a shared canonical table (not owned, not disposed). */
  codeShared: boolean;
  /** Number of first-level constants. */
  n: number;
  /** Second-level blocksize (256). */
  blocksize: number;
}

/**
 * Double quantization: `c = mean(absmax)` (fixed-order float32, see `fixedOrderMean`),
 * `qabsmax = quantizeBlockwise(absmax - c, signed dynamic map, blocksize 256)`.
 * Tensors are tagged 'quant'; `absmax` is left untouched.
 */
export async function doubleQuantize(absmax: Tensor, name = 'tensor'): Promise<NestedAbsmax> {
  registerCodecOps();
  const backend = absmax.backend.name;
  const offset = withMemoryTag('quant', () => runOp('FixedOrderMean', [absmax], {}));
  const centred = sub(absmax, offset);
  try {
    const q = await quantizeBlockwise(centred, { code: DYNAMIC_SIGNED, blocksize: NESTED_BLOCKSIZE, name: `${name} absmax` });
    const code = codeTensor(DYNAMIC_SIGNED, backend);
    return { qabsmax: q.codes, absmax2: q.absmax, offset, code: code.tensor, codeShared: code.shared, n: absmax.size, blocksize: NESTED_BLOCKSIZE };
  } catch (e) {
    offset.dispose();
    throw e;
  } finally {
    centred.dispose();
  }
}

/** First-level absmax back from its double quantization: `code[q] * absmax2[i / 256] + offset` (float32, two roundings). */
export function restoreAbsmax(nested: NestedAbsmax): Tensor {
  const scaled = dequantizeBlockwise(nested.qabsmax, nested.absmax2, nested.code, nested.blocksize, nested.n);
  const out = add(scaled, nested.offset);
  scaled.dispose();
  return out;
}
