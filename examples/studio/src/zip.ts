/** Adapter and model folders as .zip files (fflate), and adapter files from what the user picked. */
import { unzipSync, zipSync } from 'fflate';
import { MalformedFileError } from './data.js';

/** A zip of `files` (relative path -> bytes), stored uncompressed: safetensors barely compress. */
export function zipFiles(files: Record<string, Uint8Array>): Uint8Array {
  return zipSync(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, [v, { level: 0 }]])));
}

/**
 * The files of a picked .zip (entries under one top folder are taken from inside it),
 * or the picked files themselves by name. A zip that cannot be read throws
 * {@link MalformedFileError} naming it.
 */
export async function filesFromPicked(picked: readonly File[]): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const f of picked) {
    const bytes = new Uint8Array(await f.arrayBuffer());
    if (!f.name.toLowerCase().endsWith('.zip')) {
      out[f.name] = bytes;
      continue;
    }
    let entries: Record<string, Uint8Array>;
    try {
      entries = unzipSync(bytes);
    } catch (e) {
      throw new MalformedFileError(f.name, 0, `not a readable zip file (${(e as Error).message})`);
    }
    for (const [path, data] of Object.entries(entries)) {
      if (path.endsWith('/')) continue;
      out[path.split('/').pop()!] = data;
    }
  }
  return out;
}

/** Offers `bytes` to the user as a download named `name`. */
export function download(name: string, bytes: Uint8Array | string, type: string): void {
  const blob = new Blob([bytes as BlobPart], { type });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  // Revoked later: the download reads the blob after click() returns.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
