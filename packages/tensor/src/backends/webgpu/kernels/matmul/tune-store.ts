/**
 * Persistence of the autotuner's choices: a JSON file in Node (`matmul-tune.json` in the
 * cache directory), `localStorage` in browsers that have it, else nothing. The file
 * holds every adapter's choices, so machines with several adapters share one file.
 */

/** File name of the persisted choices inside the cache directory. */
export const TUNE_FILE = 'matmul-tune.json';
/** `localStorage` key of the persisted choices in browsers. */
export const TUNE_STORAGE_KEY = 'webpeft:matmul-tune';

/** Persisted layout: `adapters[adapter key][shape class] = config id`. */
interface TuneFile {
  version: 1;
  adapters: Record<string, Record<string, string>>;
}

type Fs = typeof import('node:fs/promises');

/** Node's `fs/promises`, or null outside Node (loaded lazily so browser bundles never see it). */
async function nodeFs(): Promise<Fs | null> {
  if (typeof process === 'undefined' || !process.versions?.node) return null;
  const spec = 'node:fs/promises';
  return (await import(/* @vite-ignore */ spec)) as Fs;
}

/** Where choices persist: a Node directory, the browser's storage, or nowhere. */
export type TuneStoreTarget = { kind: 'file'; dir: string } | { kind: 'local-storage' } | { kind: 'none' };

/** Resolves the target from the option (`undefined`: the environment's default, `null`: none). */
export function tuneStoreTarget(cacheDir: string | null | undefined): TuneStoreTarget {
  if (cacheDir === null) return { kind: 'none' };
  const isNode = typeof process !== 'undefined' && !!process.versions?.node;
  if (isNode) {
    const dir = cacheDir ?? process.env.WEBPEFT_MATMUL_TUNE_DIR;
    return dir ? { kind: 'file', dir } : { kind: 'none' };
  }
  const ls = (globalThis as { localStorage?: Storage }).localStorage;
  return ls ? { kind: 'local-storage' } : { kind: 'none' };
}

function parse(text: string, where: string): TuneFile {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`matmul autotune: ${where} is not JSON (${(e as Error).message}); delete it or fix it`);
  }
  const f = v as Partial<TuneFile>;
  if (typeof f !== 'object' || f === null || f.version !== 1 || typeof f.adapters !== 'object' || f.adapters === null) {
    throw new Error(`matmul autotune: ${where} is not a version-1 tuning file ({ version: 1, adapters: {...} }); delete it or fix it`);
  }
  return f as TuneFile;
}

async function readAll(target: TuneStoreTarget): Promise<TuneFile> {
  const empty: TuneFile = { version: 1, adapters: {} };
  if (target.kind === 'none') return empty;
  if (target.kind === 'local-storage') {
    const text = globalThis.localStorage.getItem(TUNE_STORAGE_KEY);
    return text === null ? empty : parse(text, `localStorage['${TUNE_STORAGE_KEY}']`);
  }
  const fs = (await nodeFs())!;
  const path = `${target.dir}/${TUNE_FILE}`;
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (e) {
    // No file yet is the first run; anything else (permissions) is the user's to fix.
    if ((e as { code?: string }).code === 'ENOENT') return empty;
    throw new Error(`matmul autotune: cannot read ${path}: ${(e as Error).message}`);
  }
  return parse(text, path);
}

/** The persisted choices of one adapter (empty when nothing is stored). */
export async function loadChoices(target: TuneStoreTarget, adapter: string): Promise<Record<string, string>> {
  return (await readAll(target)).adapters[adapter] ?? {};
}

/** Stores one adapter's choices, keeping the other adapters' (the file is replaced atomically). */
export async function saveChoices(target: TuneStoreTarget, adapter: string, entries: Record<string, string>): Promise<void> {
  if (target.kind === 'none') return;
  const all = await readAll(target);
  all.adapters[adapter] = { ...all.adapters[adapter], ...entries };
  const text = `${JSON.stringify(all, null, 2)}\n`;
  if (target.kind === 'local-storage') {
    globalThis.localStorage.setItem(TUNE_STORAGE_KEY, text);
    return;
  }
  const fs = (await nodeFs())!;
  await fs.mkdir(target.dir, { recursive: true });
  const path = `${target.dir}/${TUNE_FILE}`;
  const tmp = `${path}.${process.pid}.tmp`;
  await fs.writeFile(tmp, text, 'utf8');
  await fs.rename(tmp, path);
}
