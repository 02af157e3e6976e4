import { type Tensor, tensor, f16BitsToF32 } from '@webpeft/tensor';

/**
 * A minimal safetensors reader/writer for adapter files (the format: 8-byte
 * little-endian header length, a JSON header `{name: {dtype, shape, data_offsets}}`
 * plus optional `__metadata__`, then the raw little-endian bytes). Kept local so that
 * adapter I/O does not wait on `@webpeft/nn`'s checkpoint I/O; same shapes of data.
 */

/** A tensor as stored in a safetensors file. */
export interface RawTensor {
  dtype: 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
  shape: number[];
  data: Uint8Array;
}

const BYTES: Record<RawTensor['dtype'], number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** Parses safetensors bytes; throws naming `source` on a malformed header. */
export function parseSafetensors(bytes: Uint8Array, source = 'safetensors'): { metadata: Record<string, string>; tensors: Map<string, RawTensor> } {
  if (bytes.byteLength < 8) throw new Error(`${source}: file too short for a safetensors header (${bytes.byteLength} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (8 + headerLen > bytes.byteLength) throw new Error(`${source}: header length ${headerLen} exceeds file size ${bytes.byteLength}`);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen))) as Record<string, unknown>;
  const base = 8 + headerLen;
  const tensors = new Map<string, RawTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype: RawTensor['dtype']; shape: number[]; data_offsets: [number, number] };
    if (!(e.dtype in BYTES)) throw new Error(`${source}: tensor '${name}' has unsupported dtype ${e.dtype}`);
    const [begin, end] = e.data_offsets;
    const expected = e.shape.reduce((a, b) => a * b, 1) * BYTES[e.dtype];
    if (end - begin !== expected || base + end > bytes.byteLength) {
      throw new Error(`${source}: tensor '${name}' [${e.shape.join(',')}] ${e.dtype} has offsets [${begin}, ${end}] (expected ${expected} bytes)`);
    }
    tensors.set(name, { dtype: e.dtype, shape: [...e.shape], data: bytes.slice(base + begin, base + end) });
  }
  return { metadata, tensors };
}

/** Serializes tensors (in the given order) with optional string metadata. */
export function serializeSafetensors(tensors: Map<string, RawTensor> | Record<string, RawTensor>, metadata?: Record<string, string>): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // The data section starts 8-byte aligned, padded with spaces, as the reference writer does.
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).byteLength) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  let pos = 8 + head.byteLength;
  for (const [, t] of entries) {
    out.set(t.data, pos);
    pos += t.data.byteLength;
  }
  return out;
}

/** A float tensor from a raw entry (F32/F16/BF16/F64 become f32; I32/I64 become i32). */
export function rawToTensor(raw: RawTensor, options: { backend?: import('@webpeft/tensor').BackendName; key?: string } = {}): Tensor {
  const n = raw.shape.reduce((a, b) => a * b, 1);
  const bytes = raw.data.slice();
  const view = new DataView(bytes.buffer);
  let host: Float32Array | Int32Array;
  switch (raw.dtype) {
    case 'F32':
      host = new Float32Array(bytes.buffer, 0, n);
      break;
    case 'F64':
      host = Float32Array.from(new Float64Array(bytes.buffer, 0, n));
      break;
    case 'F16':
      host = new Float32Array(n);
      for (let i = 0; i < n; i++) host[i] = f16BitsToF32(view.getUint16(2 * i, true));
      break;
    case 'BF16': {
      // bf16 is the high half of an f32.
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      host = new Float32Array(bits.buffer);
      break;
    }
    case 'I32':
      host = new Int32Array(bytes.buffer, 0, n);
      break;
    case 'I64':
      host = new Int32Array(n);
      for (let i = 0; i < n; i++) host[i] = Number(view.getBigInt64(8 * i, true));
      break;
    default:
      throw new Error(`rawToTensor: ${options.key ?? 'tensor'} has dtype ${raw.dtype}, which adapter files do not use`);
  }
  return tensor(host, raw.shape, { backend: options.backend });
}

/** The F32 raw entry of an f32 tensor (reads it back from its backend). */
export async function tensorToRaw(t: Tensor): Promise<RawTensor> {
  if (t.dtype !== 'f32') throw new Error(`tensorToRaw: expected an f32 tensor, got ${t.dtype} [${t.shape.join(',')}]`);
  const data = (await t.data()) as Float32Array;
  return { dtype: 'F32', shape: [...t.shape], data: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) };
}
