/**
 * What remote loading needs from the runtime: where downloaded files are kept. Node keeps
 * them in a cache directory (Hugging Face's layout for Hub repos), browsers in the Cache
 * API; `#remote-store` picks the implementation by import condition.
 */
import type { ModelSource } from './source.js';

/** One cached snapshot: a Hub repo at a commit, or a URL folder. */
export type SnapshotKey =
  | { kind: 'hub'; repo: string; commit: string; hubUrl: string; accessToken?: string }
  | { kind: 'url'; base: string };

/** Per-file download progress: bytes received so far and the total when the server says it. */
export interface DownloadProgress {
  file: string;
  loaded: number;
  /** From `Content-Length`; null when the server did not say. */
  total: number | null;
  /** True once the file is complete and in the cache. */
  done: boolean;
}

/** A cache of downloaded snapshots (see the module comment). */
export interface RemoteStore {
  /** The commit `revision` of `repo` pointed to when it was last resolved, if cached. */
  readRef(repo: string, revision: string): Promise<string | undefined>;
  /** Records that `revision` of `repo` is `commit`. */
  writeRef(repo: string, revision: string, commit: string): Promise<void>;
  /** The cached files of a snapshot (files never downloaded read as absent). */
  source(key: SnapshotKey): ModelSource;
  /** True when a previous download found `file` absent upstream (Hugging Face's `.no_exist`). */
  knownMissing(key: SnapshotKey, file: string): Promise<boolean>;
  /** Records that `file` is absent upstream. */
  markMissing(key: SnapshotKey, file: string): Promise<void>;
  /**
   * Downloads `file` into the cache with `fetch`; the entry appears only once complete (a
   * failed transfer leaves no entry). Resolves false when the server says it does not exist.
   */
  download(key: SnapshotKey, file: string, fetch: typeof globalThis.fetch): Promise<boolean>;
}
