import { f32ArrayToF16Bits, f32ToF16Bits } from '@webpeft/tensor';
import { bf16BitsToF32 } from './float-bits.js';

/** Largest magnitude that rounds to a finite f16 (65504 plus half an ulp, exclusive). */
const F16_LIMIT = 65520;
/** The f32 bits of {@link F16_LIMIT}: a finite f32 at or above it in magnitude overflows f16. */
const F16_LIMIT_F32_BITS = 0x477ff000;
const F32_INF_BITS = 0x7f800000;

/**
 * Rounds float values to f16 bits (nearest even), refusing a finite value that f16
 * cannot hold: a checkpoint weight beyond +-65504 would silently become infinity.
 * Infinities and NaN stay what they are. Throws a RangeError naming `label` (the
 * tensor), the element index and the value. `[n] -> [n]`.
 * @example
 * const bits = toF16Checked(f64Values, "rawToTensor 'model.embed_tokens.weight'");
 */
export function toF16Checked(values: ArrayLike<number>, label: string): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v) && Math.abs(v) >= F16_LIMIT) throw outOfRange(label, i, v);
    out[i] = f32ToF16Bits(v);
  }
  return out;
}

/**
 * {@link toF16Checked} of f32 data, the same bits and errors: the range is checked on
 * the f32 bits and the values are rounded in one bulk call, so a checkpoint's f32
 * tensor decodes to f16 without a function call per value. `[n] -> [n]`.
 * @example
 * const bits = f32ToF16Checked(new Float32Array([1, 0.1]), 'wte'); // [0x3c00, 0x2e66]
 */
export function f32ToF16Checked(values: Float32Array, label: string): Uint16Array {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < words.length; i++) {
    const abs = words[i] & 0x7fffffff;
    if (abs >= F16_LIMIT_F32_BITS && abs < F32_INF_BITS) throw outOfRange(label, i, values[i]);
  }
  return f32ArrayToF16Bits(values);
}

/** Set above the 16 bits of an entry of {@link bf16Table}: the bf16 value is finite and beyond f16's range. */
const OUT_OF_RANGE = 0x10000;
let bf16ToF16Table: Uint32Array | null = null;

/**
 * The f16 bits of every bf16 code (nearest even), or {@link OUT_OF_RANGE} for a finite
 * value f16 cannot hold; built on first use (65536 entries, 256 KiB).
 */
function bf16Table(): Uint32Array {
  if (!bf16ToF16Table) {
    const table = new Uint32Array(0x10000);
    // Each bf16 code is the top half of an f32: round those f32s once, in bulk.
    const values = new Float32Array(0x10000);
    const words = new Uint32Array(values.buffer);
    for (let b = 0; b < 0x10000; b++) words[b] = b << 16;
    const halves = f32ArrayToF16Bits(values);
    for (let b = 0; b < 0x10000; b++) {
      const h = halves[b];
      // An f16 infinity comes from a bf16 infinity or from a finite value beyond range.
      table[b] = (h & 0x7fff) === 0x7c00 && (b & 0x7fff) !== 0x7f80 ? OUT_OF_RANGE : h;
    }
    bf16ToF16Table = table;
  }
  return bf16ToF16Table;
}

/**
 * {@link toF16Checked} of bfloat16 data given as its bits: one table lookup per value
 * (every bf16 is an f32, so the table holds exactly what rounding its f32 gives), a
 * finite value beyond f16's range a RangeError naming `label`, the index and the value.
 * Decoding Qwen2.5-0.5B's bf16 shards to f16 through f32 values took about 5 s of host
 * time; the lookups take under 2 s. `[n] -> [n]`.
 * @example
 * const bits = bf16ToF16Checked(new Uint16Array([0x3f80, 0x3dcd]), 'wte'); // [0x3c00, 0x2e68]
 */
export function bf16ToF16Checked(bits: Uint16Array, label: string): Uint16Array {
  const table = bf16Table();
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = table[bits[i]];
    if (h === OUT_OF_RANGE) throw outOfRange(label, i, bf16BitsToF32(bits[i]));
    out[i] = h;
  }
  return out;
}

function outOfRange(label: string, i: number, v: number): RangeError {
  return new RangeError(`${label}: element ${i} is ${v}, beyond f16's range (+-65504); load this tensor as f32 (dtype: 'f32')`);
}
