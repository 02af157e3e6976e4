/**
 * Checkpoint folders in a local directory (Node), selected by the `#checkpoint-fs`
 * import condition: the only module of this package that imports `node:` modules.
 * A commit writes every file (flushed to disk) into a temporary sibling folder, then
 * renames it into place, so a crash mid-save leaves the old checkpoint or none, never
 * half of one.
 */
import { lstat, mkdir, mkdtemp, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { CheckpointError } from './errors.js';
import type { CheckpointStore } from './store.js';

/** True where this runtime has local directories. */
export const FILE_SYSTEM_AVAILABLE = true;

const code = (e: unknown) => (e as NodeJS.ErrnoException).code;

/**
 * Creates `dir` and its missing parents one level at a time. Not `mkdir -p`: Node's
 * recursive mkdir never returns for a path under a pseudo file system such as `/proc`
 * (`/proc/x` fails with ENOENT, which it retries); one level at a time fails at once.
 */
async function makeDirs(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let p = resolve(dir); ; ) {
    const st = await stat(p).catch((e: unknown) => {
      if (code(e) === 'ENOENT') return null;
      throw e;
    });
    if (st) {
      if (!st.isDirectory()) throw new Error(`${p} is not a directory`);
      break;
    }
    missing.push(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  for (const p of missing.reverse()) await mkdir(p);
}

/**
 * A store whose keys are directory paths (relative to the working directory or absolute).
 * @example await saveCheckpoint(fileCheckpointStore(), 'out/checkpoint-100', state);
 */
export function fileCheckpointStore(): CheckpointStore {
  return {
    kind: 'directory',
    async exists(dir) {
      return (await lstat(dir).catch(() => null)) !== null;
    },
    async read(dir, file) {
      try {
        const buf = await readFile(join(dir, file));
        return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      } catch (e) {
        if (code(e) === 'ENOENT') return undefined;
        if (code(e) === 'ENOTDIR') throw new CheckpointError(`${dir}: not a directory`, dir);
        throw new CheckpointError(`${join(dir, file)}: cannot read (${(e as Error).message})`, dir);
      }
    },
    async commit(dir, files, { overwrite }) {
      const target = resolve(dir);
      const existing = await lstat(target).catch(() => null);
      if (existing && !existing.isDirectory()) throw new CheckpointError(`${dir}: exists and is not a directory; a checkpoint is a folder`, dir);
      if (existing && !overwrite) throw new CheckpointError(`${dir}: a checkpoint already exists there (pass overwrite to replace it)`, dir);
      const parent = dirname(target);
      try {
        await makeDirs(parent);
      } catch (e) {
        throw new CheckpointError(`${dir}: cannot create its parent folder (${(e as Error).message})`, dir);
      }
      const tmp = await mkdtemp(join(parent, `.${basename(target)}.tmp-`)).catch((e: unknown) => {
        throw new CheckpointError(`${dir}: cannot write next to it (${(e as Error).message})`, dir);
      });
      const old = `${tmp}.old`;
      let movedAside = false;
      try {
        for (const [name, bytes] of files) {
          const fh = await open(join(tmp, name), 'wx');
          try {
            await fh.writeFile(bytes);
            await fh.sync();
          } finally {
            await fh.close();
          }
        }
        if (existing) {
          // The old folder moves aside first: a crash between the renames leaves both
          // as hidden siblings and `dir` absent, never a mix of the two; a failure
          // there moves it back.
          await rename(target, old);
          movedAside = true;
          await rename(tmp, target);
          movedAside = false;
          await rm(old, { recursive: true, force: true });
        } else {
          await rename(tmp, target);
        }
      } catch (e) {
        await rm(tmp, { recursive: true, force: true });
        if (movedAside) await rename(old, target).catch(() => undefined);
        if (e instanceof CheckpointError) throw e;
        throw new CheckpointError(`${dir}: saving failed (${(e as Error).message}); nothing was replaced`, dir);
      }
    },
  };
}
