/**
 * Where adapter files are read from and written to. These are structural: the
 * `ModelSource` / `WritableTarget` of `@webpeft/nn`'s checkpoint I/O satisfy them, and
 * {@link memoryFiles} gives an in-memory directory (browser downloads, tests).
 */

/** A readable directory of files (`name` is for error messages). */
export interface AdapterSource {
  readonly name: string;
  has(file: string): Promise<boolean>;
  readBytes(file: string): Promise<Uint8Array>;
  readText(file: string): Promise<string>;
}

/** A writable directory of files. */
export interface AdapterTarget {
  writeBytes(file: string, data: Uint8Array): Promise<void>;
  writeText(file: string, text: string): Promise<void>;
}

/**
 * An in-memory directory that is both a source and a target; `files` maps relative
 * paths (`adapter_model.safetensors`, `other/adapter_config.json`) to bytes.
 * @example const dir = memoryFiles(); await peft.saveAdapter(dir); await loadPeftModel(model, dir);
 */
export function memoryFiles(initial: Record<string, Uint8Array | string> = {}): AdapterSource & AdapterTarget & { files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  for (const [k, v] of Object.entries(initial)) files.set(k, typeof v === 'string' ? new TextEncoder().encode(v) : v);
  const read = (file: string): Uint8Array => {
    const b = files.get(file);
    if (!b) throw new Error(`memoryFiles: no file '${file}' (have: ${[...files.keys()].join(', ') || 'none'})`);
    return b;
  };
  return {
    name: 'memory',
    files,
    has: async (file) => files.has(file),
    readBytes: async (file) => read(file),
    readText: async (file) => new TextDecoder().decode(read(file)),
    writeBytes: async (file, data) => void files.set(file, data),
    writeText: async (file, text) => void files.set(file, new TextEncoder().encode(text)),
  };
}

/** `sub/file` or `file` when `sub` is empty. */
export function joinPath(sub: string, file: string): string {
  return sub ? `${sub.replace(/\/+$/, '')}/${file}` : file;
}
