/**
 * Where checkpoints live. A {@link CheckpointStore} reads single files and writes a
 * whole checkpoint folder at once, atomically: a reader sees the old folder or the new
 * one, never a mix. The format code (`checkpoint.ts`) sees only this interface, so the
 * same checkpoints go to a Node directory (`fileCheckpointStore`, `#checkpoint-fs`),
 * memory ({@link memoryCheckpointStore}) or any browser storage that can implement it.
 */
import { CheckpointError } from './errors.js';

/** A place that holds checkpoint folders, each addressed by a key (a path, a name). */
export interface CheckpointStore {
  /** What the store is, for messages (`directory`, `memory`). */
  readonly kind: string;
  /** True when a checkpoint folder (or anything else) exists at `dir`. */
  exists(dir: string): Promise<boolean>;
  /** The bytes of `file` in folder `dir`, or undefined when there is no such file. */
  read(dir: string, file: string): Promise<Uint8Array | undefined>;
  /**
   * Writes `files` as folder `dir` in one step: all of them or none. An existing `dir`
   * is replaced only with `overwrite` (else a {@link CheckpointError}, and nothing is
   * written); on any failure the old folder, if any, is left as it was.
   */
  commit(dir: string, files: ReadonlyMap<string, Uint8Array>, options: { overwrite: boolean }): Promise<void>;
}

/** An in-memory store (browsers, tests): `folders` maps a key to its files. */
export interface MemoryCheckpointStore extends CheckpointStore {
  /** Folder key -> file name -> bytes. */
  readonly folders: Map<string, Map<string, Uint8Array>>;
}

/**
 * A store that keeps checkpoint folders in memory. Commits copy the bytes and swap
 * the whole folder at once.
 * @example
 * const store = memoryCheckpointStore();
 * await saveCheckpoint(store, 'step-10', { weights, optimizer, step: 10 });
 */
export function memoryCheckpointStore(): MemoryCheckpointStore {
  const folders = new Map<string, Map<string, Uint8Array>>();
  return {
    kind: 'memory',
    folders,
    async exists(dir) {
      return folders.has(dir);
    },
    async read(dir, file) {
      return folders.get(dir)?.get(file)?.slice();
    },
    async commit(dir, files, { overwrite }) {
      if (folders.has(dir) && !overwrite) throw new CheckpointError(`${dir}: a checkpoint already exists there (pass overwrite to replace it)`, dir);
      folders.set(dir, new Map([...files].map(([name, bytes]) => [name, bytes.slice()])));
    },
  };
}
