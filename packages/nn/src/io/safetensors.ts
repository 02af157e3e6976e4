/**
 * The safetensors file format (https://github.com/huggingface/safetensors):
 *
 * ```
 * [8 bytes]  N, the header length, unsigned 64-bit little-endian
 * [N bytes]  UTF-8 JSON: {"__metadata__": {str: str}, name: {dtype, shape, data_offsets: [begin, end]}, ...}
 * [rest]     the byte buffer; offsets are relative to its start, little-endian, C order
 * ```
 *
 * The reader validates everything a hostile or truncated file could get wrong and names
 * the file and the tensor in every error. The writer reproduces the reference Rust
 * writer byte for byte: tensors sorted by dtype alignment (descending) then name, the
 * metadata first, compact JSON, and the header padded with spaces to a multiple of 8.
 */
import { SAFETENSORS_ITEM_SIZE, type SafetensorsDType, dtypeRank, isSafetensorsDType } from './dtypes.js';

export type { SafetensorsDType } from './dtypes.js';

/** One tensor of a safetensors file, undecoded. */
export interface RawTensor {
  dtype: SafetensorsDType;
  shape: number[];
  /**
   * Raw little-endian bytes, exactly `prod(shape) * itemsize` of them. After
   * {@link parseSafetensors} this is a view into the parsed file (no copy).
   */
  data: Uint8Array;
}

/** A parsed safetensors file: its free-form metadata and its tensors in file order. */
export interface SafetensorsContents {
  metadata: Record<string, string>;
  tensors: Map<string, RawTensor>;
}

/** Largest header the reference reader accepts (100 MB). */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

/** Error thrown for a malformed safetensors file; the message names the file and key. */
export class SafetensorsError extends Error {
  constructor(
    message: string,
    readonly source: string,
    readonly key?: string,
  ) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

/** One tensor's entry in a safetensors header: offsets are relative to the data buffer. */
export interface SafetensorsEntry {
  dtype: SafetensorsDType;
  shape: number[];
  /** `[begin, end)` bytes of the data buffer, which starts at `SafetensorsHeader.dataStart` in the file. */
  begin: number;
  end: number;
}

/** A validated safetensors header: what a loader needs to read any tensor by its byte range. */
export interface SafetensorsHeader {
  metadata: Record<string, string>;
  /** Tensors in file order (by offset). */
  entries: Map<string, SafetensorsEntry>;
  /** File offset of the data buffer (`8 + header length`). */
  dataStart: number;
}

/**
 * Parses a whole safetensors file. Tensor data are views into `bytes`.
 *
 * Checks: header length within the file, UTF-8 JSON object, unique names, known dtypes,
 * integer shapes, offsets inside the buffer, `end - begin == prod(shape) * itemsize`,
 * no overlaps and no holes (the buffer is exactly covered), string-only metadata.
 *
 * @param source file name used in error messages.
 * @example
 * const { tensors } = parseSafetensors(await source.readBytes('model.safetensors'), 'model.safetensors');
 * tensors.get('transformer.wte.weight'); // { dtype: 'F32', shape: [50257, 768], data }
 */
export function parseSafetensors(bytes: ArrayBuffer | Uint8Array, source = 'safetensors'): SafetensorsContents {
  const file = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const headerLen = safetensorsHeaderLength(file, file.length, source);
  const { metadata, entries, dataStart } = parseSafetensorsHeader(file.subarray(8, 8 + headerLen), file.length, source);
  const tensors = new Map<string, RawTensor>();
  for (const [key, e] of entries) tensors.set(key, { dtype: e.dtype, shape: e.shape, data: file.subarray(dataStart + e.begin, dataStart + e.end) });
  return { metadata, tensors };
}

/**
 * The header length a safetensors file's first 8 bytes give (`first` may be longer),
 * checked against the limit and against `fileSize`. Throws {@link SafetensorsError}
 * naming `source`.
 */
export function safetensorsHeaderLength(first: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8 || first.length < 8) {
    throw new SafetensorsError(`${source}: file is ${fileSize} bytes, too short for the 8-byte header length`, source);
  }
  const view = new DataView(first.buffer, first.byteOffset, 8);
  const headerLen = view.getUint32(4, true) * 2 ** 32 + view.getUint32(0, true);
  if (headerLen > MAX_HEADER_BYTES) throw new SafetensorsError(`${source}: header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`, source);
  if (8 + headerLen > fileSize) {
    throw new SafetensorsError(`${source}: header length ${headerLen} runs past the end of the file (${fileSize} bytes): the file is truncated or not safetensors`, source);
  }
  return headerLen;
}

/**
 * Parses and validates the JSON header of a safetensors file of `fileSize` bytes (every
 * check of {@link parseSafetensors}, against the size alone, so no tensor data need be
 * read). `header` is the file's bytes `[8, 8 + N)`.
 */
export function parseSafetensorsHeader(header: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  const fail = (msg: string, key?: string): never => {
    throw new SafetensorsError(`${source}: ${key === undefined ? '' : `tensor '${key}': `}${msg}`, source, key);
  };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(header);
  } catch {
    return fail('header is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail('header is not a JSON object');
  const dup = firstDuplicateKey(text);
  if (dup !== undefined) fail('appears more than once in the header', dup);
  const fractional = fractionalCount(text);
  if (fractional !== undefined) fail(`${fractional.field} ${fractional.list} must hold integers written without a fraction or exponent`);

  const dataStart = 8 + header.length;
  const bufferLength = fileSize - dataStart;
  const metadata = readMetadata((parsed as Record<string, unknown>)[METADATA_KEY], fail);
  const entries: { key: string; entry: SafetensorsEntry }[] = [];
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (key === METADATA_KEY) continue;
    if (typeof value !== 'object' || value === null) fail('entry is not an object', key);
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isSafetensorsDType(info.dtype)) fail(`unknown dtype ${JSON.stringify(info.dtype)}`, key);
    const dtype = info.dtype as SafetensorsDType;
    if (!Array.isArray(info.shape) || !info.shape.every(isCount)) fail(`shape ${JSON.stringify(info.shape)} is not a list of non-negative integers`, key);
    const shape = info.shape as number[];
    const offsets = info.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      fail(`data_offsets ${JSON.stringify(offsets)} is not [begin, end]`, key);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail(`data_offsets [${begin}, ${end}] out of range of the ${bufferLength}-byte data buffer`, key);
    if (end > bufferLength) {
      fail(`data_offsets [${begin}, ${end}] out of range of the ${bufferLength}-byte data buffer: the tensor runs past the end of the file (${fileSize} bytes), which is truncated`, key);
    }
    const expected = shape.reduce((a, b) => a * b, 1) * SAFETENSORS_ITEM_SIZE[dtype];
    if (end - begin !== expected) {
      fail(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} [${shape.join(', ')}] needs ${expected}`, key);
    }
    entries.push({ key, entry: { dtype, shape, begin, end } });
  }
  // The format requires the tensors to tile the buffer exactly: sorted by offset, each
  // begins where the previous one ends and the last ends at the end of the file.
  const sorted = [...entries].sort((a, b) => a.entry.begin - b.entry.begin || a.entry.end - b.entry.end);
  let pos = 0;
  let prev: string | undefined;
  for (const { key, entry: e } of sorted) {
    if (e.begin < pos) fail(`data_offsets [${e.begin}, ${e.end}] overlap tensor '${prev}' (which ends at ${pos})`, key);
    if (e.begin > pos) fail(`bytes [${pos}, ${e.begin}) of the data buffer belong to no tensor (a hole before data_offsets [${e.begin}, ${e.end}])`, key);
    pos = e.end;
    prev = key;
  }
  if (pos !== bufferLength) {
    fail(`data buffer is ${bufferLength} bytes but the tensors cover only ${pos}${prev === undefined ? '' : ` (last tensor '${prev}')`}`);
  }
  return { metadata, entries: new Map(sorted.map(({ key, entry }) => [key, entry])), dataStart };
}

/**
 * Serializes tensors to a safetensors file, byte-identical to the reference writer
 * (Python `safetensors.torch.save_file`) for the same tensors and metadata (with more
 * than one metadata entry the reference order is a hash order; ours is insertion order).
 *
 * @param metadata free-form strings; HF tools expect `{ format: 'pt' }`.
 * @example
 * const bytes = serializeSafetensors({ w: rawFromArray(new Float32Array([1, 2]), [2]) }, { format: 'pt' });
 */
export function serializeSafetensors(
  tensors: Map<string, RawTensor> | Record<string, RawTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const encoder = new TextEncoder();
  const list = (tensors instanceof Map ? [...tensors] : Object.entries(tensors)).map(([name, raw]) => {
    if (name === METADATA_KEY) throw new SafetensorsError(`serializeSafetensors: '${METADATA_KEY}' is reserved and cannot name a tensor`, 'serializeSafetensors', name);
    checkRaw(name, raw);
    return { name, raw, nameBytes: encoder.encode(name) };
  });
  list.sort((a, b) => dtypeRank(b.raw.dtype) - dtypeRank(a.raw.dtype) || compareBytes(a.nameBytes, b.nameBytes));

  const parts: string[] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(`serializeSafetensors: metadata '${k}' must be a string, got ${typeof v}`, 'serializeSafetensors');
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const { name, raw } of list) {
    const end = offset + raw.data.length;
    parts.push(`${JSON.stringify(name)}:{"dtype":"${raw.dtype}","shape":[${raw.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = encoder.encode(`{${parts.join(',')}}`);
  const headerLen = json.length + ((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + headerLen + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLen % 2 ** 32, true);
  view.setUint32(4, Math.floor(headerLen / 2 ** 32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const { raw } of list) {
    out.set(raw.data, pos);
    pos += raw.data.length;
  }
  return out;
}

function checkRaw(name: string, raw: RawTensor): void {
  const where = `serializeSafetensors: tensor '${name}'`;
  if (!isSafetensorsDType(raw.dtype)) throw new SafetensorsError(`${where}: unknown dtype ${JSON.stringify(raw.dtype)}`, 'serializeSafetensors', name);
  if (!raw.shape.every((d) => isCount(d))) throw new SafetensorsError(`${where}: bad shape [${raw.shape.join(', ')}]`, 'serializeSafetensors', name);
  const expected = raw.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_ITEM_SIZE[raw.dtype];
  if (raw.data.length !== expected) {
    throw new SafetensorsError(`${where}: ${raw.data.length} bytes but ${raw.dtype} [${raw.shape.join(', ')}] needs ${expected}`, 'serializeSafetensors', name);
  }
}

function readMetadata(value: unknown, fail: (msg: string, key?: string) => never): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) fail(`'${METADATA_KEY}' is not an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') fail(`'${METADATA_KEY}' entry '${k}' is not a string`);
    out[k] = v;
  }
  return out;
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/**
 * The first `shape` or `data_offsets` list holding a number written with a fraction or
 * an exponent (`2.0`, `1e3`): JSON.parse reads such a number as an integer, while the
 * reference reader rejects it, so it is rejected here too.
 */
function fractionalCount(text: string): { field: string; list: string } | undefined {
  for (const m of text.matchAll(/"(shape|data_offsets)"\s*:\s*(\[[^\]]*\])/g)) {
    if (/[.eE]/.test(m[2])) return { field: m[1], list: m[2] };
  }
  return undefined;
}

/** Byte-wise order of UTF-8 names: Rust's `String` order, which the reference writer uses. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/**
 * The first key that occurs twice at the top level of a JSON object text (JSON.parse
 * silently keeps the last one, which would hide a tensor). Assumes `text` parsed.
 */
function firstDuplicateKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = depth === 1;
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectKey = true;
  }
  return undefined;
}
