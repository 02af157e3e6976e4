/**
 * Checkpoint folders in the browser's origin private file system (OPFS), or any
 * `FileSystemDirectoryHandle`. OPFS has no portable folder rename, so a commit writes
 * every file into a hidden temporary sibling folder first, then (the old folder removed)
 * copies them into place with `trainer_state.json` last and removes the temporary one.
 * A crash before the copy leaves the old checkpoint; during it, a folder without a
 * manifest (or whose manifest's sizes and CRCs do not match), which a load refuses, and
 * the complete temporary copy: never a checkpoint that loads half.
 */
import { CheckpointError } from './errors.js';
import type { CheckpointStore } from './store.js';

const segments = (path: string) => path.split('/').filter((s) => s !== '' && s !== '.');
const isNamed = (e: unknown, name: string) => typeof e === 'object' && e !== null && (e as { name?: unknown }).name === name;

/** The directory at `path` under `root`, or null when a level is missing (and `create` is false). */
async function directoryAt(root: FileSystemDirectoryHandle, path: string[], create: boolean, where: string): Promise<FileSystemDirectoryHandle | null> {
  let dir = root;
  for (const seg of path) {
    try {
      dir = await dir.getDirectoryHandle(seg, { create });
    } catch (e) {
      if (isNamed(e, 'NotFoundError')) return null;
      if (isNamed(e, 'TypeMismatchError')) throw new CheckpointError(`${where}: '${seg}' is a file, not a folder`, where);
      throw e;
    }
  }
  return dir;
}

async function writeFile(dir: FileSystemDirectoryHandle, name: string, bytes: Uint8Array): Promise<void> {
  const handle = await dir.getFileHandle(name, { create: true });
  const w = await handle.createWritable();
  try {
    await w.write(bytes.slice());
  } finally {
    await w.close();
  }
}

/**
 * A store whose keys are `/`-separated folder paths under `root` (e.g. from
 * `navigator.storage.getDirectory()`).
 * @example
 * const store = opfsCheckpointStore(await navigator.storage.getDirectory());
 * await saveCheckpoint(store, 'runs/a/checkpoint-10', state);
 */
export function opfsCheckpointStore(root: FileSystemDirectoryHandle): CheckpointStore {
  const exists = async (dir: string): Promise<boolean> => {
    const path = segments(dir);
    if (path.length === 0) return true;
    const parent = await directoryAt(root, path.slice(0, -1), false, dir);
    if (!parent) return false;
    try {
      await parent.getDirectoryHandle(path[path.length - 1]);
      return true;
    } catch (e) {
      if (isNamed(e, 'TypeMismatchError')) return true; // a file of that name
      if (isNamed(e, 'NotFoundError')) return false;
      throw e;
    }
  };
  return {
    kind: 'opfs',
    exists,
    async read(dir, file) {
      const d = await directoryAt(root, segments(dir), false, dir);
      if (!d) return undefined;
      try {
        return new Uint8Array(await (await (await d.getFileHandle(file)).getFile()).arrayBuffer());
      } catch (e) {
        if (isNamed(e, 'NotFoundError')) return undefined;
        throw new CheckpointError(`${dir}/${file}: cannot read (${(e as Error).message})`, dir);
      }
    },
    async commit(dir, files, { overwrite }) {
      const path = segments(dir);
      if (path.length === 0) throw new CheckpointError(`'${dir}': a checkpoint needs a folder name`, dir);
      const name = path[path.length - 1];
      const had = await exists(dir);
      if (had && !overwrite) throw new CheckpointError(`${dir}: a checkpoint already exists there (pass overwrite to replace it)`, dir);
      const parent = (await directoryAt(root, path.slice(0, -1), true, dir))!;
      if (had) await directoryAt(parent, [name], false, dir); // throws naming a file in the way
      const tmpName = `.${name}.tmp-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
      const tmp = await parent.getDirectoryHandle(tmpName, { create: true });
      try {
        for (const [f, bytes] of files) await writeFile(tmp, f, bytes);
      } catch (e) {
        await parent.removeEntry(tmpName, { recursive: true }).catch(() => undefined);
        throw new CheckpointError(`${dir}: saving failed (${(e as Error).message}); nothing was replaced`, dir);
      }
      if (had) await parent.removeEntry(name, { recursive: true });
      const target = await parent.getDirectoryHandle(name, { create: true });
      // `files` lists the manifest last (saveCheckpoint's order), so it is copied last.
      for (const [f, bytes] of files) await writeFile(target, f, bytes);
      await parent.removeEntry(tmpName, { recursive: true });
    },
  };
}
