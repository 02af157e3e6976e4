/**
 * Typed reads of `adapter_config.json` fields. PEFT's configs are dataclasses that
 * check few types, so a wrong type there surfaces late (`'int' object is not
 * iterable`) or silently (`"false"` is truthy). Here every field is checked when the
 * file is read, and a bad one throws a `ConfigError` naming the field (the loader adds
 * the file). Unknown keys are ignored, as PEFT ignores them.
 */
import { ConfigError, showValue } from '@webpeft/nn';

/** Reads the fields of one `adapter_config.json` object for method `peftType`. */
export class AdapterJson {
  constructor(
    /** The parsed file. */
    readonly json: Record<string, unknown>,
    /** The method, for messages. */
    readonly peftType: string,
  ) {}

  /** Throws a `ConfigError` for field `key`. */
  fail(key: string, what: string, v: unknown = this.json[key]): never {
    throw new ConfigError(`${this.peftType} adapter config: '${key}' must be ${what}, got ${showValue(v)}`, undefined, key);
  }

  private value(key: string): unknown {
    return this.json[key];
  }

  private absent(key: string): boolean {
    return !(key in this.json);
  }

  /** A positive integer; absent gives `fallback` (required when `fallback` is undefined). null is an error: PEFT fails on it later. */
  posInt(key: string, fallback?: number): number {
    const v = this.value(key);
    if (this.absent(key) && fallback !== undefined) return fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) this.fail(key, 'a positive integer');
    return v;
  }

  /** A positive integer or null (absent gives null). */
  posIntOrNull(key: string): number | null {
    if (this.value(key) === null || this.absent(key)) return null;
    return this.posInt(key);
  }

  /** A finite number in `[min, max)` (bounds optional); absent gives `fallback`. null is an error. */
  number(key: string, fallback: number, range: { min?: number; maxExclusive?: number } = {}): number {
    if (this.absent(key)) return fallback;
    const v = this.value(key);
    const bounds = [range.min === undefined ? '' : `>= ${range.min}`, range.maxExclusive === undefined ? '' : `< ${range.maxExclusive}`].filter(Boolean).join(' and ');
    const ok = typeof v === 'number' && Number.isFinite(v) && (range.min === undefined || v >= range.min) && (range.maxExclusive === undefined || v < range.maxExclusive);
    if (!ok) this.fail(key, `a finite number${bounds ? ` ${bounds}` : ''}`);
    return v;
  }

  /** true or false; absent or null gives `fallback` (PEFT reads null as false in `if` tests). */
  bool(key: string, fallback: boolean): boolean {
    const v = this.value(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  /** A string or null (absent gives null). */
  stringOrNull(key: string): string | null {
    const v = this.value(key);
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') this.fail(key, 'a string or null');
    return v;
  }

  /** One of `allowed`; absent gives `fallback`. */
  oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    if (this.absent(key)) return fallback;
    const v = this.value(key);
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) this.fail(key, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
    return v as T;
  }

  /** Module names: a string (a regex) or a list of strings; absent or null gives null. An empty string or list is an error. */
  names(key: string): string | string[] | null {
    const v = this.value(key);
    if (v === undefined || v === null) return null;
    if (typeof v === 'string' && v !== '') return v;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string') && v.length > 0) return [...(v)];
    return this.fail(key, 'a module name regex (a string) or a non-empty list of module names');
  }

  /** A list of module names or null (absent gives null). */
  nameList(key: string): string[] | null {
    const v = this.value(key);
    if (v === undefined || v === null) return null;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return [...(v)];
    return this.fail(key, 'a list of module names or null');
  }

  /** A non-negative integer or a list of them; absent or null gives null. */
  indices(key: string): number | number[] | null {
    const v = this.value(key);
    if (v === undefined || v === null) return null;
    const isIndex = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
    if (isIndex(v)) return v;
    if (Array.isArray(v) && v.every(isIndex)) return [...v];
    return this.fail(key, 'a layer index or a list of layer indices');
  }

  /** An object of positive numbers by module pattern (integers when `integer`); absent or null gives `{}`. */
  patterns(key: string, integer: boolean): Record<string, number> {
    const v = this.value(key);
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(key, 'an object of module pattern -> number');
    const out: Record<string, number> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const ok = typeof x === 'number' && Number.isFinite(x) && x > 0 && (!integer || Number.isSafeInteger(x));
      if (!ok) this.fail(`${key}.${k}`, integer ? 'a positive integer' : 'a positive number', x);
      out[k] = x;
    }
    return out;
  }
}

/** `lora_alpha` -> `loraAlpha`. */
export function camelCase(snake: string): string {
  return snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Throws when a JS config (camelCase fields) carries a snake_case key, the naming of
 * `adapter_config.json`: such a key would be ignored and its default used silently.
 * The error names the camelCase field to use.
 * @example rejectSnakeCase({ peftType: 'LORA', lora_alpha: 16 }, 'LORA'); // throws: use 'loraAlpha'
 */
export function rejectSnakeCase(config: object, peftType: string): void {
  for (const key of Object.keys(config)) {
    if (!/_/.test(key)) continue;
    const field = camelCase(key);
    throw new ConfigError(`${peftType} config: '${key}' is adapter_config.json naming; the JS config field is '${field}'`, undefined, field);
  }
}
