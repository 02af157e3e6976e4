/**
 * Byte-range access to one file, so a loader reads a checkpoint's header and then each
 * tensor's bytes on demand instead of the whole file: a file larger than one host
 * buffer (Node refuses reads of 2 GiB and more) loads, and host memory holds one tensor
 * at a time. Node implements it with `FileHandle.read` at offsets (`#fs-source`), a
 * browser with `Blob.slice()` (picked `File`s, `FileSystemFileHandle.getFile()`, cached
 * responses), and bytes already in memory with views.
 */

/** A file read by byte ranges. */
export interface RandomAccessFile {
  /** Size of the file in bytes when it was opened. */
  readonly size: number;
  /**
   * Bytes `[offset, offset + length)`. Fewer bytes come back only when the file ends
   * before `offset + length` (it shrank since it was opened); the caller names what it
   * was reading.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** Ranges of bytes already in memory: views, no copy. */
export function bytesFile(bytes: Uint8Array): RandomAccessFile {
  return {
    size: bytes.length,
    read: async (offset, length) => bytes.subarray(offset, Math.min(bytes.length, offset + length)),
  };
}

/** Ranges of a `Blob` (a browser `File`, a cached `Response`'s body): only the slice read is copied into memory. */
export function blobFile(blob: Blob): RandomAccessFile {
  return {
    size: blob.size,
    read: async (offset, length) => new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer()),
  };
}
