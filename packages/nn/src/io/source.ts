/**
 * Where model files come from and where they go: a local directory (Node), files the
 * user picked (browser `File[]` / `FileList`), a base URL (`fetch`, both runtimes), or
 * an in-memory map. Loaders only see {@link ModelSource}, so the same code loads a model
 * from any of them.
 */
import { FILE_SYSTEM_AVAILABLE, fileExists, filePathOf, openFileRanges, readFileBytes, writeFileBytes } from '#fs-source';
import { type RandomAccessFile, blobFile, bytesFile } from './random-access.js';

/** A read-only set of model files addressed by relative name (`config.json`, `model.safetensors`). */
export interface ModelSource {
  /** Where the files come from, for error messages (a path, URL, `files` or `memory`). */
  readonly name: string;
  /** True when `file` exists in the source. */
  has(file: string): Promise<boolean>;
  /** The bytes of `file`; throws {@link MissingFileError} when absent. */
  readBytes(file: string): Promise<Uint8Array>;
  /** The UTF-8 text of `file`; throws {@link MissingFileError} when absent. */
  readText(file: string): Promise<string>;
  /**
   * `file` opened for reads of byte ranges, where the source can read parts of a file
   * (local directories, picked `File`s, in-memory bytes); throws {@link MissingFileError}
   * when absent. Absent on sources that can only read whole files (http(s) folders):
   * checkpoint loaders then read each file whole.
   */
  openFile?(file: string): Promise<RandomAccessFile>;
}

/** A place model files can be written to. */
export interface WritableTarget {
  writeBytes(file: string, data: Uint8Array): Promise<void>;
  writeText(file: string, text: string): Promise<void>;
}

/** A file a loader needs is not in its source. */
export class MissingFileError extends Error {
  constructor(
    readonly source: string,
    readonly file: string,
    detail = '',
  ) {
    super(`${source}: no file '${file}'${detail ? ` (${detail})` : ''}`);
    this.name = 'MissingFileError';
  }
}

/** Accepted inputs of {@link openSource}. */
export type SourceInput = string | URL | File[] | FileList | Record<string, ArrayBuffer | Uint8Array | string>;

/**
 * Opens model files from:
 * - a `string` path: a local directory (Node only);
 * - a `URL` or an `http(s)://` string: a base URL, files fetched relative to it (a
 *   `file:` URL is the local directory it names, Node only);
 * - `File[]` or a `FileList` (browser file picker; a directory selection is matched by
 *   path inside the chosen directory, a plain selection by file name);
 * - a `Record` of file name to bytes or text: in memory (tests, generated models).
 * @example
 * const source = openSource('./SmolLM-135M');
 * const config = JSON.parse(await source.readText('config.json'));
 */
export function openSource(input: SourceInput): ModelSource {
  if (input instanceof URL) return input.protocol === 'file:' ? directorySource(filePathOf(input)) : urlSource(input);
  if (typeof input === 'string') return /^https?:\/\//i.test(input) ? urlSource(new URL(input)) : directorySource(input);
  if (Array.isArray(input) || isFileList(input)) return fileListSource(Array.from(input as ArrayLike<File>));
  if (typeof input === 'object' && input !== null) return memorySource(input);
  throw new TypeError(`openSource: expected a directory path, URL, File[] or a map of files, got ${typeof input}`);
}

/**
 * A directory to write files into (Node). In a browser this throws; use
 * {@link memoryTarget} there and hand its files to the user.
 */
export function openTarget(dir: string): WritableTarget {
  if (!FILE_SYSTEM_AVAILABLE) {
    throw new Error(`openTarget('${dir}'): writing to local paths needs Node; in a browser use memoryTarget() and offer its files for download`);
  }
  const path = (file: string) => joinPath(dir, file);
  return {
    writeBytes: (file, data) => writeFileBytes(path(file), data),
    writeText: (file, text) => writeFileBytes(path(file), new TextEncoder().encode(text)),
  };
}

/** A target that keeps written files in memory (browsers, tests); `files` maps name to bytes. */
export function memoryTarget(): WritableTarget & { files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  return {
    files,
    async writeBytes(file, data) {
      files.set(file, data.slice());
    },
    async writeText(file, text) {
      files.set(file, new TextEncoder().encode(text));
    },
  };
}

/**
 * Adds `readText` and a uniform missing-file error to a byte reader, and `openFile` when
 * `ranges` can open a file for ranged reads.
 */
function makeSource(
  name: string,
  has: (file: string) => Promise<boolean>,
  read: (file: string) => Promise<Uint8Array | undefined>,
  ranges?: (file: string) => Promise<RandomAccessFile | undefined>,
): ModelSource {
  const readBytes = async (file: string): Promise<Uint8Array> => {
    const bytes = await read(file);
    if (bytes === undefined) throw new MissingFileError(name, file);
    return bytes;
  };
  const source: ModelSource = {
    name,
    has,
    readBytes,
    readText: async (file) => new TextDecoder().decode(await readBytes(file)),
  };
  if (ranges) {
    source.openFile = async (file) => {
      const opened = await ranges(file);
      if (opened === undefined) throw new MissingFileError(name, file);
      return opened;
    };
  }
  return source;
}

function directorySource(dir: string): ModelSource {
  if (!FILE_SYSTEM_AVAILABLE) {
    throw new Error(`openSource('${dir}'): local paths need Node; in a browser pass File objects (an <input type="file" webkitdirectory> selection), an http(s) URL, or an in-memory map of files`);
  }
  return makeSource(
    dir,
    (file) => fileExists(joinPath(dir, file)),
    async (file) => {
      const path = joinPath(dir, file);
      if (!(await fileExists(path))) return undefined;
      return readFileBytes(path);
    },
    async (file) => {
      const path = joinPath(dir, file);
      return (await fileExists(path)) ? openFileRanges(path) : undefined;
    },
  );
}

function urlSource(base: URL): ModelSource {
  // A base without a trailing slash would resolve 'config.json' next to, not inside, its last segment.
  const root = new URL(base.href.endsWith('/') ? base.href : `${base.href}/`);
  const urlOf = (file: string) => new URL(file, root);
  return makeSource(
    root.href,
    async (file) => {
      const res = await fetch(urlOf(file), { method: 'HEAD' });
      if (res.status === 405) return (await fetch(urlOf(file))).ok; // servers without HEAD
      return res.ok;
    },
    async (file) => {
      const res = await fetch(urlOf(file));
      if (res.status === 404) return undefined;
      if (!res.ok) throw new Error(`${root.href}: fetching '${file}' failed with HTTP ${res.status} ${res.statusText}`);
      return new Uint8Array(await res.arrayBuffer());
    },
  );
}

function fileListSource(files: File[]): ModelSource {
  const byName = new Map<string, File>();
  for (const f of files) {
    // A directory pick gives 'chosen-dir/sub/file': address it relative to the chosen directory.
    const rel = f.webkitRelativePath ? f.webkitRelativePath.split('/').slice(1).join('/') : f.name;
    byName.set(rel || f.name, f);
  }
  return makeSource(
    `files [${[...byName.keys()].join(', ')}]`,
    async (file) => byName.has(file),
    async (file) => {
      const f = byName.get(file);
      return f ? new Uint8Array(await f.arrayBuffer()) : undefined;
    },
    // A File is a Blob: each slice is read from disk when asked.
    async (file) => {
      const f = byName.get(file);
      return f ? blobFile(f) : undefined;
    },
  );
}

function memorySource(entries: Record<string, ArrayBuffer | Uint8Array | string>): ModelSource {
  const map = new Map(Object.entries(entries));
  const bytesOf = (file: string): Uint8Array | undefined => {
    const v = map.get(file);
    if (v === undefined) return undefined;
    if (typeof v === 'string') return new TextEncoder().encode(v);
    return v instanceof Uint8Array ? v : new Uint8Array(v);
  };
  return makeSource(
    'memory',
    async (file) => map.has(file),
    async (file) => bytesOf(file),
    async (file) => {
      const bytes = bytesOf(file);
      return bytes && bytesFile(bytes);
    },
  );
}

function isFileList(x: unknown): x is FileList {
  return typeof FileList !== 'undefined' && x instanceof FileList;
}

/** Joins with '/', which Node accepts on every platform (core code imports no `node:path`). */
function joinPath(dir: string, file: string): string {
  return dir === '' ? file : `${dir.replace(/[\\/]+$/, '')}/${file}`;
}
