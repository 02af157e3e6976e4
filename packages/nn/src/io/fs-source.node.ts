/**
 * Local file access for Node, selected by the `#fs-source` import condition. With
 * `remote-store.node.ts` (`#remote-store`), the only modules of this package that import
 * `node:` modules.
 */
import { access, mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RandomAccessFile } from './random-access.js';

/** True where this runtime can read and write local paths. */
export const FILE_SYSTEM_AVAILABLE = true;

/** The bytes of the file at `path`. */
export async function readFileBytes(path: string): Promise<Uint8Array> {
  const buf = await readFile(path);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * The file at `path` read by byte ranges (`FileHandle.read` at offsets): nothing is read
 * until asked, so a file of any size opens, and each range is one host buffer. Each read
 * opens the file for its own duration, so nothing stays open between reads.
 */
export async function openFileRanges(path: string): Promise<RandomAccessFile> {
  const { size } = await stat(path);
  return {
    size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      const out = new Uint8Array(length);
      const handle = await open(path, 'r');
      try {
        let done = 0;
        // One read call returns at most about 2 GiB: loop until the range is full or the file ends.
        while (done < length) {
          const { bytesRead } = await handle.read(out, done, length - done, offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return done === length ? out : out.subarray(0, done);
      } finally {
        await handle.close();
      }
    },
  };
}

/** True when `path` exists and is readable. */
export async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Writes `bytes` to `path`, creating missing parent directories. */
export async function writeFileBytes(path: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
}

/** The local path of a `file:` URL (platform rules: drive letters, percent-decoding). */
export function filePathOf(url: URL): string {
  return fileURLToPath(url);
}

/** The entries of directory `path`, or null when it does not exist. */
export async function listDirectory(path: string): Promise<string[] | null> {
  try {
    return await readdir(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Renames `from` to `to` (atomic on one file system), creating `to`'s parent. */
export async function renamePath(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  await rename(from, to);
}

/** Removes a file or a directory tree; absent is fine. */
export async function removePath(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}
