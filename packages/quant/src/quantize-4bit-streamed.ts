/**
 * 4-bit quantization of a weight that is never whole on the device: pieces of it are
 * decoded (from a checkpoint on the host), quantized and freed in turn, their codes and
 * block scales gathered on the host, then uploaded once. Blocks never straddle pieces,
 * so the result is byte-identical to {@link quantize4bit} of the whole weight.
 */
import { type BackendName, type Tensor, tensor, withMemoryTag } from '@webpeft/tensor';
import { checkBlocksize4bit, quantize4bitRaw } from './blockwise.js';
import { bytesTensor, tensorBytes } from './host-bytes.js';
import { type Quantize4bitOptions, type Quantized4bit, withQuantState } from './quantize-4bit.js';

/** A weight readable in pieces: `decode(start, end)` gives elements `[start, end)` of its row-major flattening as a new f32 tensor. */
export interface WeightPieces {
  readonly shape: readonly number[];
  decode(start: number, end: number): Tensor;
}

/** Most elements decoded at once (16 MiB of f32), a multiple of every 4-bit blocksize. */
const MAX_PIECE = 1 << 22;

/**
 * Quantizes a weight read piece by piece, byte-identical to `quantize4bit` of the whole
 * weight (same options). At most a quarter of the weight (and at most 2^22 elements) is
 * on the device in f32 at a time, so peak device memory stays below one full-precision
 * copy of the weight plus its result. NaN or infinity fails naming `name` and the block.
 *
 * `shape [...]` -> `packed u32 [ceil(n/8)]` and its state, as `quantize4bit`.
 * @example
 * const { packed, state } = await quantize4bitStreamed({ shape: [out, inF], decode: (a, b) => readRange(a, b) }, { quantType: 'nf4' });
 */
export async function quantize4bitStreamed(weight: WeightPieces, opts: Quantize4bitOptions = {}): Promise<Quantized4bit> {
  const quantType = opts.quantType ?? 'nf4';
  const blocksize = opts.blocksize ?? 64;
  const name = opts.name ?? 'tensor';
  checkBlocksize4bit(`quantize4bit(${name})`, blocksize);
  const n = weight.shape.reduce((a, b) => a * b, 1);
  if (n === 0) throw new RangeError(`quantize4bit(${name}): cannot quantize an empty tensor`);
  const piece = Math.min(MAX_PIECE, Math.max(blocksize, Math.ceil(n / 4 / blocksize) * blocksize));
  const packedBytes = new Uint8Array(Math.ceil(n / 2));
  const absmaxValues = new Float32Array(Math.ceil(n / blocksize));
  let backend: BackendName = 'cpu';
  for (let start = 0; start < n; start += piece) {
    const x = weight.decode(start, Math.min(n, start + piece));
    backend = x.backend.name;
    let part;
    try {
      part = await quantize4bitRaw(x, quantType, blocksize, name, start / blocksize);
    } finally {
      x.dispose();
    }
    try {
      // A piece is a whole number of blocks (of at least 32 elements), so its bytes end on a byte boundary.
      const bytes = Math.ceil(Math.min(piece, n - start) / 2);
      packedBytes.set(await tensorBytes(part.packed, bytes), start / 2);
      absmaxValues.set(await part.absmax.data(), start / blocksize);
    } finally {
      part.packed.dispose();
      part.absmax.dispose();
    }
  }
  const { packed, absmax } = withMemoryTag('quant', () => ({
    packed: bytesTensor(packedBytes, backend),
    absmax: tensor(absmaxValues, [absmaxValues.length], { backend }),
  }));
  return withQuantState(packed, absmax, [...weight.shape], { ...opts, quantType, blocksize, name });
}
