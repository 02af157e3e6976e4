/**
 * Choosing a local model folder: the File System Access API (`showDirectoryPicker`) where
 * the browser has it (Chromium, Edge), else `<input type=file webkitdirectory>` (Firefox,
 * Safari). Either way the worker gets the folder's files as `File` objects.
 */

/** The part of a `FileSystemDirectoryHandle` the studio reads (so a test can hand in its own handles). */
export interface DirectoryHandleLike {
  kind: 'directory';
  name: string;
  values(): AsyncIterable<FileHandleLike | DirectoryHandleLike>;
}

/** The part of a `FileSystemFileHandle` the studio reads. */
export interface FileHandleLike {
  kind: 'file';
  name: string;
  getFile(): Promise<File>;
}

/** `window.showDirectoryPicker`, typed (the project's DOM lib does not declare it yet). */
type DirectoryPicker = (options?: { id?: string; mode?: 'read' }) => Promise<DirectoryHandleLike>;

/** The browser's directory picker, or null where the File System Access API is missing (the page falls back to the folder input). */
export function directoryPicker(): DirectoryPicker | null {
  const picker = (globalThis as { showDirectoryPicker?: DirectoryPicker }).showDirectoryPicker;
  return typeof picker === 'function' ? picker.bind(globalThis) : null;
}

/**
 * The files directly inside `dir` (a Hugging Face model folder is flat: `config.json`,
 * weights, `tokenizer.json`); subfolders are skipped, as the folder input's nested files
 * would be by the model loader, which reads names at the top level.
 */
export async function filesOfDirectory(dir: DirectoryHandleLike): Promise<File[]> {
  const files: File[] = [];
  for await (const entry of dir.values()) if (entry.kind === 'file') files.push(await entry.getFile());
  // Handles come in no defined order: sort, so the page lists the same folder the same way.
  return files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Asks the user for a folder with the File System Access API; resolves with its name and
 * files, or null when the user cancels the picker (an `AbortError`). Other failures throw.
 */
export async function pickDirectory(picker: DirectoryPicker): Promise<{ name: string; files: File[] } | null> {
  let dir: DirectoryHandleLike;
  try {
    dir = await picker({ id: 'webpeft-model', mode: 'read' });
  } catch (e) {
    if ((e as Error).name === 'AbortError') return null;
    throw e;
  }
  return { name: dir.name, files: await filesOfDirectory(dir) };
}
