/**
 * A loopback stand-in for the Hugging Face Hub, for Node tests: repos served in the Hub's
 * URL layout (`GET /api/models/{repo}/revision/{rev}`, `POST /api/models/{repo}/paths-info/{rev}`,
 * `GET /{repo}/resolve/{rev}/{file}` with `Range`), and plain folders (`GET /plain/{folder}/{file}`).
 * Every request is recorded, so a test can assert that a cached load made none.
 */
import { createHash } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Files of one repo or folder: name -> bytes. */
export type ServedFiles = Record<string, Uint8Array>;

/** A running server; `close()` stops it. */
export interface HubServer {
  url: string;
  /** `METHOD path` of every request so far. */
  requests: string[];
  /** Repos by id, folders by name; tests may add or change entries between loads. */
  repos: Map<string, ServedFiles>;
  folders: Map<string, ServedFiles>;
  /** When set, the next GET of a file with this name sends half its bytes and drops the connection. */
  breakNext: { file: string } | null;
  close(): Promise<void>;
}

/** The commit every repo of the server is at (any 40 hex digits do). */
export const COMMIT = '0123456789abcdef0123456789abcdef01234567';

export async function startHubServer(): Promise<HubServer> {
  const state = { requests: [] as string[], repos: new Map<string, ServedFiles>(), folders: new Map<string, ServedFiles>(), breakNext: null as { file: string } | null };
  const server = createServer((req, res) => {
    state.requests.push(`${req.method} ${req.url}`);
    handle(state, req, res).catch((e: unknown) => {
      res.statusCode = 500;
      res.end(String(e));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

type State = Pick<HubServer, 'requests' | 'repos' | 'folders' | 'breakNext'>;

async function handle(state: State, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = decodeURIComponent((req.url ?? '').split('?')[0]);
  let m = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(path);
  if (m && req.method === 'GET') {
    const files = state.repos.get(m[1]);
    if (!files) return json(res, 404, { error: 'Repository not found' });
    return json(res, 200, { _id: 'x', id: m[1], sha: COMMIT, private: false, lastModified: '2026-01-01T00:00:00.000Z', siblings: Object.keys(files).map((rfilename) => ({ rfilename })) });
  }
  m = /^\/api\/models\/(.+)\/paths-info\/([^/]+)$/.exec(path);
  if (m && req.method === 'POST') {
    const files = state.repos.get(m[1]);
    if (!files) return json(res, 404, { error: 'Repository not found' });
    const body = JSON.parse(await readBody(req)) as { paths: string[] };
    const infos = body.paths
      .filter((p) => p in files)
      .map((p) => ({ path: p, type: 'file', oid: sha1(files[p]), size: files[p].byteLength, lastCommit: { id: COMMIT, title: 'init', date: '2026-01-01T00:00:00.000Z' } }));
    return json(res, 200, infos);
  }
  m = /^\/(.+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
  if (m) return serveFile(state, req, res, state.repos.get(m[1]), m[3], true);
  m = /^\/plain\/([^/]+)\/(.+)$/.exec(path);
  if (m) return serveFile(state, req, res, state.folders.get(m[1]), m[2], false);
  res.statusCode = 404;
  res.end('not found');
}

function serveFile(state: State, req: IncomingMessage, res: ServerResponse, files: ServedFiles | undefined, name: string, hub: boolean): void {
  const bytes = files?.[name];
  if (!bytes) {
    res.statusCode = 404;
    if (hub) res.setHeader('X-Error-Code', files ? 'EntryNotFound' : 'RepoNotFound');
    res.end('not found');
    return;
  }
  res.setHeader('ETag', `"${sha1(bytes)}"`);
  res.setHeader('Accept-Ranges', 'bytes');
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]);
    const end = Math.min(Number(range[2]), bytes.byteLength - 1);
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${end}/${bytes.byteLength}`);
    res.setHeader('Content-Length', String(end - start + 1));
    res.end(bytes.subarray(start, end + 1));
    return;
  }
  res.statusCode = 200;
  res.setHeader('Content-Length', String(bytes.byteLength));
  if (state.breakNext?.file === name) {
    state.breakNext = null;
    res.write(bytes.subarray(0, bytes.byteLength >> 1), () => res.destroy());
    return;
  }
  res.end(bytes);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    req.on('data', (c: Buffer) => (s += c.toString('utf8')));
    req.on('end', () => resolve(s));
    req.on('error', reject);
  });
}

function sha1(bytes: Uint8Array): string {
  return createHash('sha1').update(bytes).digest('hex');
}
