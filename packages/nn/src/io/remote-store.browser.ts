/**
 * Remote-file cache for browsers, selected by the `#remote-store` import condition: the
 * Cache API (cache `webpeft-models`), keyed by each file's URL at its commit (Hub) or in
 * its folder (URL). An entry is put only after its whole body arrived, so an interrupted
 * download leaves nothing behind.
 */
import { blobFile } from './random-access.js';
import { RemoteFileError } from './remote-errors.js';
import type { RemoteStore, SnapshotKey } from './remote-store.js';
import { MissingFileError, type ModelSource } from './source.js';

const CACHE_NAME = 'webpeft-models';
/** Header of the entries that record a file as absent upstream. */
const NO_EXIST = 'x-webpeft-no-exist';

/** The Cache API has no directory: the name of the cache is reported instead. */
export function defaultCacheDir(): string {
  return `Cache API '${CACHE_NAME}'`;
}

/** The browser store; `cacheName` picks another Cache API cache (default `webpeft-models`). */
export function remoteStore(cacheName: string = CACHE_NAME): RemoteStore {
  if (typeof caches === 'undefined') throw new Error('remote loading with a cache needs the Cache API (a secure context: https or localhost)');
  const open = () => caches.open(cacheName);
  const urlOf = (key: SnapshotKey, file: string) =>
    key.kind === 'hub' ? `${key.hubUrl.replace(/\/+$/, '')}/${key.repo}/resolve/${key.commit}/${file}` : new URL(file, key.base).href;
  const refUrl = (repo: string, revision: string) => `https://webpeft.invalid/refs/${repo}/${encodeURIComponent(revision)}`;
  return {
    async readRef(repo, revision) {
      const res = await (await open()).match(refUrl(repo, revision));
      const commit = res ? (await res.text()).trim() : '';
      return /^[0-9a-f]{40}$/.test(commit) ? commit : undefined;
    },
    async writeRef(repo, revision, commit) {
      await (await open()).put(refUrl(repo, revision), new Response(commit));
    },
    source: (key) => cachedSource(key, open, urlOf),
    async knownMissing(key, file) {
      const res = await (await open()).match(urlOf(key, file));
      return res?.headers.get(NO_EXIST) === '1';
    },
    async markMissing(key, file) {
      await (await open()).put(urlOf(key, file), new Response('', { headers: { [NO_EXIST]: '1' } }));
    },
    async download(key, file, fetchFn) {
      const url = urlOf(key, file);
      const headers: Record<string, string> = key.kind === 'hub' && key.accessToken ? { Authorization: `Bearer ${key.accessToken}` } : {};
      const res = await fetchFn(url, { headers });
      if (res.status === 404) return false;
      const where = key.kind === 'hub' ? `${key.repo}@${key.commit}` : key.base;
      if (!res.ok) throw new RemoteFileError(where, file, res.status, `could not be downloaded from ${url}: ${res.statusText}`);
      const bytes = new Uint8Array(await res.arrayBuffer()); // the whole body, before anything is cached
      await (await open()).put(url, new Response(bytes, { headers: { 'content-length': String(bytes.byteLength) } }));
      return true;
    },
  };
}

/** A source over the cached entries of one snapshot (read on demand, nothing held in memory). */
function cachedSource(key: SnapshotKey, open: () => Promise<Cache>, urlOf: (key: SnapshotKey, file: string) => string): ModelSource {
  const name = key.kind === 'hub' ? `${key.repo}@${key.commit} (Cache API)` : `${key.base} (Cache API)`;
  const entry = async (file: string): Promise<Response | undefined> => {
    const res = await (await open()).match(urlOf(key, file));
    return res && res.headers.get(NO_EXIST) !== '1' ? res : undefined;
  };
  const readBytes = async (file: string): Promise<Uint8Array> => {
    const res = await entry(file);
    if (!res) throw new MissingFileError(name, file);
    return new Uint8Array(await res.arrayBuffer());
  };
  return {
    name,
    has: async (file) => (await entry(file)) !== undefined,
    readBytes,
    readText: async (file) => new TextDecoder().decode(await readBytes(file)),
    // A cached body as a Blob: slices are read from the cache's storage when asked.
    openFile: async (file) => {
      const res = await entry(file);
      if (!res) throw new MissingFileError(name, file);
      return blobFile(await res.blob());
    },
  };
}
