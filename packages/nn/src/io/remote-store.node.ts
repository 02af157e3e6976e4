/**
 * Remote-file cache for Node, selected by the `#remote-store` import condition. Hub repos
 * live in Hugging Face's cache layout (`models--org--name/{blobs,snapshots,refs,.no_exist}`,
 * written by `@huggingface/hub`'s `downloadFileToCacheDir`, readable by transformers);
 * URL folders live beside them under `.webpeft-urls/`.
 */
import { createWriteStream } from 'node:fs';
import { access, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { HubApiError, downloadFileToCacheDir, getHFHubCachePath, getRepoFolderName } from '@huggingface/hub';
import { RemoteFileError } from './remote-errors.js';
import type { RemoteStore, SnapshotKey } from './remote-store.js';
import { openSource } from './source.js';

/** The default cache directory: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub` (as `@huggingface/hub`). */
export function defaultCacheDir(): string {
  return getHFHubCachePath();
}

/** The Node store rooted at `cacheDir` (default {@link defaultCacheDir}). */
export function remoteStore(cacheDir: string = defaultCacheDir()): RemoteStore {
  const repoDir = (repo: string) => join(cacheDir, getRepoFolderName({ type: 'model', name: repo }));
  const folderOf = (key: SnapshotKey) => (key.kind === 'hub' ? join(repoDir(key.repo), 'snapshots', key.commit) : join(cacheDir, '.webpeft-urls', urlFolderName(key.base)));
  const missingMarker = (key: SnapshotKey, file: string) =>
    key.kind === 'hub' ? join(repoDir(key.repo), '.no_exist', key.commit, file) : join(folderOf(key), '.no_exist', file);
  return {
    async readRef(repo, revision) {
      try {
        const commit = (await readFile(join(repoDir(repo), 'refs', revision), 'utf8')).trim();
        return /^[0-9a-f]{40}$/.test(commit) ? commit : undefined;
      } catch {
        return undefined;
      }
    },
    async writeRef(repo, revision, commit) {
      const path = join(repoDir(repo), 'refs', revision);
      await mkdir(dirname(path), { recursive: true });
      await atomicWrite(path, new TextEncoder().encode(commit));
    },
    source: (key) => openSource(folderOf(key)),
    knownMissing: (key, file) => exists(missingMarker(key, file)),
    async markMissing(key, file) {
      const path = missingMarker(key, file);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, '');
    },
    async download(key, file, fetchFn) {
      if (key.kind === 'hub') {
        try {
          await downloadFileToCacheDir({
            repo: { type: 'model', name: key.repo },
            path: file,
            revision: key.commit,
            hubUrl: key.hubUrl,
            cacheDir,
            fetch: fetchFn,
            ...(key.accessToken ? { accessToken: key.accessToken } : {}),
          });
        } catch (e) {
          if (e instanceof HubApiError) throw new RemoteFileError(`${key.repo}@${key.commit}`, file, e.statusCode, 'could not be downloaded');
          throw e;
        }
        return true;
      }
      const url = new URL(file, key.base).href;
      const res = await fetchFn(url);
      if (res.status === 404) return false;
      if (!res.ok || !res.body) throw new RemoteFileError(key.base, file, res.status, `could not be downloaded from ${url}: ${res.statusText}`);
      const path = join(folderOf(key), file);
      await mkdir(dirname(path), { recursive: true });
      const partial = `${path}.incomplete-${process.pid}-${Date.now()}`;
      try {
        await pipeline(Readable.fromWeb(res.body as NodeReadableStream), createWriteStream(partial));
        await rename(partial, path);
      } catch (e) {
        await rm(partial, { force: true });
        throw e;
      }
      return true;
    },
  };
}

/** A readable, collision-free folder name for a URL folder: sanitized URL plus a short hash. */
function urlFolderName(base: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < base.length; i++) h = Math.imul(h ^ base.charCodeAt(i), 0x01000193) >>> 0;
  return `${base.replace(/^https?:\/\//, '').replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80)}-${h.toString(16).padStart(8, '0')}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Writes through a temporary file and a rename, so a reader never sees half a file. */
async function atomicWrite(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}
