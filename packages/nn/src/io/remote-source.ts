/**
 * Model files from the Hugging Face Hub (`org/name` at a revision) or an http(s) folder,
 * downloaded once into a cache (`#remote-store`: a cache directory in Node, the Cache API
 * in browsers) and read from there. A snapshot whose files are all cached, or known to be
 * absent upstream, is opened with no network request at all.
 */
import { HubApiError, modelInfo } from '@huggingface/hub';
import { defaultCacheDir, remoteStore } from '#remote-store';
import { parseIndex } from './checkpoint.js';
import { NetworkError, OfflineCacheError, RemoteFileError } from './remote-errors.js';
import type { DownloadProgress, RemoteStore, SnapshotKey } from './remote-store.js';
import type { ModelSource } from './source.js';

/** Options of remote loading ({@link openHubSource}, {@link openUrlSource}, `fromPretrained`). */
export interface RemoteOptions {
  /** Branch, tag or commit of a Hub repo (default `main`). */
  revision?: string;
  /** Hub endpoint (default `https://huggingface.co`; tests point it at a local server). */
  hubUrl?: string;
  /** Node: cache directory (default `HF_HUB_CACHE`, `HF_HOME/hub` or `~/.cache/huggingface/hub`); browser: Cache API cache name. */
  cacheDir?: string;
  /** Token for private or gated repos (sent as `Authorization: Bearer`). */
  accessToken?: string;
  /** Never touch the network: load from the cache or fail naming what is missing. */
  offline?: boolean;
  /** Bytes done/total per file while downloading. */
  onProgress?: (progress: DownloadProgress) => void;
  /** The fetch to use (default the global one). */
  fetch?: typeof globalThis.fetch;
}

/** Files read besides the weights when present upstream. */
export const OPTIONAL_MODEL_FILES: readonly string[] = [
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
];
const CONFIG = 'config.json';
const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';

const REPO_ID = /^[A-Za-z0-9][\w.-]{0,95}(\/[\w.-]{1,96})?$/;

/** True when `s` reads as a Hub repo id (`gpt2`, `org/name`), not a path or a URL. */
export function isHubRepoId(s: string): boolean {
  return REPO_ID.test(s) && !s.includes('..') && !s.includes('--') && !s.endsWith('.');
}

/**
 * Opens Hub repo `repo` at `options.revision`: resolves the revision to a commit, then
 * downloads `config.json`, the safetensors weights (single file, or index and shards) and
 * the {@link OPTIONAL_MODEL_FILES} it has, into the cache. A second call finds the
 * revision's commit and every file in the cache and makes no request (a moved branch is
 * not noticed until the cache is cleared or a commit is asked for).
 * @example
 * const source = await openHubSource('HuggingFaceTB/SmolLM2-135M', { onProgress: (p) => console.log(p.file, p.loaded, p.total) });
 */
export async function openHubSource(repo: string, options: RemoteOptions = {}): Promise<ModelSource> {
  if (!isHubRepoId(repo)) throw new Error(`openHubSource: '${repo}' is not a Hub repo id (expected 'name' or 'org/name')`);
  const revision = options.revision ?? 'main';
  const hubUrl = (options.hubUrl ?? 'https://huggingface.co').replace(/\/+$/, '');
  const store = remoteStore(options.cacheDir);
  const where = `${repo}@${revision}`;
  const keyOf = (commit: string): SnapshotKey => ({ kind: 'hub', repo, commit, hubUrl, ...(options.accessToken ? { accessToken: options.accessToken } : {}) });
  const cachedCommit = /^[0-9a-f]{40}$/.test(revision) ? revision : await store.readRef(repo, revision);
  if (cachedCommit) {
    const missing = await missingFromCache(store, keyOf(cachedCommit));
    if (missing.length === 0) return store.source(keyOf(cachedCommit));
    if (options.offline) throw new OfflineCacheError(where, missing);
  } else if (options.offline) {
    throw new OfflineCacheError(where, [`the commit of revision '${revision}' (never downloaded into ${options.cacheDir ?? defaultCacheDir()})`]);
  }
  const fetchFn = guardedFetch(options.fetch ?? globalThis.fetch);
  let info: { sha: string; filePaths: string[] };
  try {
    info = await modelInfo({ name: repo, revision, hubUrl, fetch: fetchFn, additionalFields: ['sha', 'filePaths'], ...(options.accessToken ? { accessToken: options.accessToken } : {}) });
  } catch (e) {
    if (e instanceof HubApiError) {
      const why = e.statusCode === 404 ? `not found at ${hubUrl} (or revision '${revision}' does not exist)` : e.statusCode === 401 || e.statusCode === 403 ? 'is private or gated: pass accessToken' : `could not be read: ${e.message}`;
      throw new RemoteFileError(where, '', e.statusCode, why);
    }
    throw e;
  }
  const listed = new Set(info.filePaths);
  const key = keyOf(info.sha);
  // Recorded first (as huggingface_hub does), so an interrupted download can say offline what is missing.
  await store.writeRef(repo, revision, info.sha);
  const get = async (file: string, required: boolean): Promise<boolean> => {
    if (!listed.has(file)) {
      if (required) throw new RemoteFileError(where, file, 404, `is not in the repository (files: ${[...listed].slice(0, 20).join(', ')})`);
      await store.markMissing(key, file);
      return false;
    }
    if (await store.source(key).has(file)) return true;
    const progress = progressFetch(fetchFn, file, options.onProgress);
    const resolveUrl = `${hubUrl}/${repo}/resolve/${info.sha}/${file}`;
    if (!(await transfer(() => store.download(key, file, progress.fetch), resolveUrl))) throw new RemoteFileError(where, file, 404, 'not found');
    progress.finish();
    return true;
  };
  await fetchSnapshot(key, store, get, listed.has(SINGLE) ? SINGLE : listed.has(INDEX) ? INDEX : null, where);
  return store.source(key);
}

/**
 * Opens an http(s) folder of model files through the cache: the first call downloads
 * `config.json`, the weights and the {@link OPTIONAL_MODEL_FILES} the server has (404
 * means absent and is remembered); later calls read the cache with no request.
 * @example const source = await openUrlSource('https://example.com/models/tiny/');
 */
export async function openUrlSource(url: string | URL, options: RemoteOptions = {}): Promise<ModelSource> {
  const href = typeof url === 'string' ? url : url.href;
  const base = href.endsWith('/') ? href : `${href}/`;
  const store = remoteStore(options.cacheDir);
  const key: SnapshotKey = { kind: 'url', base };
  const missing = await missingFromCache(store, key);
  if (missing.length === 0) return store.source(key);
  if (options.offline) throw new OfflineCacheError(base, missing);
  const fetchFn = guardedFetch(options.fetch ?? globalThis.fetch);
  const get = async (file: string, required: boolean): Promise<boolean> => {
    const source = store.source(key);
    if (await source.has(file)) return true;
    if (await store.knownMissing(key, file)) return false;
    const progress = progressFetch(fetchFn, file, options.onProgress);
    const found = await transfer(() => store.download(key, file, progress.fetch), new URL(file, base).href);
    if (!found) {
      if (required) throw new RemoteFileError(base, file, 404, `not found at ${new URL(file, base).href}`);
      await store.markMissing(key, file);
      return false;
    }
    progress.finish();
    return true;
  };
  await get(CONFIG, true); // first: a folder that is not a model fails before any weights move
  const single = (await get(SINGLE, false)) ? SINGLE : (await get(INDEX, false)) ? INDEX : null;
  await fetchSnapshot(key, store, get, single, base);
  return store.source(key);
}

/** Downloads config, weights (and shards) and optional files through `get`. */
async function fetchSnapshot(
  key: SnapshotKey,
  store: RemoteStore,
  get: (file: string, required: boolean) => Promise<boolean>,
  weights: string | null,
  where: string,
): Promise<void> {
  await get(CONFIG, true);
  if (weights === null) throw new RemoteFileError(where, SINGLE, 404, `not found, nor a sharded index '${INDEX}' (only safetensors checkpoints are supported)`);
  await get(weights, true);
  if (weights === INDEX) {
    for (const shard of await shardsOf(store.source(key))) await get(shard, true);
  }
  for (const file of OPTIONAL_MODEL_FILES) await get(file, false);
}

/** What a snapshot still needs: files neither cached nor known absent, and shards of a cached index. */
async function missingFromCache(store: RemoteStore, key: SnapshotKey): Promise<string[]> {
  const source = store.source(key);
  const missing: string[] = [];
  if (!(await source.has(CONFIG))) missing.push(CONFIG);
  if (await source.has(SINGLE)) {
    // complete
  } else if (await source.has(INDEX)) {
    for (const shard of await shardsOf(source)) if (!(await source.has(shard))) missing.push(shard);
  } else missing.push(`${SINGLE} (or ${INDEX})`);
  for (const file of OPTIONAL_MODEL_FILES) if (!(await source.has(file)) && !(await store.knownMissing(key, file))) missing.push(file);
  return missing;
}

/** Shard names of the cached index; names that would leave the folder (`..`, absolute) are refused. */
async function shardsOf(source: ModelSource): Promise<string[]> {
  const where = `${source.name}/${INDEX}`;
  const shards = [...new Set(Object.values(parseIndex(await source.readText(INDEX), where)))];
  for (const shard of shards) {
    if (!/^[\w.-]+(\/[\w.-]+)*$/.test(shard) || shard.split('/').some((part) => part === '..' || part === '.')) {
      throw new Error(`${where}: shard name '${shard}' is not a relative file name inside the model folder`);
    }
  }
  return shards;
}

/** Runs a download; a failure that is not already one of ours (a body cut off) becomes a {@link NetworkError} naming `url`. */
async function transfer(run: () => Promise<boolean>, url: string): Promise<boolean> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof RemoteFileError || e instanceof NetworkError) throw e;
    throw new NetworkError(url, e);
  }
}

/** `fetch` whose network failures name the URL ({@link NetworkError}). */
function guardedFetch(fetchFn: typeof globalThis.fetch): typeof globalThis.fetch {
  return async (input, init) => {
    try {
      return await fetchFn(input, init);
    } catch (e) {
      throw new NetworkError(input instanceof Request ? input.url : String(input), e);
    }
  };
}

/**
 * A `fetch` for downloading `file` that reports the bytes of its full-body answer (GET
 * of a URL ending in the file's name; range probes and API calls are not counted) as they
 * arrive, and `finish()` that reports it done. A body that breaks off mid-way names the URL.
 */
function progressFetch(fetchFn: typeof globalThis.fetch, file: string, onProgress: RemoteOptions['onProgress']): { fetch: typeof globalThis.fetch; finish(): void } {
  let loaded = 0;
  let total: number | null = null;
  const counting: typeof globalThis.fetch = async (input, init) => {
    const res = await fetchFn(input, init);
    const url = input instanceof Request ? input.url : String(input);
    const path = url.split(/[?#]/)[0];
    if (res.status !== 200 || !res.body || (init?.method ?? 'GET') !== 'GET' || !path.endsWith(`/${file}`)) return res;
    const length = res.headers.get('content-length');
    total = length !== null && Number.isFinite(Number(length)) ? Number(length) : null;
    loaded = 0;
    const expected = total;
    const counted = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          loaded += chunk.byteLength;
          onProgress?.({ file, loaded, total: expected, done: false });
          controller.enqueue(chunk);
        },
        flush() {
          if (expected !== null && loaded !== expected) throw new NetworkError(url, new Error(`body ended after ${loaded} of ${expected} bytes`));
        },
      }),
    );
    return new Response(counted, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
  return { fetch: counting, finish: () => onProgress?.({ file, loaded, total: total ?? loaded, done: true }) };
}
