/**
 * A config file (`config.json`, `adapter_config.json`) or a config object that is
 * not valid: wrong JSON, a field of the wrong type or out of range, or a key in the
 * wrong naming. `file` names the file when the config came from one, `field` the key.
 */
export class ConfigError extends Error {
  constructor(
    message: string,
    /** The file the config was read from (e.g. `./model/config.json`), when known. */
    readonly file?: string,
    /** The offending key (`rope_theta`, `lora_alpha`, `rope_parameters.factor`), when one is to blame. */
    readonly field?: string,
  ) {
    super(file === undefined ? message : `${file}: ${message}`);
    this.name = 'ConfigError';
  }

  /** This error attributed to `file` (a no-op when it already names one). */
  inFile(file: string): ConfigError {
    if (this.file !== undefined) return this;
    const e = new ConfigError(this.message, file, this.field);
    e.stack = `${e.name}: ${e.message}\n${(this.stack ?? '').split('\n').slice(1).join('\n')}`;
    return e;
  }
}

/**
 * Parses the text of a JSON config file into an object, or throws a {@link ConfigError}
 * naming the file (invalid JSON, or JSON that is not an object).
 * @example const raw = parseConfigJson(await source.readText('config.json'), `${source.name}/config.json`);
 */
export function parseConfigJson(text: string, file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`not valid JSON (${(e as Error).message})`, file);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`must hold a JSON object, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`, file);
  }
  return value as Record<string, unknown>;
}

/** Rethrows `e` attributed to `file` when it is a {@link ConfigError}; other errors pass unchanged. */
export function inConfigFile<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw e instanceof ConfigError ? e.inFile(file) : e;
  }
}
