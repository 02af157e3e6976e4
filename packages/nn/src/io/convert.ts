/**
 * Conversions between safetensors' raw bytes and tensors.
 *
 * Reading (`rawToTensor`), by file dtype:
 * - `F32` -> f32; `F16`, `BF16`, `F8_E4M3`, `F8_E5M2` -> f32 (exact: every value is representable);
 *   `F64` -> f32 (rounded to nearest), or f64 on the cpu backend with `keepF64`. With
 *   `floatDtype: 'f16'` every float dtype -> f16 (nearest even; out-of-range values throw).
 * - `I32` -> i32; `I64` -> i32 and `U64` -> u32, each value range-checked (an error names the key);
 *   `I16`, `I8`, `U16`, `U8` -> i32; `U32` -> u32; `BOOL` -> bool.
 *
 * Writing (`tensorToRaw`), default file dtype by tensor dtype: f32 -> `F32`, f16 -> `F16`,
 * f64 -> `F64`, i32 -> `I32`, u32 -> `U32` (the format has it; PyTorch >= 2.3 reads it
 * as `torch.uint32`), bool -> `BOOL`. Any other target is converted on the way out:
 * floats are rounded to nearest even, integers are checked to be whole and in range.
 */
import { type BackendName, type DType, type Tensor, f16BitsToF32, f32ToF16Bits, tensor } from '@webpeft/tensor';
import { SAFETENSORS_ITEM_SIZE, type SafetensorsDType, isSafetensorsDType } from './dtypes.js';
import { bf16ArrayToF32, f32ToBf16Bits, f8e4m3BitsToF32, f8e5m2BitsToF32 } from './float-bits.js';
import type { RawTensor } from './safetensors.js';
import { bf16ToF16Checked, f32ToF16Checked, toF16Checked } from './f16-range.js';

/** Options of {@link rawToTensor}. */
export interface RawToTensorOptions {
  /** Backend to create the tensor on (default: the current one). */
  backend?: BackendName;
  /** Checkpoint key, named in errors. */
  key?: string;
  /** Keep `F64` data as an f64 tensor (cpu backend only) instead of rounding to f32. */
  keepF64?: boolean;
  /**
   * Decode float data (`F32`, `F16`, `BF16`, `F64`, `F8_*`) to f16 instead of f32:
   * rounded to nearest even on the host, so no f32 copy reaches the device. A finite
   * value beyond f16's range (+-65504) throws a RangeError naming the key.
   */
  floatDtype?: 'f32' | 'f16';
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Decodes a safetensors tensor into a tensor (dtype mapping in the module docs).
 * Shapes: `raw.shape -> raw.shape`.
 * @example
 * const wte = rawToTensor(tensors.get('transformer.wte.weight')!, { key: 'transformer.wte.weight' });
 */
export function rawToTensor(raw: RawTensor, options: RawToTensorOptions = {}): Tensor {
  const label = `rawToTensor${options.key === undefined ? '' : ` '${options.key}'`}`;
  checkRawSize(raw, label);
  const opts = { backend: options.backend };
  const { dtype, shape } = raw;
  if (options.floatDtype === 'f16') {
    const half = halfOf(raw, label);
    if (half) return tensor(half, shape, { ...opts, dtype: 'f16' });
  }
  switch (dtype) {
    case 'F32':
      return tensor(view(raw, Float32Array), shape, { ...opts, dtype: 'f32' });
    case 'F64': {
      const src = view(raw, Float64Array);
      if (options.keepF64) return tensor(src, shape, { ...opts, dtype: 'f64' });
      return tensor(Float32Array.from(src), shape, { ...opts, dtype: 'f32' });
    }
    case 'F16':
      return tensor(mapToF32(view(raw, Uint16Array), f16BitsToF32), shape, { ...opts, dtype: 'f32' });
    case 'BF16':
      return tensor(bf16ArrayToF32(view(raw, Uint16Array)), shape, { ...opts, dtype: 'f32' });
    case 'F8_E4M3':
      return tensor(mapToF32(raw.data, f8e4m3BitsToF32), shape, { ...opts, dtype: 'f32' });
    case 'F8_E5M2':
      return tensor(mapToF32(raw.data, f8e5m2BitsToF32), shape, { ...opts, dtype: 'f32' });
    case 'I32':
      return tensor(view(raw, Int32Array), shape, { ...opts, dtype: 'i32' });
    case 'U32':
      return tensor(view(raw, Uint32Array), shape, { ...opts, dtype: 'u32' });
    case 'I16':
      return tensor(Int32Array.from(view(raw, Int16Array)), shape, { ...opts, dtype: 'i32' });
    case 'U16':
      return tensor(Int32Array.from(view(raw, Uint16Array)), shape, { ...opts, dtype: 'i32' });
    case 'I8':
      return tensor(Int32Array.from(new Int8Array(raw.data.buffer, raw.data.byteOffset, raw.data.length)), shape, { ...opts, dtype: 'i32' });
    case 'U8':
      return tensor(Int32Array.from(raw.data), shape, { ...opts, dtype: 'i32' });
    case 'BOOL':
      return tensor(Uint32Array.from(raw.data, (b) => (b ? 1 : 0)), shape, { ...opts, dtype: 'bool' });
    case 'I64':
      return tensor(narrow64(raw, true, label), shape, { ...opts, dtype: 'i32' });
    case 'U64':
      return tensor(narrow64(raw, false, label), shape, { ...opts, dtype: 'u32' });
  }
}

/** Default file dtype for each tensor dtype (see the module docs). */
export const SAFETENSORS_DTYPE_OF: Readonly<Record<DType, SafetensorsDType>> = {
  f32: 'F32',
  f16: 'F16',
  f64: 'F64',
  i32: 'I32',
  u32: 'U32',
  bool: 'BOOL',
};

/**
 * Reads a tensor back to the host and encodes it as a safetensors tensor of `dtype`
 * (default by tensor dtype, see the module docs).
 * @example
 * const raw = await tensorToRaw(lora.weight, 'BF16');
 */
export async function tensorToRaw(t: Tensor, dtype: SafetensorsDType = SAFETENSORS_DTYPE_OF[t.dtype]): Promise<RawTensor> {
  const host = await t.data();
  const shape = [...t.shape];
  if (t.dtype === 'f16' && dtype === 'F16') return { dtype, shape, data: bytesOf(Uint16Array.from(host)) };
  const values = t.dtype === 'f16' ? mapToF32(host, f16BitsToF32) : host;
  return { dtype, shape, data: encodeValues(values, dtype, `tensorToRaw (${t.dtype} [${shape.join(', ')}])`) };
}

/**
 * Wraps host values as a safetensors tensor of `dtype`. The default dtype follows the
 * array: Float32Array -> `F32`, Int32Array -> `I32`, Uint8Array -> `U8`; another dtype
 * converts the values (rounding floats, range-checking integers).
 * @example
 * rawFromArray(new Float32Array([1, 2, 3, 4]), [2, 2], 'BF16');
 */
export function rawFromArray(data: Float32Array | Int32Array | Uint8Array, shape: number[], dtype?: SafetensorsDType): RawTensor {
  const target = dtype ?? (data instanceof Float32Array ? 'F32' : data instanceof Int32Array ? 'I32' : 'U8');
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== data.length) throw new Error(`rawFromArray: ${data.length} values do not fill shape [${shape.join(', ')}] (${size} elements)`);
  return { dtype: target, shape: [...shape], data: encodeValues(data, target, 'rawFromArray') };
}

/** Encodes numbers as little-endian bytes of `dtype`, checking integer targets. */
export function encodeValues(values: ArrayLike<number>, dtype: SafetensorsDType, label: string): Uint8Array {
  if (!isSafetensorsDType(dtype)) throw new Error(`${label}: unknown safetensors dtype ${JSON.stringify(dtype)}`);
  const n = values.length;
  switch (dtype) {
    case 'F32':
      return bytesOf(Float32Array.from(values));
    case 'F64':
      return bytesOf(Float64Array.from(values));
    case 'F16':
      return bytesOf(Uint16Array.from(values, f32ToF16Bits));
    case 'BF16':
      return bytesOf(Uint16Array.from(values, f32ToBf16Bits));
    case 'BOOL':
      return Uint8Array.from(values, (v) => (v ? 1 : 0));
    case 'I64':
    case 'U64': {
      const out = dtype === 'I64' ? new BigInt64Array(n) : new BigUint64Array(n);
      const [lo, hi] = dtype === 'I64' ? [-(2 ** 53), 2 ** 53] : [0, 2 ** 53];
      for (let i = 0; i < n; i++) out[i] = BigInt(checkInt(values[i], lo, hi, dtype, label, i));
      return bytesOf(out);
    }
    case 'F8_E4M3':
    case 'F8_E5M2':
      throw new Error(`${label}: writing ${dtype} is not supported (store float8 checkpoints as F16/BF16/F32)`);
    default: {
      const [Ctor, lo, hi] = INT_TARGETS[dtype];
      const out = new Ctor(n);
      for (let i = 0; i < n; i++) out[i] = checkInt(values[i], lo, hi, dtype, label, i);
      return bytesOf(out);
    }
  }
}

type IntCtor = new (length: number) => Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array;
const INT_TARGETS: Record<'I32' | 'U32' | 'I16' | 'U16' | 'I8' | 'U8', [IntCtor, number, number]> = {
  I32: [Int32Array, -(2 ** 31), 2 ** 31 - 1],
  U32: [Uint32Array, 0, 2 ** 32 - 1],
  I16: [Int16Array, -(2 ** 15), 2 ** 15 - 1],
  U16: [Uint16Array, 0, 2 ** 16 - 1],
  I8: [Int8Array, -128, 127],
  U8: [Uint8Array, 0, 255],
};

function checkInt(v: number, lo: number, hi: number, dtype: string, label: string, i: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${label}: element ${i} = ${v} is not representable as ${dtype} (integers in [${lo}, ${hi}])`);
  return v;
}

function checkRawSize(raw: RawTensor, label: string): void {
  if (!isSafetensorsDType(raw.dtype)) throw new Error(`${label}: unknown safetensors dtype ${JSON.stringify(raw.dtype)}`);
  const expected = raw.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_ITEM_SIZE[raw.dtype];
  if (raw.data.length !== expected) throw new Error(`${label}: ${raw.data.length} bytes but ${raw.dtype} [${raw.shape.join(', ')}] needs ${expected}`);
  if (!LITTLE_ENDIAN) throw new Error(`${label}: big-endian hosts are not supported (safetensors data is little-endian)`);
}

type ViewCtor<T> = { new (buffer: ArrayBuffer, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number };

/** A typed view of the raw bytes; copies first when the bytes are not aligned for `Ctor`. */
function view<T>(raw: RawTensor, Ctor: ViewCtor<T>): T {
  let bytes = raw.data;
  if (bytes.byteOffset % Ctor.BYTES_PER_ELEMENT !== 0 || !(bytes.buffer instanceof ArrayBuffer)) bytes = bytes.slice();
  return new Ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length / Ctor.BYTES_PER_ELEMENT);
}

/** f16 bits of a float tensor (F16 bits are taken as they are), or null for non-float data. */
function halfOf(raw: RawTensor, label: string): Uint16Array | null {
  switch (raw.dtype) {
    case 'F16':
      return Uint16Array.from(view(raw, Uint16Array));
    case 'F32':
      return f32ToF16Checked(view(raw, Float32Array), label);
    case 'F64':
      return toF16Checked(view(raw, Float64Array), label);
    case 'BF16':
      return bf16ToF16Checked(view(raw, Uint16Array), label);
    case 'F8_E4M3':
      return toF16Checked(mapToF32(raw.data, f8e4m3BitsToF32), label);
    case 'F8_E5M2':
      return toF16Checked(mapToF32(raw.data, f8e5m2BitsToF32), label);
    default:
      return null;
  }
}

function mapToF32(bits: ArrayLike<number>, fn: (b: number) => number): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = fn(bits[i]);
  return out;
}

/** I64/U64 -> 32-bit, reading each value as two little-endian words and range-checking it. */
function narrow64(raw: RawTensor, signed: boolean, label: string): Int32Array | Uint32Array {
  const words = view(raw, Uint32Array);
  const n = words.length / 2;
  const out = signed ? new Int32Array(n) : new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const lo = words[2 * i];
    const hi = words[2 * i + 1];
    const fits = signed ? (hi === 0 && lo < 2 ** 31) || (hi === 0xffffffff && lo >= 2 ** 31) : hi === 0;
    if (!fits) {
      const value = signed ? (BigInt(hi | 0) << 32n) | BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
      throw new RangeError(`${label}: ${raw.dtype} element ${i} = ${value} does not fit in ${signed ? 'i32' : 'u32'}`);
    }
    out[i] = signed ? lo | 0 : lo;
  }
  return out;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
