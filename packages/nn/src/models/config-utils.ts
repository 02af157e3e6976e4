import { ConfigError } from './config-error.js';

/** A parsed `config.json`: plain JSON values by key. */
export type RawConfig = Record<string, unknown>;

/**
 * Keys transformers' config dataclasses allow to be null (`int | None`, ...); every
 * other field given as null is an error there, and here too.
 */
const NULLABLE = new Set(['n_inner', 'attention_dropout', 'head_dim', 'num_key_value_heads', 'sliding_window', 'rope_scaling', 'rope_parameters']);

/** True when `key` is absent, or null where transformers allows null (the caller's default applies). */
function unset(raw: RawConfig, key: string, modelType: string, what: string): boolean {
  const v = raw[key];
  if (v === undefined) return true;
  if (v === null) {
    if (NULLABLE.has(key)) return true;
    fieldError(modelType, key, what, v);
  }
  return false;
}

/** Bounds of a numeric field: `min`/`max` inclusive unless the matching `*Exclusive` is set. */
export interface NumberRange {
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
}

/** `value` as a message shows it (`"8"` for a string, `null`, `NaN`). */
export function showValue(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (v === undefined) return 'undefined';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Throws a {@link ConfigError} for field `key` of a `modelType` config. */
export function fieldError(modelType: string, key: string, what: string, v: unknown): never {
  throw new ConfigError(`${modelType} config: '${key}' must be ${what}, got ${showValue(v)}`, undefined, key);
}

function rangeText(r: NumberRange): string {
  const lo = r.min === undefined ? '' : `${r.minExclusive ? '>' : '>='} ${r.min}`;
  const hi = r.max === undefined ? '' : `${r.maxExclusive ? '<' : '<='} ${r.max}`;
  return [lo, hi].filter(Boolean).join(' and ');
}

function inRange(v: number, r: NumberRange): boolean {
  if (r.min !== undefined && (r.minExclusive ? !(v > r.min) : !(v >= r.min))) return false;
  if (r.max !== undefined && (r.maxExclusive ? !(v < r.max) : !(v <= r.max))) return false;
  return true;
}

/** Reads a positive integer field (absent means the caller's default was not set), or throws naming the model type and key. */
export function requireInt(raw: RawConfig, key: string, modelType: string): number {
  const v = raw[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) fieldError(modelType, key, 'a positive integer', v);
  return v;
}

/** Reads an optional integer field `>= min` (absent, or null where allowed, gives `fallback`). */
export function optInt(raw: RawConfig, key: string, fallback: number, modelType = 'model', min = 1): number {
  if (unset(raw, key, modelType, min === 1 ? 'a positive integer' : `an integer >= ${min}`)) return fallback;
  const v = raw[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fieldError(modelType, key, min === 1 ? 'a positive integer' : `an integer >= ${min}`, v);
  return v;
}

/** Reads an optional finite number field within `range` (absent, or null where allowed, gives `fallback`). */
export function optNumber(raw: RawConfig, key: string, fallback: number, modelType = 'model', range: NumberRange = {}): number {
  const bounds = rangeText(range);
  if (unset(raw, key, modelType, `a finite number${bounds ? ` ${bounds}` : ''}`)) return fallback;
  const v = raw[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || !inRange(v, range)) fieldError(modelType, key, `a finite number${bounds ? ` ${bounds}` : ''}`, v);
  return v;
}

/** Reads an optional boolean field (absent gives `fallback`). */
export function optBool(raw: RawConfig, key: string, fallback: boolean, modelType = 'model'): boolean {
  if (unset(raw, key, modelType, 'true or false')) return fallback;
  const v = raw[key];
  if (typeof v !== 'boolean') fieldError(modelType, key, 'true or false', v);
  return v;
}

/** Reads an optional string field (absent gives `fallback`). */
export function optString(raw: RawConfig, key: string, fallback: string, modelType = 'model'): string {
  if (unset(raw, key, modelType, 'a string')) return fallback;
  const v = raw[key];
  if (typeof v !== 'string') fieldError(modelType, key, 'a string', v);
  return v;
}

/** Reads an optional string field that must be one of `allowed`. */
export function optEnum(raw: RawConfig, key: string, fallback: string, allowed: readonly string[], modelType = 'model'): string {
  const v = optString(raw, key, fallback, modelType);
  if (!allowed.includes(v)) fieldError(modelType, key, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, v);
  return v;
}

/**
 * Reads an optional token id or a list of them (`eos_token_id` may be a list); null or
 * absent gives undefined. Any integer passes: old configs use -1 for "none".
 */
export function optTokenIds(raw: RawConfig, key: string, modelType = 'model', allowList = false): number | number[] | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  const isId = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x);
  if (isId(v)) return v;
  if (allowList && Array.isArray(v) && v.every(isId)) return [...v];
  return fieldError(modelType, key, allowList ? 'an integer token id or a list of them' : 'an integer token id', v);
}
