/**
 * Local file access in browsers, selected by the `#fs-source` import condition: there
 * is none, so every function explains what to use instead.
 */
import type { RandomAccessFile } from './random-access.js';

/** True where this runtime can read and write local paths. */
export const FILE_SYSTEM_AVAILABLE = false;

const HINT = 'local paths need Node; in a browser pass File objects (an <input type="file" webkitdirectory> selection), a base URL, or an in-memory map of files';

/** Not available in browsers: throws, naming the alternatives. */
export async function readFileBytes(path: string): Promise<Uint8Array> {
  throw new Error(`cannot read '${path}': ${HINT}`);
}

/** Not available in browsers: throws, naming the alternatives. */
export async function openFileRanges(path: string): Promise<RandomAccessFile> {
  throw new Error(`cannot read '${path}': ${HINT}`);
}

/** Not available in browsers: throws, naming the alternatives. */
export async function fileExists(path: string): Promise<boolean> {
  throw new Error(`cannot look for '${path}': ${HINT}`);
}

/** Not available in browsers: throws, suggesting `memoryTarget()`. */
export async function writeFileBytes(path: string, _bytes: Uint8Array): Promise<void> {
  throw new Error(`cannot write '${path}': local paths need Node; in a browser write to memoryTarget() and offer its files for download`);
}

/** Not available in browsers: throws, naming the alternatives. */
export function filePathOf(url: URL): string {
  throw new Error(`cannot open '${url.href}': ${HINT}`);
}

/** Not available in browsers: throws, suggesting `memoryTarget()`. */
export async function listDirectory(path: string): Promise<string[] | null> {
  throw new Error(`cannot list '${path}': ${HINT}`);
}

/** Not available in browsers: throws, suggesting `memoryTarget()`. */
export async function renamePath(from: string, _to: string): Promise<void> {
  throw new Error(`cannot rename '${from}': local paths need Node; in a browser write to memoryTarget() and offer its files for download`);
}

/** Not available in browsers: throws, suggesting `memoryTarget()`. */
export async function removePath(path: string): Promise<void> {
  throw new Error(`cannot remove '${path}': local paths need Node`);
}
