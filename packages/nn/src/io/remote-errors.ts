/**
 * Errors of remote loading (Hub repo ids and URL folders): each names the repo or URL
 * and the file, so a failed download says what to fix.
 */

/** The server answered, but not with the file: 404 (absent), 401/403 (private or gated), 5xx. */
export class RemoteFileError extends Error {
  constructor(
    /** `org/name@revision` or the folder URL. */
    readonly where: string,
    /** The file asked for, or '' for the repo itself. */
    readonly file: string,
    readonly status: number,
    detail: string,
  ) {
    super(`${where}: ${file ? `file '${file}'` : 'repository'} ${detail} (HTTP ${status})`);
    this.name = 'RemoteFileError';
  }
}

/** The request never got an answer (refused, reset, DNS, TLS): names the URL and the cause. */
export class NetworkError extends Error {
  constructor(
    readonly url: string,
    cause: unknown,
  ) {
    const why = cause instanceof Error ? ((cause.cause as Error | undefined)?.message ?? cause.message) : String(cause);
    super(`network request to ${url} failed: ${why}`, { cause });
    this.name = 'NetworkError';
  }
}

/** An offline load found the cache incomplete; `missing` lists what a download would fetch. */
export class OfflineCacheError extends Error {
  constructor(
    readonly where: string,
    readonly missing: string[],
  ) {
    super(`${where}: offline, and the cache lacks ${missing.map((f) => `'${f}'`).join(', ')} (run once online to fill the cache)`);
    this.name = 'OfflineCacheError';
  }
}
