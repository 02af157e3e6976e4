/**
 * Byte streams in u32 tensors. Packed 4-bit and 8-bit codes are stored four bytes per
 * u32 word, little-endian, so a word array viewed as bytes (on the little-endian hosts
 * that run JavaScript and WebGPU) follows bitsandbytes' byte layout (two 4-bit codes per
 * byte, the first in the high nibble).
 */
import { type BackendName, type Tensor, type TensorData, tensor } from '@webpeft/tensor';

/** Copies `bytes` into zero-padded u32 words. */
export function bytesToWords(bytes: Uint8Array): Uint32Array {
  const words = new Uint32Array(Math.ceil(bytes.length / 4));
  new Uint8Array(words.buffer).set(bytes);
  return words;
}

/** A u32 tensor `[ceil(bytes / 4)]` holding `bytes` on `backend`. */
export function bytesTensor(bytes: Uint8Array, backend: BackendName): Tensor {
  return tensor(bytesToWords(bytes), [Math.ceil(bytes.length / 4)], { dtype: 'u32', backend });
}

/** The first `byteLength` bytes of a u32 tensor (async: reads the device back). */
export async function tensorBytes(t: Tensor, byteLength: number): Promise<Uint8Array> {
  const words = (await t.data()) as Uint32Array;
  return new Uint8Array(words.buffer, words.byteOffset, byteLength).slice();
}

/** The first `byteLength` bytes of a host array (a cpu kernel's view of a u32 tensor), without a copy. */
export function hostBytes(words: TensorData, byteLength: number): Uint8Array {
  return new Uint8Array(words.buffer, words.byteOffset, byteLength);
}
