/**
 * A safetensors file read by byte ranges: the header once, then each tensor's bytes when
 * a loader asks for that tensor. Only the header and the tensor being read are held in
 * host memory, so a file of any size loads one tensor at a time.
 */
import type { RandomAccessFile } from './random-access.js';
import { type RawTensor, type SafetensorsEntry, SafetensorsError, parseSafetensorsHeader, safetensorsHeaderLength } from './safetensors.js';

/** An opened safetensors file: its validated header and ranged reads of its tensors. */
export interface SafetensorsFile {
  /** The file's name in errors (`<source>/<file>`). */
  readonly name: string;
  readonly metadata: Record<string, string>;
  /** Every tensor's dtype, shape and byte range, in file order. Nothing of the data is read yet. */
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
  /**
   * Reads one tensor's bytes (one ranged read of exactly its `end - begin` bytes). A file
   * that ends before the tensor does (it shrank since it was opened) throws a
   * {@link SafetensorsError} naming the file and the tensor.
   */
  read(key: string): Promise<RawTensor>;
}

/**
 * Opens `file` as safetensors: reads its first 8 bytes and its header, and validates the
 * header against the file's size exactly as `parseSafetensors` validates a whole file
 * (so every error of a whole-file parse, such as a truncated file, is thrown here, before
 * any tensor is read).
 * @param name the file's name in errors.
 * @example
 * const st = await openSafetensorsFile(await source.openFile!('model.safetensors'), 'model.safetensors');
 * const wte = await st.read('transformer.wte.weight'); // { dtype, shape, data } of that tensor only
 */
export async function openSafetensorsFile(file: RandomAccessFile, name: string): Promise<SafetensorsFile> {
  const first = await file.read(0, Math.min(8, file.size));
  const headerLen = safetensorsHeaderLength(first, first.length < 8 ? first.length : file.size, name);
  const header = await file.read(8, headerLen);
  if (header.length < headerLen) throw new SafetensorsError(`${name}: the file ended inside its ${headerLen}-byte header (it changed while being read)`, name);
  const { metadata, entries, dataStart } = parseSafetensorsHeader(header, file.size, name);
  return {
    name,
    metadata,
    entries,
    async read(key: string): Promise<RawTensor> {
      const e = entries.get(key);
      if (e === undefined) throw new SafetensorsError(`${name}: no tensor '${key}' in the file`, name, key);
      const length = e.end - e.begin;
      const data = await file.read(dataStart + e.begin, length);
      if (data.length < length) {
        throw new SafetensorsError(
          `${name}: tensor '${key}': bytes [${dataStart + e.begin}, ${dataStart + e.end}) run past the end of the file, which now ends at byte ${dataStart + e.begin + data.length} (it was truncated after its header was read)`,
          name,
          key,
        );
      }
      return { dtype: e.dtype, shape: [...e.shape], data };
    },
  };
}
